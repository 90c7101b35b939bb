package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/hostcheck"
)

// JournalFile is the name of the write-ahead step journal in StateDir.
const JournalFile = "journal.jsonl"

// recType is the type of a journal record.
type recType string

const (
	// recStep: a step was taken on, before anything else is done for it.
	// Carries the payload and the boot ID.
	recStep recType = "step"
	// recAction: progress of one action (Action, Stage).
	recAction recType = "action"
	// recFailing: the step failed (Reason); in-step rollback follows.
	recFailing recType = "failing"
	// recRebooting: a reboot is about to be requested (BootID before it).
	recRebooting recType = "rebooting"
	// recVerifying: every action applied and verified, reboot done if
	// any; node probes run from here.
	recVerifying recType = "verifying"
	// recResult: the step's final report (Report). Nothing runs for the
	// step after it.
	recResult recType = "result"
	// recReported: the server accepted the final report.
	recReported recType = "reported"
	// recCancelled: the server cancelled a step the agent had not begun
	// (Report: the cancelled acknowledgement). The step is known and
	// finished from here: it is never begun.
	recCancelled recType = "cancelled"
	// recProbed: a rollback (a rollback step's, or an apply step's
	// in-step one) is done and the node's probes ran after it (Probed;
	// Reason: what the rollback did). Journaled before the node is taken
	// out of service again, so that a resumed step reports the verdict
	// instead of checking its restores against a node cordoned again.
	recProbed recType = "probed"
	// recHost: the snapshot of the host (Host) the step's host checks
	// compare with, taken before the first action changes anything.
	recHost recType = "host-snapshot"

	// recEvidence: an evidence bundle of the failing step was captured
	// (Stage captured: kept in StateDir/evidence) or taken by the server
	// (Stage sent). A step with one is never captured again.
	recEvidence recType = "evidence"
)

// Action stages, in the order they happen.
const (
	stagePreflight = "preflight" // Change recorded; nothing changed yet
	stageSnapshot  = "snapshot"  // Snapshot recorded; Apply is about to start
	stageApplied   = "applied"   // Apply returned (Outcome)
	stageVerified  = "verified"  // Verify returned nil
	// stageRestarted: the action's pre-restart check passed and the
	// service restarts its ApplyDeferred held back ran (Outcome).
	stageRestarted  = "restarted"
	stageRolledBack = "rolled-back" // Rollback returned (Outcome)
	stageRestoreErr = "rollback-failed"
	// stageUncordoning: every action of an apply step is done (reboot
	// included); the uncordon of this uncordoner action (kubernetes-node)
	// is about to start. From here the action is not verified again (the
	// node may already be schedulable); the uncordon is owed until
	// stageUncordoned.
	stageUncordoning = "uncordoning"
	// stageUncordoned: the uncordoner action returned the node to service
	// (Outcome).
	stageUncordoned = "uncordoned"
	// stageHeld: a rollback step cordoned and drained the node again
	// (Outcome) before restoring the actions the hold covers.
	stageHeld = "held"
	// stageFallbackSet: the node runs the kernel the step installed; the
	// boot loader was set to start the kernel it ran before (Outcome;
	// BootID: the boot it was set on). A reboot follows (rebooting).
	stageFallbackSet = "fallback-boot-set"
	// stageFallbackConfirmed: the node rebooted (a new boot ID) and runs
	// the known-good kernel (Reason); the kernel action's Rollback, which
	// removes or holds the new kernel, may run.
	stageFallbackConfirmed = "fallback-confirmed"
)

// record is one line of the journal.
type record struct {
	Type     recType          `json:"type"`
	Step     string           `json:"step"`
	At       time.Time        `json:"at"`
	BootID   string           `json:"bootId,omitempty"`
	Payload  *api.StepPayload `json:"payload,omitempty"`
	Action   int              `json:"action,omitempty"` // index into the payload's actions
	Stage    string           `json:"stage,omitempty"`
	Driver   string           `json:"driver,omitempty"`
	Change   *driver.Change   `json:"change,omitempty"`
	Snapshot *driver.Snapshot `json:"snapshot,omitempty"`
	Outcome  *driver.Outcome  `json:"outcome,omitempty"`
	Reason   string           `json:"reason,omitempty"`
	Report   *api.StepReport  `json:"report,omitempty"`
	// Interrupted marks a recFailing record as an interruption (a crash
	// or a reboot the step did not request), reported as interrupted
	// once what had begun is undone.
	Interrupted bool                `json:"interrupted,omitempty"`
	From        *rollbackReference  `json:"from,omitempty"`
	Probed      *rollbackProbes     `json:"probed,omitempty"`
	Host        *hostcheck.Snapshot `json:"host,omitempty"`
}

// rollbackReference names the apply step a rollback step restores.
type rollbackReference struct {
	Step string `json:"step"`
}

// actionState is what the journal says about one action of a step.
type actionState struct {
	Driver      string
	Change      *driver.Change
	Snapshot    *driver.Snapshot
	Outcome     *driver.Outcome
	Applied     bool // Apply returned successfully
	Verified    bool
	Restarted   bool // pre-restart check passed, held-back restarts ran
	RolledBack  bool
	Rollback    *driver.Outcome
	Uncordoning bool // apply steps: uncordon begun (actions done)
	Uncordoned  bool // apply steps: the node is back in service
	Uncordon    *driver.Outcome
	Held        bool // rollback steps: cordoned and drained again
	Hold        *driver.Outcome
	// Kernel fallback (kernel actions whose kernel the node runs).
	FallbackSet       bool
	FallbackBoot      string // boot ID when the boot entry was set
	Fallback          *driver.Outcome
	FallbackConfirmed bool
	FallbackReason    string // what confirmed it
}

// owesUncordon reports whether an action of an apply step took the node
// out of service and has not yet returned it (its driver decides whether
// it is an uncordoner at all).
func (a *actionState) owesUncordon() bool {
	return a != nil && a.Snapshot != nil && !a.Uncordoned && !a.RolledBack
}

// pastVerify reports whether an action of an apply step is past its
// Verify: its uncordon has begun, so the node may be schedulable again.
func (a *actionState) pastVerify() bool {
	return a != nil && (a.Uncordoning || a.Uncordoned)
}

// stepState is what the journal says about one step.
type stepState struct {
	ID      string
	Payload api.StepPayload
	BootID  string // when the step was taken on
	Started time.Time
	Actions map[int]*actionState
	Failing string // reason, when the step failed and is rolling back
	// Interrupted: the failure is an interruption (see recFailing).
	Interrupted bool
	Reboots     []string // boot ID before each requested reboot
	Verifying   bool
	// RebootAt and VerifyAt are when the first reboot was requested and
	// when the probes began (zero: not yet), for the step's timing.
	RebootAt, VerifyAt time.Time
	From               string // rollback steps: the apply step restored
	Result             *api.StepReport
	Reported           bool
	// Probed is what the node's probes said after the rollback, and
	// Undone what the rollback did (recProbed); nil: not probed yet.
	Probed *rollbackProbes
	Undone string
	// Host is the host before the step, for its host checks (recHost).
	Host *hostcheck.Snapshot
	// Last is the step's last record, as what the journal proves when
	// the step was interrupted ("action 1 snapshot at ...").
	Last string
	// EvidenceCaptured and EvidenceSent: recEvidence.
	EvidenceCaptured, EvidenceSent bool
	seq                            int // order taken on
}

func (s *stepState) action(i int) *actionState {
	a := s.Actions[i]
	if a == nil {
		a = &actionState{}
		s.Actions[i] = a
	}
	return a
}

// finished reports whether the step has a final result.
func (s *stepState) finished() bool { return s.Result != nil }

// journal is the agent's write-ahead step journal: one JSON record per
// line, appended and fsynced before the agent acts on what it records. It
// keeps the state of every step it holds in memory. Safe for concurrent
// use.
type journal struct {
	mu    sync.Mutex
	f     *os.File
	steps map[string]*stepState
	next  int
	// torn is the number of bytes of a torn last record dropped on open.
	torn int
	// skipped counts unreadable records inside the file, kept but ignored.
	skipped int
	// afterAppend, when set, is called after each record is durable
	// (tests use it to crash the agent at a chosen point).
	afterAppend func(record)
}

// openJournal opens (creating) the journal in dir and replays it. A last
// record without its newline or that does not parse is torn: it is cut off
// and its step is treated as interrupted at that point. An unreadable
// record elsewhere is skipped and counted.
func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	path := filepath.Join(dir, JournalFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{f: f, steps: map[string]*stepState{}}
	good, err := j.replay(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	if size > good {
		j.torn = int(size - good)
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: cut torn record: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("journal: %w", err)
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

// replay applies every intact record of r and returns the offset after
// the last intact line.
func (j *journal) replay(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var off, good int64
	for {
		line, err := br.ReadBytes('\n')
		off += int64(len(line))
		if errors.Is(err, io.EOF) {
			// A line without its newline is torn, whatever it holds.
			return good, nil
		}
		if err != nil {
			return 0, err
		}
		var rec record
		if err := json.Unmarshal(bytes.TrimSpace(line), &rec); err != nil || rec.Step == "" {
			// Torn if nothing intact follows; decided when we see more.
			if _, perr := br.Peek(1); perr != nil {
				return good, nil
			}
			j.skipped++
			good = off
			continue
		}
		j.apply(rec)
		good = off
	}
}

// apply folds rec into the in-memory state. j.mu must be held or j not
// yet shared.
func (j *journal) apply(rec record) {
	st := j.steps[rec.Step]
	if st == nil && rec.Type == recCancelled {
		st = &stepState{ID: rec.Step, Actions: map[int]*actionState{}, seq: j.next, Result: rec.Report}
		j.next++
		j.steps[rec.Step] = st
		return
	}
	if st == nil {
		if rec.Type != recStep || rec.Payload == nil {
			j.skipped++
			return
		}
		st = &stepState{ID: rec.Step, Actions: map[int]*actionState{}, seq: j.next}
		j.next++
		j.steps[rec.Step] = st
	}
	st.Last = describeRecord(rec)
	switch rec.Type {
	case recStep:
		st.Payload = *rec.Payload
		st.BootID = rec.BootID
		st.Started = rec.At
		if rec.From != nil {
			st.From = rec.From.Step
		}
	case recAction:
		a := st.action(rec.Action)
		if rec.Driver != "" {
			a.Driver = rec.Driver
		}
		switch rec.Stage {
		case stagePreflight:
			a.Change = rec.Change
		case stageSnapshot:
			a.Snapshot = rec.Snapshot
		case stageApplied:
			a.Outcome = rec.Outcome
			a.Applied = true
		case stageVerified:
			a.Verified = true
		case stageRestarted:
			a.Restarted = true
		case stageRolledBack:
			a.RolledBack = true
			a.Rollback = rec.Outcome
		case stageUncordoning:
			a.Uncordoning = true
		case stageUncordoned:
			a.Uncordoned = true
			a.Uncordon = rec.Outcome
		case stageHeld:
			a.Held = true
			a.Hold = rec.Outcome
		case stageFallbackSet:
			a.FallbackSet = true
			a.FallbackBoot = rec.BootID
			a.Fallback = rec.Outcome
		case stageFallbackConfirmed:
			a.FallbackConfirmed = true
			a.FallbackReason = rec.Reason
		}
	case recProbed:
		st.Probed, st.Undone = rec.Probed, rec.Reason
	case recHost:
		st.Host = rec.Host
	case recFailing:
		st.Failing, st.Interrupted = rec.Reason, rec.Interrupted
	case recRebooting:
		st.Reboots = append(st.Reboots, rec.BootID)
		if st.RebootAt.IsZero() {
			st.RebootAt = rec.At
		}
	case recVerifying:
		st.Verifying = true
		st.VerifyAt = rec.At
	case recResult:
		st.Result = rec.Report
	case recReported:
		st.Reported = true
	case recEvidence:
		st.EvidenceCaptured = true
		st.EvidenceSent = st.EvidenceSent || rec.Stage == evidenceSent
	}
}

// describeRecord names a record for people: its type, the action and
// stage for action records, and when it was written.
func describeRecord(rec record) string {
	what := string(rec.Type)
	if rec.Type == recAction {
		what = fmt.Sprintf("action %d %s", rec.Action+1, rec.Stage)
	}
	return what + " at " + rec.At.UTC().Format(time.RFC3339)
}

// append makes rec durable (write and fsync), then folds it in.
// durable reports whether the record must reach the disk before the
// agent goes on: those that later decisions depend on and that nothing
// else could tell after a power loss (the step taken on, the snapshot to
// restore, a failure, a reboot requested, an uncordon under way, the
// rollback's progress, the final result). The others (a preflight's
// change, an action applied or verified, probing started, a result
// reported) are written without waiting for the disk: the next durable
// record, or the file's own flush, takes them along, and if a power loss
// drops them, resuming verifies the node's real state anyway (an action
// without its applied record is checked with the driver, probes run
// again, a result is reported again). A crash of the agent alone loses
// nothing either way: the writes are in the kernel's page cache. Each
// fsync costs milliseconds on a real disk; a plain step needs three
// instead of eight.
func (r record) durable() bool {
	switch r.Type {
	case recVerifying, recReported, recEvidence:
		return false
	case recAction:
		switch r.Stage {
		case stagePreflight, stageApplied, stageVerified, stageUncordoned:
			return false
		}
	}
	return true
}

func (j *journal) append(rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("journal: encode %s record of %s: %w", rec.Type, rec.Step, err)
	}
	b = append(b, '\n')
	j.mu.Lock()
	if n, err := j.f.Write(b); err != nil {
		// A partial write (a full disk) is cut off again, so that the
		// next record starts a line of its own instead of being glued to
		// the torn one and skipped as unreadable by the next start.
		if n > 0 {
			if off, serr := j.f.Seek(-int64(n), io.SeekCurrent); serr == nil {
				_ = j.f.Truncate(off)
			}
		}
		j.mu.Unlock()
		return fmt.Errorf("journal: write: %w", err)
	}
	if rec.durable() {
		if err := j.f.Sync(); err != nil {
			j.mu.Unlock()
			return fmt.Errorf("journal: fsync: %w", err)
		}
	}
	j.apply(rec)
	hook := j.afterAppend
	j.mu.Unlock()
	if hook != nil {
		hook(rec)
	}
	return nil
}

// step returns a copy of the state of step id, and whether it is known.
func (j *journal) step(id string) (stepState, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	st, ok := j.steps[id]
	if !ok {
		return stepState{}, false
	}
	return st.clone(), true
}

func (s *stepState) clone() stepState {
	c := *s
	c.Actions = make(map[int]*actionState, len(s.Actions))
	for i, a := range s.Actions {
		ac := *a
		c.Actions[i] = &ac
	}
	c.Reboots = append([]string(nil), s.Reboots...)
	return c
}

// all returns copies of every step, in the order they were taken on.
func (j *journal) all() []stepState {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]stepState, len(j.steps))
	for _, st := range j.steps {
		out[st.seq] = st.clone()
	}
	return out
}

// latestApply returns the last apply step of rollout on node taken on
// before seq (any when seq < 0).
func (j *journal) latestApply(rollout, node string, before int) (stepState, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var best *stepState
	for _, st := range j.steps {
		if st.Payload.Kind != kindApply || st.Payload.Rollout != rollout {
			continue
		}
		if r, n, _, _, ok := parseStepID(st.ID); !ok || r != rollout || n != node {
			continue
		}
		if before >= 0 && st.seq >= before {
			continue
		}
		if best == nil || st.seq > best.seq {
			best = st
		}
	}
	if best == nil {
		return stepState{}, false
	}
	return best.clone(), true
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f.Close()
}

// syncDir makes a file's creation or rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("journal: fsync %s: %w", dir, err)
	}
	return nil
}

// pendingEvidence lists the steps whose evidence bundle was captured and
// not yet taken by the server, in the order they were taken on.
func (j *journal) pendingEvidence() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var ids []string
	var seqs []int
	for id, st := range j.steps {
		if st.EvidenceCaptured && !st.EvidenceSent {
			ids, seqs = append(ids, id), append(seqs, st.seq)
		}
	}
	idx := make([]int, len(ids))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return seqs[a] - seqs[b] })
	out := make([]string, len(ids))
	for i, k := range idx {
		out[i] = ids[k]
	}
	return out
}
