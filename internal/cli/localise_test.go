package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// TestRolloutShowsLocalisation: `rollout get` and `rollout watch` print
// each finding of the rollout's localisation on a line of its own.
func TestRolloutShowsLocalisation(t *testing.T) {
	const text = "3 of 3 failed nodes have hardware.class=gen3; 0 of 9 succeeded nodes do; p=0.005"
	ro := api.Rollout{ID: "r1", State: engine.RolloutHalted, Reason: "wave all: 3 failed > budget 2; rolled back 12 nodes; localised: " + text,
		Localisation: []api.Finding{{Attribute: "hardware.class", Value: "gen3", FailedWith: 3, Failed: 3, Succeeded: 9, P: 1.0 / 220, Tests: 1, Text: text}}}
	var b bytes.Buffer
	printRollout(&b, ro, false, time.Now())
	if !strings.Contains(b.String(), "localised\t"+text+"\n") {
		t.Errorf("rollout get:\n%s\nlacks the localisation line", b.String())
	}
	if w := watchLines(ro); !strings.Contains(w, "  localised: "+text+"\n") {
		t.Errorf("rollout watch:\n%s\nlacks the localisation line", w)
	}
}
