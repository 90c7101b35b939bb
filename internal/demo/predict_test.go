package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/sim"
)

// etaPlan is the three-wave plan (canary 4, 50%, rest; 6 in
// flight; 2 per zone; 2 s soak; 3 s bake) installing openssl VERSION.
const etaPlan = `apiVersion: drover.dev/v1
name: openssl-NUM
target:
  selector: node.labels.env == "prod"
change:
  actions:
    - name: openssl
      package:
        packages:
          - name: openssl
            version: VERSION
        families:
          windows:
            - name: KB50430NUM
              version: 10.0.17763.63NUM
            - name: KB50428NUM
              version: 10.0.20348.27NUM
          macos:
            - name: macOS VERSION
              version: "VERSION"
      noRollbackOn: [macos]
  reboot: if-required
waves:
  - name: canary
    nodes: 4
    canary: true
  - name: half
    nodes: 50%
  - name: rest
limits:
  maxInFlight: 6
  caps:
    zone: 2
gates:
  bakeTime: 3s
  node:
    probes:
      - name: service health
        kind: http
        url: http://localhost:9100/healthz
        timeout: 2s
        interval: 1s
    minHealthy: 2s
    healthyDeadline: 8s
`

// TestPredictionOnDemo: on the demo fleet, a first rollout of a package
// change builds the step history; then the prediction stored at a
// second one's creation is within ±10% of its makespan, the ETA shown
// halfway through within ±10% (of the makespan) of the real end, and a
// dry run made before it, which the rollout is created from (its seed,
// its waves: every node in the dry run's wave, the canary the same),
// within ±10% too.
func TestPredictionOnDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var failure error
	done := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(done)
		_, _ = Run(runCtx, Options{Dir: t.TempDir(), Ready: func(acc Access) {
			defer stop() // the bundled plans are not run
			failure = predictOnFleet(ctx, t, &api.Client{Base: acc.URL, Token: acc.Users[0].Token})
		}})
	}()
	<-done
	if failure != nil {
		t.Fatal(failure)
	}
}

func predictOnFleet(ctx context.Context, t *testing.T, c *api.Client) error {
	plan := func(v string) string {
		return strings.NewReplacer("VERSION", v, "NUM", strings.ReplaceAll(v[len(v)-2:], ".", "")).Replace(etaPlan)
	}
	first, err := c.CreateRollout(ctx, "first.yaml", plan("3.0.15"))
	if err != nil {
		return fmt.Errorf("first rollout: %w", err)
	}
	if _, err := waitEnd(ctx, c, first.ID, nil); err != nil {
		return err
	}
	raw, err := c.History(ctx)
	if err != nil {
		return err
	}
	var h sim.History
	if err := json.Unmarshal(raw, &h); err != nil {
		return err
	}
	if h.Steps < 40 {
		return fmt.Errorf("history after the first rollout holds %d steps, want 40", h.Steps)
	}

	dry, err := c.DryRun(ctx, "second.yaml", plan("3.0.16"))
	if err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	var res sim.Result
	if err := json.Unmarshal(dry.Result, &res); err != nil {
		return err
	}
	t.Logf("dry run:\n%s", dry.Text)
	if strings.Contains(dry.Text, "default model") {
		return fmt.Errorf("dry run fell back to the default model with history:\n%s", dry.Text)
	}

	// The rollout is the one the dry run rehearsed: its seed, so its waves.
	second, err := c.CreateRolloutFrom(ctx, api.CreateRolloutRequest{FromDryRun: dry.ID})
	if err != nil {
		return fmt.Errorf("second rollout: %w", err)
	}
	var halfETA *api.ETA
	var halfAt time.Time
	end, err := waitEnd(ctx, c, second.ID, func(ro api.Rollout) {
		if halfETA == nil && ro.ETA != nil && ro.Counts["succeeded"]*2 >= ro.Total {
			halfETA, halfAt = ro.ETA, time.Now()
		}
	})
	if err != nil {
		return err
	}
	if end.State != "succeeded" || end.Prediction == nil || end.Prediction.ErrorPercent == nil || halfETA == nil {
		return fmt.Errorf("second rollout: state %s, prediction %+v, ETA at half %+v", end.State, end.Prediction, halfETA)
	}
	actual := *end.Prediction.ActualMakespanSeconds
	dryErr := (actual - res.MakespanSeconds) / res.MakespanSeconds * 100
	realEnd := end.CreatedAt.Add(time.Duration(actual * float64(time.Second)))
	etaErr := halfETA.End.Sub(realEnd).Seconds() / actual * 100
	t.Logf("demo fleet: dry run %.1fs, prediction at creation %.1fs, actual %.1fs: dry-run error %+.1f%%, prediction error %+.1f%%; "+
		"ETA at half (%.1fs in) %s (p10 %s, p90 %s), real end %s: %+.1f%% of the makespan",
		res.MakespanSeconds, end.Prediction.MakespanSeconds, actual, dryErr, *end.Prediction.ErrorPercent,
		halfAt.Sub(end.CreatedAt).Seconds(), halfETA.End.Format("15:04:05.0"), halfETA.EndP10.Format("15:04:05.0"),
		halfETA.EndP90.Format("15:04:05.0"), realEnd.Format("15:04:05.0"), etaErr)
	for _, w := range end.Prediction.Waves {
		t.Logf("  wave %s: predicted end %s, actual %s", w.Name, secs(w.EndSeconds), secs(w.ActualEndSeconds))
	}
	var errs []string
	// Its waves and canary are the dry run's, node for node.
	withNodes, err := c.GetRollout(ctx, second.ID, true)
	if err != nil {
		return err
	}
	members, canary := map[string][]string{}, []string{}
	canaryWave := map[string]bool{}
	for _, w := range withNodes.Waves {
		canaryWave[w.Name] = w.Canary
	}
	for _, n := range withNodes.Nodes {
		members[n.Wave] = append(members[n.Wave], n.ID)
		if canaryWave[n.Wave] {
			canary = append(canary, n.ID)
		}
	}
	for w := range members {
		slices.Sort(members[w])
	}
	slices.Sort(canary)
	if !maps.EqualFunc(members, dry.Members, slices.Equal) || len(canary) != 4 || !slices.Equal(canary, dry.Canary) {
		errs = append(errs, fmt.Sprintf("rollout waves %v canary %v, dry run's %v canary %v", members, canary, dry.Members, dry.Canary))
	}
	// The rollout was created from the dry run: the same seed, the same
	// waves, so the dry run is held to the issue's ±10% as the prediction
	// at creation is.
	if math.Abs(dryErr) > 10 {
		errs = append(errs, fmt.Sprintf("dry run makespan off by %+.1f%%", dryErr))
	}
	if math.Abs(*end.Prediction.ErrorPercent) > 10 {
		errs = append(errs, fmt.Sprintf("prediction at creation off by %+.1f%%", *end.Prediction.ErrorPercent))
	}
	if math.Abs(etaErr) > 10 {
		errs = append(errs, fmt.Sprintf("ETA at half off by %+.1f%% of the makespan", etaErr))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func secs(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fs", *v)
}

// waitEnd polls a rollout until it ends, calling each (if set) with
// every view.
func waitEnd(ctx context.Context, c *api.Client, id string, each func(api.Rollout)) (api.Rollout, error) {
	for {
		ro, err := c.GetRollout(ctx, id, false)
		if err != nil {
			return ro, err
		}
		if each != nil {
			each(ro)
		}
		if ro.State.Terminal() {
			return ro, nil
		}
		select {
		case <-ctx.Done():
			return ro, fmt.Errorf("rollout %s: %w (state %s)", id, ctx.Err(), ro.State)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
