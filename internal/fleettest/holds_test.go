package fleettest

import (
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/agent/facts"
)

// TestHoldsFromRealDpkg: in a container of each suite, packages held
// with apt-mark hold are what the agent's facts parser reads as holds
// from the dpkg-query output it collects (status "hi"), as apt-mark
// showhold lists them; once unheld by hand, none. The agent's fact
// collection runs exactly this dpkg-query.
func TestHoldsFromRealDpkg(t *testing.T) {
	checkPreconditions(t)
	const query = `dpkg-query -W -f '${Package}\t${Version}\t${db:Status-Abbrev}\n'`
	for _, s := range suites {
		t.Run(s, func(t *testing.T) {
			out := mustDocker(t, "run", "--rm", "--network", "none", "drover-fleet:"+s, "sh", "-c",
				"apt-mark hold base-files bash >/dev/null && apt-mark showhold && echo --- && "+query+
					" && echo --- && apt-mark unhold bash >/dev/null && "+query)
			parts := strings.Split(out, "---\n")
			if len(parts) != 3 {
				t.Fatalf("output: %q", out)
			}
			want := []string{"base-files", "bash"}
			got := strings.Fields(parts[0])
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("apt-mark showhold: %v", got)
			}
			held := facts.ParseDpkgHolds([]byte(parts[1]))
			slices.Sort(held)
			if !slices.Equal(held, want) {
				t.Errorf("holds from dpkg-query: %v, want %v", held, want)
			}
			if pkgs := facts.ParseDpkgQuery([]byte(parts[1])); pkgs["bash"] == "" || pkgs["base-files"] == "" {
				t.Errorf("held packages not listed as installed: %v", pkgs)
			}
			if held := facts.ParseDpkgHolds([]byte(parts[2])); !slices.Equal(held, []string{"base-files"}) {
				t.Errorf("after apt-mark unhold bash: %v", held)
			}
		})
	}
}
