package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/api"
)

// TestTerminalSafe: control characters are escaped visibly, text and
// multi-byte runes split across writes pass unchanged.
func TestTerminalSafe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain\ttext\n", "plain\ttext\n"},
		{"\x1b[2J\x1b]0;pwned\x07", `\x1b[2J\x1b]0;pwned\x07`},
		{"over\rwrite\bDEL\x7f", `over\x0dwrite\x08DEL\x7f`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"bidi \u202egnp.exe", `bidi \u202egnp.exe`},
		{"zone é ünïcode ✓", "zone é ünïcode ✓"},
		{"bad \xff byte", `bad \xff byte`},
	} {
		var b bytes.Buffer
		ts := newTerminalSafe(&b)
		// Byte by byte: sequences split across writes.
		for i := range len(c.in) {
			if _, err := ts.Write([]byte{c.in[i]}); err != nil {
				t.Fatal(err)
			}
		}
		ts.flush()
		if b.String() != c.want {
			t.Errorf("%q: wrote %q, want %q", c.in, b.String(), c.want)
		}
	}
}

// TestServerTextIsEscaped: facts and labels a node chose, with escape
// sequences, are printed escaped in tables, and JSON output stays JSON.
func TestServerTextIsEscaped(t *testing.T) {
	evil := "deb\x1b[2J\x1b]0;owned\x07-\u009b1m"
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.NodeList{Nodes: []api.Node{{ID: evil, Labels: map[string]string{"zone": evil}}}})
	}))
	defer ts.Close()
	for _, format := range []string{"table", "json", "yaml"} {
		var out, errb bytes.Buffer
		code := Main(t.Context(), []string{"nodes", "list", "--server", ts.URL, "--token", "t", "-o", format},
			func(string) string { return "" }, strings.NewReader(""), &out, &errb)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, errb.String())
		}
		if strings.ContainsAny(out.String(), "\x1b\x07\u009b") || !strings.Contains(out.String(), "deb") {
			t.Errorf("%s output holds raw control characters: %q", format, out.String())
		}
		if format == "json" {
			var got api.NodeList
			if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Nodes[0].Labels["zone"] != evil {
				t.Errorf("json output: %v %+v", err, got)
			}
		}
	}
}
