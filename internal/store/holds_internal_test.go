package store

import (
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/engine"
)

// TestHoldTriggersFollowInFlight keeps the phases the node_holds triggers
// treat as in flight (a node keeps its hold in them) equal to
// engine.Phase.InFlight, in every dialect's migration: a phase added to
// one and not the other would release holds of nodes still changing, or
// keep holds of nodes done.
func TestHoldTriggersFollowInFlight(t *testing.T) {
	phases := []engine.Phase{engine.PhasePending, engine.PhaseQueued, engine.PhaseRunning, engine.PhaseVerifying, engine.PhaseSucceeded,
		engine.PhaseFailed, engine.PhaseQuarantined, engine.PhaseRollingBack, engine.PhaseRolledBack, engine.PhaseUnknown, engine.PhaseSkipped,
		"interrupted"}
	var want []string
	for _, p := range phases {
		if p.InFlight() {
			want = append(want, string(p))
		}
	}
	slices.Sort(want)
	listRE := regexp.MustCompile(`phase (?:NOT )?IN \(([^)]*)\)`)
	for _, d := range []*dialect{sqliteDialect(), postgresDialect()} {
		files, err := fs.Glob(migrationsFS, path.Join(d.migrations, "*fleet_safety.sql"))
		if err != nil || len(files) != 1 {
			t.Fatalf("%s: fleet safety migration: %v %v", d.name, files, err)
		}
		src, err := fs.ReadFile(migrationsFS, files[0])
		if err != nil {
			t.Fatal(err)
		}
		lists := listRE.FindAllStringSubmatch(string(src), -1)
		if len(lists) < 2 {
			t.Fatalf("%s: found %d phase lists, want the backfill's and the release trigger's", d.name, len(lists))
		}
		for _, m := range lists {
			var got []string
			for _, q := range strings.Split(m[1], ",") {
				got = append(got, strings.Trim(strings.TrimSpace(q), "'"))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s lists %v as in flight; engine.Phase.InFlight says %v", d.name, files[0], got, want)
			}
		}
	}
}
