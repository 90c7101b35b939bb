package server

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/api"
)

// TestFleetLockConfig: a FleetLock configuration that would serve
// unauthenticated clients beyond loopback without saying from where, or
// that cannot work, is refused with the key at fault.
func TestFleetLockConfig(t *testing.T) {
	cases := []struct {
		fl   FleetLockConfig
		want string // "" valid
	}{
		{FleetLockConfig{}, ""},
		{FleetLockConfig{Listen: "127.0.0.1:7071"}, ""},
		{FleetLockConfig{Listen: "0.0.0.0:7071", AllowedNetworks: []string{"10.0.0.0/8", "192.0.2.7"}}, ""},
		{FleetLockConfig{Groups: map[string]FleetLockGroup{"default": {MaxHolders: 1}}}, "fleetlock: listen is required"},
		{FleetLockConfig{Listen: "0.0.0.0:7071"}, `fleetlock.listen "0.0.0.0:7071" is not loopback: FleetLock clients send no credentials, so set fleetlock.allowedNetworks`},
		{FleetLockConfig{Listen: "7071"}, `fleetlock.listen "7071": want host:port`},
		{FleetLockConfig{Listen: "127.0.0.1:7071", AllowedNetworks: []string{"10.0.0.0/33"}}, `fleetlock.allowedNetworks[0] "10.0.0.0/33": want a CIDR`},
		{FleetLockConfig{Listen: "127.0.0.1:7071", ClientCerts: true}, "fleetlock.clientCerts needs fleetlock.tls"},
		{FleetLockConfig{Listen: "127.0.0.1:7071", Groups: map[string]FleetLockGroup{"web_1": {MaxHolders: 1}}}, `group name "web_1": the protocol allows ^[a-zA-Z0-9.-]+$`},
		{FleetLockConfig{Listen: "127.0.0.1:7071", Groups: map[string]FleetLockGroup{"default": {}}}, "fleetlock.groups.default.maxHolders 0: must be at least 1"},
		{FleetLockConfig{Listen: "127.0.0.1:7071", Groups: map[string]FleetLockGroup{"web": {MaxHolders: 1, Selector: "node.labels.tier =="}}}, "fleetlock.groups.web.selector:"},
	}
	for _, c := range cases {
		cfg := testConfig(t)
		cfg.FleetLock = c.fl
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.fl, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: err = %v, want %q", c.fl, err, c.want)
		}
	}
}

// TestFleetLockNetworks: a peer outside fleetlock.allowedNetworks is
// refused before its body is read; unknown paths get a FleetLock error.
func TestFleetLockNetworks(t *testing.T) {
	s := newTestServerWith(t, func(c *Config) {
		c.FleetLock = FleetLockConfig{Listen: "127.0.0.1:0", AllowedNetworks: []string{"10.1.0.0/16"}}
	})
	h := s.fl.handler()
	for _, c := range []struct {
		peer, path string
		status     int
		want       string
	}{
		{"192.0.2.1:5000", "/v1/pre-reboot", 403, `"kind":"forbidden_network"`},
		{"10.1.2.3:5000", "/v1/pre-reboot", 403, `"kind":"unknown_node"`},
		{"10.1.2.3:5000", "/v2/pre-reboot", 404, `FleetLock serves POST /v1/pre-reboot and POST /v1/steady-state`},
	} {
		r := httptest.NewRequest("POST", c.path, strings.NewReader(`{"client_params": {"id": "n1", "group": "default"}}`))
		r.RemoteAddr = c.peer
		r.Header.Set("fleet-lock-protocol", "true")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s from %s: %d %s, want %d %s", c.path, c.peer, w.Code, w.Body, c.status, c.want)
		}
	}
}

// TestFleetLockClientCerts: with fleetlock.clientCerts, a request must
// carry the current drover client certificate of the node it names.
func TestFleetLockClientCerts(t *testing.T) {
	e := newTLSEnvWith(t, func(c *Config) {
		c.FleetLock = FleetLockConfig{Listen: "127.0.0.1:0", TLS: true, ClientCerts: true}
	})
	ts := httptest.NewUnstartedServer(e.s.fl.handler())
	ts.TLS = e.s.TLSConfig()
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ids := map[string]*agent.Identity{}
	for _, node := range []string{"n1", "n2"} {
		id, err := e.enrol(t, node, e.token(t, "1h", nil), e.s.CAHash(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if st, ae := e.agentCall(t, id, api.PathRegister, register(node)); st != 200 {
			t.Fatalf("register %s: %d %v", node, st, ae)
		}
		ids[node] = id
	}
	send := func(client *http.Client, node string) (int, string) {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/pre-reboot", strings.NewReader(`{"client_params": {"id": "`+node+`", "group": "default"}}`))
		req.Header.Set("fleet-lock-protocol", "true")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	pool := x509.NewCertPool()
	pool.AddCert(e.s.sec.ca.Cert)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if st, body := send(anon, "n1"); st != 401 || !strings.Contains(body, "client_certificate_required") {
		t.Fatalf("without a certificate: %d %s", st, body)
	}
	if st, body := send(ids["n2"].HTTPClient(), "n1"); st != 403 || !strings.Contains(body, "the client certificate is node n2's, the request names node n1") {
		t.Fatalf("n2's certificate for n1: %d %s", st, body)
	}
	if st, body := send(ids["n1"].HTTPClient(), "n1"); st != 200 {
		t.Fatalf("n1's certificate for n1: %d %s", st, body)
	}
}
