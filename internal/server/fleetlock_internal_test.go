package server

import (
	"net/http/httptest"
	"strings"
	"testing"
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
