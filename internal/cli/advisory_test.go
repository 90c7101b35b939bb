package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/server/servertest"
	"github.com/drover-dev/drover/internal/store"
)

// TestAdvisoryCommands: drover advisory import of a file, a directory
// (a bad file in it imports nothing) and a URL, then list and get by ID
// and by alias, as a table and as JSON, against a real server.
func TestAdvisoryCommands(t *testing.T) {
	ctx := context.Background()
	url, st, _ := servertest.Start(t, ctx, func(cfg *server.Config) {
		cfg.Users = []server.User{{Name: "alice", Role: server.RoleOperator, Token: "alice-token-0123456789"},
			{Name: "vera", Role: server.RoleViewer, Token: "vera-token-01234567890"}}
	})
	as := func(token string, args ...string) (int, string) {
		t.Helper()
		env := map[string]string{"DROVER_SERVER": url, "DROVER_TOKEN": token}
		var out bytes.Buffer
		code := Main(ctx, args, func(k string) string { return env[k] }, strings.NewReader(""), &out, &out)
		return code, out.String()
	}
	drover := func(args ...string) string {
		t.Helper()
		code, out := as("alice-token-0123456789", args...)
		if code != 0 {
			t.Fatalf("drover %s: exit %d: %s", strings.Join(args, " "), code, out)
		}
		return out
	}
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "advisory", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dsa := write("dsa.json", fixture("osv-dsa-5532-1.json"))
	if out := drover("advisory", "import", dsa); !strings.Contains(out, "1 advisories from 1 documents: 1 added") {
		t.Fatalf("import file:\n%s", out)
	}
	if code, out := as("vera-token-01234567890", "advisory", "import", dsa); code == 0 || !strings.Contains(out, "needs role operator") {
		t.Fatalf("viewer import: %d %s", code, out)
	}

	feed := filepath.Join(dir, "feed")
	write("feed/2024/rhsa-2024_2447.json", fixture("csaf-rhsa-2024_2447.json"))
	write("feed/2023/usn-6477-1.json", fixture("osv-usn-6477-1.json"))
	bad := write("feed/2023/zz-broken.json", []byte(`{"id": "DSA-1-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Debian:12", "name": "x"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": ""}]}]}]}`))
	code, out := as("alice-token-0123456789", "advisory", "import", feed)
	if code == 0 || !strings.Contains(out, "zz-broken.json: affected[0].ranges[0].events[0]: fixed: empty version") {
		t.Fatalf("bad file in a directory: %d %s", code, out)
	}
	if out := drover("advisory", "list"); !strings.Contains(out, "1 advisories") {
		t.Fatalf("a refused directory import stored something:\n%s", out)
	}
	os.Remove(bad)
	if out := drover("advisory", "import", feed); !strings.Contains(out, "2 added") {
		t.Fatalf("import dir:\n%s", out)
	}

	ms := fixture("csaf-msrc-cve-2023-38148.json")
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/csaf/cve-2023-38148.json":
			w.Write(ms)
		case "/huge.json":
			w.Write(bytes.Repeat([]byte(" "), 33<<20))
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()
	if out := drover("advisory", "import", web.URL+"/csaf/cve-2023-38148.json", "-o", "json"); !strings.Contains(out, `"added": 1`) {
		t.Fatalf("import URL:\n%s", out)
	}
	if code, out := as("alice-token-0123456789", "advisory", "import", web.URL+"/missing.json"); code == 0 || !strings.Contains(out, "404") {
		t.Fatalf("missing URL: %d %s", code, out)
	}
	if code, out := as("alice-token-0123456789", "advisory", "import", web.URL+"/huge.json"); code == 0 || !strings.Contains(out, "larger than") {
		t.Fatalf("huge URL: %d %s", code, out)
	}
	if out := drover("advisory", "import", dsa, feed); !strings.Contains(out, "3 unchanged") {
		t.Fatalf("re-import:\n%s", out)
	}

	out = drover("advisory", "list", "--severity", "high")
	if !strings.Contains(out, "DSA-5532-1") || strings.Contains(out, "USN-6477-1") || !strings.Contains(out, "2 advisories") {
		t.Fatalf("list --severity high:\n%s", out)
	}
	out = drover("advisory", "get", "KB5030216")
	for _, want := range []string{"msrc_CVE-2023-38148", "windows:10.0.20348", "10.0.20348.1970", "KB5030216", "reboot required"} {
		if !strings.Contains(out, want) {
			t.Fatalf("get by KB lacks %q:\n%s", want, out)
		}
	}
	var a api.Advisory
	if err := json.Unmarshal([]byte(drover("advisory", "get", "CVE-2024-0727", "-o", "json")), &a); err != nil || a.ID != "RHSA-2024:2447" || a.Affected[0].Fixed != "1:3.0.7-27.el9" {
		t.Fatalf("get by CVE as JSON: %v %+v", err, a)
	}
	if code, out := as("alice-token-0123456789", "advisory", "get", "CVE-1999-0001"); code == 0 || !strings.Contains(out, "not found") {
		t.Fatalf("unknown: %d %s", code, out)
	}

	now := time.Now()
	if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: "r1", Facts: fleet.Facts{OS: fleet.OS{Family: "rhel", Name: "Rocky Linux", Version: "9.4"},
		Packages: map[string]string{"openssl": "1:3.0.7-24.el9"}}, RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if out := drover("exposure", "--advisory", "CVE-2024-0727"); !strings.Contains(out, "affected  installed: openssl 1:3.0.7-24.el9") || !strings.Contains(out, "1 nodes: 1 affected") {
		t.Fatalf("exposure --advisory:\n%s", out)
	}
	var rep api.ExposureReport
	if err := json.Unmarshal([]byte(drover("exposure", "--selector", `node.os.family == "rhel"`, "-o", "json")), &rep); err != nil ||
		len(rep.Nodes) != 1 || rep.Nodes[0].Advisories[0].Advisory != "RHSA-2024:2447" {
		t.Fatalf("exposure -o json: %v %+v", err, rep)
	}
	// The computations above were recorded: r1 is exposed, nothing
	// remediated yet.
	if out := drover("exposure", "--summary"); !strings.Contains(out, "RHSA-2024:2447") || !strings.Contains(out, "exposed nodes: 1; remediated exposures: 0") ||
		!strings.Contains(out, "oldest open critical: none") || !strings.Contains(out, "reboot debt: 0 nodes") {
		t.Fatalf("exposure --summary:\n%s", out)
	}
}
