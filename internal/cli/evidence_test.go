package cli

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/drover-dev/drover/internal/evidence"
)

// TestLinkageLines: the linkage section names a unit's binary and a
// probe's binary, what is missing, and errors.
func TestLinkageLines(t *testing.T) {
	data, err := json.Marshal([]evidence.Linkage{
		{Unit: "nginx.service", Binary: "/usr/sbin/nginx", Missing: []string{"libpcre2-8.so.0"}},
		{Binary: "/usr/bin/drover-testsvc", Libraries: map[string]string{"libsmartcols.so.1": "/lib/x86_64-linux-gnu/libsmartcols.so.1"}},
		{Binary: "/usr/bin/app", Static: true},
		{Unit: "x.service", Error: "systemctl show -p ExecStart x.service: exit status 1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := sectionLines(evidence.Section{Name: "linkage", Data: data})
	want := []string{
		"nginx.service: /usr/sbin/nginx MISSING libpcre2-8.so.0",
		"/usr/bin/drover-testsvc links (1 libraries)",
		"/usr/bin/app static",
		"x.service: systemctl show -p ExecStart x.service: exit status 1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("lines:\n%q\nwant\n%q", got, want)
	}
}
