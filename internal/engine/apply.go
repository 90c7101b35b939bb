package engine

import "time"

// Apply performs the shell's state changes for a decision on in, in the
// documented order (node transitions, wave transitions, rollout state,
// then starts and rollbacks), and returns the indexes of the nodes it
// changed, so that a caller persists exactly those. It is the one
// implementation of the shell contract: the simulator applies it to its
// memory, the server to the rows it commits, tests to their scripts.
// byID maps node IDs to indexes in in.Nodes.
func Apply(in *Input, d Decision, byID map[string]int) []int {
	now := in.Now
	changed := make([]int, 0, len(d.Nodes)+len(d.Starts)+len(d.Rollbacks))
	for _, t := range d.Nodes {
		i, ok := byID[t.Node]
		if !ok {
			continue
		}
		st := &in.Nodes[i].State
		st.Phase, st.Since, st.Reason = t.To, now, t.Reason
		changed = append(changed, i)
	}
	if len(d.Waves) > 0 && in.Waves == nil {
		in.Waves = make(map[string]WaveStatus, len(d.Waves))
	}
	for _, t := range d.Waves {
		ws := in.Waves[t.Wave]
		ws.State, ws.Reason = t.To, t.Reason
		switch t.To {
		case WaveRunning:
			ws.StartedAt = now
		case WaveBaking:
			ws.BakeFrom = now
		case WaveSucceeded, WaveFailed:
			ws.EndedAt = now
		}
		in.Waves[t.Wave] = ws
	}
	in.State, in.Reason, in.RollbackScope = d.State, d.Reason, d.RollbackScope
	for _, s := range d.Starts {
		i, ok := byID[s.Node]
		if !ok {
			continue
		}
		st := &in.Nodes[i].State
		*st = NodeState{Phase: PhaseQueued, Wave: st.Wave, Attempt: s.Attempt, Since: now, StartedAt: now, Interruptions: st.Interruptions}
		changed = append(changed, i)
	}
	for _, s := range d.Rollbacks {
		i, ok := byID[s.Node]
		if !ok {
			continue
		}
		st := &in.Nodes[i].State
		st.Phase, st.Since, st.Rollback, st.Gate, st.HealthySince = PhaseRollingBack, now, true, "", time.Time{}
		changed = append(changed, i)
	}
	return changed
}

// ByID indexes nodes by ID for Apply.
func ByID(nodes []Node) map[string]int {
	m := make(map[string]int, len(nodes))
	for i := range nodes {
		m[nodes[i].ID] = i
	}
	return m
}
