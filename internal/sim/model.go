package sim

import (
	"math/rand/v2"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
)

// Durations is where a simulation's node timings come from: how long a
// dispatched step waits before its agent starts it, how long the agent
// takes from its start to the node healthy (actions, reboot, probes), and
// how long a rollback takes. Every draw comes from r, the simulation's
// seeded source, so that the same seed gives the same run. The node soak
// (gates.node.minHealthy) is not a duration of the model: the engine
// counts it from the healthy time, as on a server.
type Durations interface {
	Dispatch(n *fleet.Node, r *rand.Rand) time.Duration
	Step(n *fleet.Node, r *rand.Rand) time.Duration
	Rollback(n *fleet.Node, r *rand.Rand) time.Duration
}

// Explainer is a Durations that can say where it takes the timings of a
// set of nodes from, e.g. "no history for package on rhel 9, default
// model". A simulation notes it for each wave.
type Explainer interface {
	Explain(nodes []*fleet.Node) string
}

// PlanDurations is the model of a plan or of the defaults: one step and
// one rollback distribution for every node, and a dispatch latency of 1–2 s.
type PlanDurations struct {
	StepDist, RollbackDist Dist
}

var _ Durations = PlanDurations{}

// Dispatch draws the dispatch latency.
func (m PlanDurations) Dispatch(_ *fleet.Node, r *rand.Rand) time.Duration {
	return dispatchLatency().Sample(r)
}

// Step draws a step duration.
func (m PlanDurations) Step(_ *fleet.Node, r *rand.Rand) time.Duration {
	return m.stepDist().Sample(r)
}

// Rollback draws a rollback duration.
func (m PlanDurations) Rollback(_ *fleet.Node, r *rand.Rand) time.Duration {
	if m.RollbackDist.Kind == "" {
		return DefaultRollbackDuration().Sample(r)
	}
	return m.RollbackDist.Sample(r)
}

func (m PlanDurations) stepDist() Dist {
	if m.StepDist.Kind == "" {
		return DefaultStepDuration()
	}
	return m.StepDist
}

// Explain names the distribution.
func (m PlanDurations) Explain([]*fleet.Node) string {
	return "default model (step " + m.stepDist().String() + ")"
}

// residual draws how much longer a duration drawn by draw lasts given
// that elapsed of it has passed: a draw longer than elapsed, less
// elapsed (up to 16 tries), else a tenth of elapsed (at least MinSample),
// for an agent already slower than the model expects.
func residual(draw func() time.Duration, elapsed time.Duration) time.Duration {
	if elapsed <= 0 {
		return draw()
	}
	for range 16 {
		if d := draw(); d > elapsed {
			return d - elapsed
		}
	}
	return max(elapsed/10, MinSample)
}
