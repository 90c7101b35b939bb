package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// SimClock is the clock the simulated driver waits on. The agent's clock
// satisfies it; nil means the real clock.
type SimClock interface {
	After(d time.Duration) <-chan time.Time
}

// SimHealthCommand is the command a probe runs to ask a simulated node
// whether it is healthy: through SimState.Runner it exits 0 when Healthy
// and 1 with the reason otherwise. Plans of the demo use
//
//	kind: command
//	command: [drover-sim-health]
//
// and http probes work through SimState.Transport, systemd probes through
// SimState.Runner ("systemctl is-active UNIT").
const SimHealthCommand = "drover-sim-health"

// SimState is one simulated node: a small package database (package name
// to version), running and default kernel, loaded live patches, container
// runtime versions, a fake boot ID with a reboot counter, and counters of
// driver calls. It is safe for concurrent use.
//
// The exported fields are behaviour knobs; set them before the state is
// shared and do not change them afterwards.
type SimState struct {
	// Family is the node's os family; it selects per-family package pins.
	Family string
	// ApplyDelay is how long Apply and Rollback take, waited on Clock
	// (nil: the real clock). The change takes effect at the end: an Apply
	// cancelled while waiting changes nothing.
	ApplyDelay time.Duration
	Clock      SimClock
	// FailApply, when it returns an error for an action, makes Apply fail
	// with it before changing anything (e.g. an error wrapping ErrLocked).
	FailApply func(a plan.Action) error
	// FailPreflight, when it returns an error for an action, makes
	// Preflight fail with it (e.g. one wrapping ErrUnavailable: the
	// node's repository lacks the target version).
	FailPreflight func(a plan.Action) error
	// Hurts, when it returns true for an action, lets the change apply but
	// makes the node unhealthy (Healthy false) until it is rolled back.
	Hurts func(a plan.Action) bool
	// OnApply, if set, is called at the start of every Apply, before the
	// delay (tests use it to crash an agent mid-step).
	OnApply func(a plan.Action)

	mu   sync.Mutex
	db   simDB
	path string // file-backed when not ""
}

// simDB is the persistent part of a SimState.
type simDB struct {
	Packages      map[string]string `json:"packages"`
	Kernel        string            `json:"kernel"`        // running
	KernelDefault string            `json:"kernelDefault"` // booted next
	// KernelOnce, when set, is booted by the next reboot only (a boot
	// loader's one-shot entry), then cleared.
	KernelOnce  string            `json:"kernelOnce,omitempty"`
	LivePatches []string          `json:"livePatches,omitempty"`
	Holds       []string          `json:"holds,omitempty"` // held packages, sorted
	Runtimes    map[string]string `json:"runtimes,omitempty"`
	Scripts     []string          `json:"scripts,omitempty"` // artifacts run, in order
	Restarts    map[string]int    `json:"restarts,omitempty"`
	Drained     bool              `json:"drained,omitempty"`
	BootSeq     int               `json:"bootSeq"`
	Name        string            `json:"name"` // prefix of boot IDs
	Reboots     int               `json:"reboots"`
	Hurt        map[string]string `json:"hurt,omitempty"` // action key -> reason
	Applies     int               `json:"applies"`
	Rollbacks   int               `json:"rollbacks"`
}

// NewSimState returns a simulated node named name (used in boot IDs) of os
// family, with the given installed packages (copied) and running kernel.
func NewSimState(name, family, kernel string, packages map[string]string) *SimState {
	return &SimState{
		Family: family,
		db: simDB{
			Name:          name,
			Packages:      maps.Clone(packages),
			Kernel:        kernel,
			KernelDefault: kernel,
			Runtimes:      map[string]string{},
			Restarts:      map[string]int{},
			Hurt:          map[string]string{},
		},
	}
}

// SetRuntime records container runtime (containerd, docker, cri-o) as
// installed at version, as a node's facts report it; "" removes it.
func (s *SimState) SetRuntime(runtime, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == "" {
		delete(s.db.Runtimes, runtime)
		return
	}
	s.db.Runtimes[runtime] = version
}

// Persist makes s file-backed at path (e.g. StateDir/sim.json): if the
// file exists, its database replaces s's; every change is then written to
// it atomically (write, fsync, rename).
func (s *SimState) Persist(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var db simDB
		if err := json.Unmarshal(b, &db); err != nil {
			return fmt.Errorf("sim state %s: %w", path, err)
		}
		if db.Packages == nil {
			db.Packages = map[string]string{}
		}
		if db.Runtimes == nil {
			db.Runtimes = map[string]string{}
		}
		if db.Restarts == nil {
			db.Restarts = map[string]int{}
		}
		if db.Hurt == nil {
			db.Hurt = map[string]string{}
		}
		s.db = db
		s.path = path
		return nil
	case errors.Is(err, os.ErrNotExist):
		s.path = path
		return s.saveLocked()
	default:
		return fmt.Errorf("sim state: %w", err)
	}
}

// saveLocked writes the database when file-backed. s.mu must be held.
func (s *SimState) saveLocked() error {
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s.db, "", "  ")
	if err != nil {
		return fmt.Errorf("sim state: %w", err)
	}
	tmp := s.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("sim state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("sim state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sim state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sim state: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("sim state: %w", err)
	}
	return nil
}

// Version returns the installed version of a package.
func (s *SimState) Version(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.db.Packages[name]
	return v, ok
}

// BootID is the node's current boot ID; it changes on every Reboot.
func (s *SimState) BootID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bootIDLocked()
}

func (s *SimState) bootIDLocked() string {
	return s.db.Name + "-boot-" + strconv.Itoa(s.db.BootSeq)
}

// Reboots is how many times the node rebooted.
func (s *SimState) Reboots() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Reboots
}

// Applies is how many times Apply was called, including calls that changed
// nothing or failed. Tests use it to prove a step was not re-run.
func (s *SimState) Applies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Applies
}

// Rollbacks is how many times Rollback was called.
func (s *SimState) Rollbacks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Rollbacks
}

// Drained reports whether the simulated Kubernetes node is out of service.
func (s *SimState) Drained() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Drained
}

// Healthy reports whether no applied action hurts the node.
func (s *SimState) Healthy() bool {
	ok, _ := s.Health()
	return ok
}

// Health reports whether the node is healthy and, if not, why.
func (s *SimState) Health() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.db.Hurt) == 0 {
		return true, ""
	}
	reasons := slices.Sorted(maps.Values(s.db.Hurt))
	return false, strings.Join(reasons, "; ")
}

// Reboot reboots the simulated node: a new boot ID, the default kernel
// becomes the running one. It satisfies the agent's Rebooter.
func (s *SimState) Reboot(ctx context.Context, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db.BootSeq++
	s.db.Reboots++
	s.db.Kernel = s.db.KernelDefault
	if s.db.KernelOnce != "" {
		s.db.Kernel, s.db.KernelOnce = s.db.KernelOnce, ""
	}
	return s.saveLocked()
}

// Facts returns base with the simulated node's state filled in: packages,
// kernel, boot ID, live patches, container runtimes, reboot-required.
func (s *SimState) Facts(base fleet.Facts) fleet.Facts {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := base
	f.OS.Family = s.Family
	f.Packages = maps.Clone(s.db.Packages)
	f.Kernel = s.db.Kernel
	f.BootID = s.bootIDLocked()
	f.LivePatches = slices.Clone(s.db.LivePatches)
	f.Holds = slices.Clone(s.db.Holds)
	f.Runtime = fleet.Runtime{
		Containerd: s.db.Runtimes["containerd"],
		Docker:     s.db.Runtimes["docker"],
		CRIO:       s.db.Runtimes["cri-o"],
	}
	f.RebootRequired = s.db.Kernel != s.db.KernelDefault
	return f
}

// Runner returns a Runner that answers the probes of a simulated node:
// SimHealthCommand (exit 0 when healthy, 1 with the reason) and
// "systemctl is-active UNIT" (active when healthy, failed otherwise).
// Other commands go to next, or fail as not found when next is nil.
func (s *SimState) Runner(next Runner) Runner {
	return simRunner{s: s, next: next}
}

type simRunner struct {
	s    *SimState
	next Runner
}

func (r simRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	ok, why := r.s.Health()
	switch {
	case name == SimHealthCommand:
		if ok {
			return []byte("healthy\n"), nil, nil
		}
		return nil, []byte(why), &ExitError{Code: 1, Stderr: why}
	case name == "systemctl" && len(args) == 2 && args[0] == "is-active":
		if ok {
			return []byte("active\n"), nil, nil
		}
		return []byte("failed\n"), nil, &ExitError{Code: 3}
	case r.next != nil:
		return r.next.Run(ctx, env, name, args...)
	}
	return nil, nil, fmt.Errorf("sim: %s: command not found", name)
}

// Transport returns an http.RoundTripper that serves every request as the
// simulated node's health endpoint, without a socket: 200 "ok" when
// healthy, 503 with the reason otherwise. Give it to the prober's HTTP
// client so that plan probes such as http://localhost:9100/healthz work
// on thousands of simulated nodes in one process.
func (s *SimState) Transport() http.RoundTripper { return simTransport{s} }

type simTransport struct{ s *SimState }

func (t simTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	if req.Body != nil {
		req.Body.Close()
	}
	status, body := http.StatusOK, "ok\n"
	if ok, why := t.s.Health(); !ok {
		status, body = http.StatusServiceUnavailable, why+"\n"
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(bytes.NewReader([]byte(body))),
		ContentLength: int64(len(body)),
		Request:       req,
	}, nil
}

// Sim is the simulated driver: it performs every action kind on a
// SimState with the semantics of a real package manager. Preflight and
// Snapshot change nothing; Apply of an action already in place changes
// nothing; Rollback restores the snapshot (a downgrade) and is idempotent.
type Sim struct {
	s *SimState
}

var (
	_ Driver          = (*Sim)(nil)
	_ RestartDeferrer = (*Sim)(nil)
)

// NewSim returns the simulated driver of one node.
func NewSim(state *SimState) *Sim { return &Sim{s: state} }

// Name is "sim".
func (d *Sim) Name() string { return "sim" }

// simSnapshot is the Data of a simulated snapshot: the previous value of
// everything the action touches; "" means absent.
type simSnapshot struct {
	Packages map[string]string `json:"packages,omitempty"`
	Kernel   string            `json:"kernel,omitempty"`  // default kernel before
	Running  string            `json:"running,omitempty"` // kernel running before (kernel actions)
	Patch    *bool             `json:"patchLoaded,omitempty"`
	Held     []string          `json:"held,omitempty"` // of the action's packages, those held before
	Runtime  map[string]string `json:"runtime,omitempty"`
	Drained  *bool             `json:"drained,omitempty"`
}

// pins returns the package pins of a for the node's family; on Windows,
// as the windows-update driver does, the KBs for the build the node runs.
// s.mu must be held.
func (d *Sim) pins(pa *plan.PackageAction) ([]plan.PackagePin, error) {
	pins, ok := pa.Families[d.s.Family]
	if !ok {
		pins = pa.Packages
	}
	if slices.ContainsFunc(pins, func(p plan.PackagePin) bool { return d.windowsBuild(p.Version) }) {
		return forBuild(pins, d.s.db.Kernel)
	}
	return pins, nil
}

// windowsBuild reports whether a Windows pin's version is a build with its
// update revision (10.0.20348.2700): installing it changes the build the
// node runs after its next reboot, as a cumulative update does.
func (d *Sim) windowsBuild(v string) bool {
	return d.s.Family == "windows" && strings.Count(v, ".") == 3
}

// diffLocked returns what applying a would change. s.mu must be held.
func (d *Sim) diffLocked(a plan.Action) ([]ChangeItem, []string, error) {
	db := &d.s.db
	kind, err := KindOf(a)
	if err != nil {
		return nil, nil, err
	}
	var items []ChangeItem
	var notes []string
	switch kind {
	case plan.ActionPackage:
		pins, err := d.pins(a.Package)
		if err != nil {
			return nil, nil, err
		}
		if len(pins) == 0 {
			return nil, nil, fmt.Errorf("no packages for os family %s: %w", d.s.Family, ErrUnsupported)
		}
		for _, p := range pins {
			cur, ok := db.Packages[p.Name]
			switch {
			// Windows Update installs a KB whatever the operation.
			case !ok && a.Package.Operation != plan.PackageInstall && (d.s.Family != "windows" || plan.WindowsKB.Check(p.Name) != nil):
				notes = append(notes, p.Name+" not installed, not upgraded")
			case cur != p.Version:
				items = append(items, ChangeItem{Name: p.Name, From: cur, To: p.Version})
			}
		}
	case plan.ActionKernel:
		if db.KernelDefault != a.Kernel.Version {
			items = append(items, ChangeItem{Name: "kernel", From: db.KernelDefault, To: a.Kernel.Version})
		}
	case plan.ActionLivePatch:
		if !slices.Contains(db.LivePatches, a.LivePatch.ID) {
			items = append(items, ChangeItem{Name: "livepatch " + a.LivePatch.ID, From: "", To: "loaded"})
		}
	case plan.ActionContainerRuntime:
		if cur := db.Runtimes[a.ContainerRuntime.Runtime]; cur != a.ContainerRuntime.Version {
			items = append(items, ChangeItem{Name: a.ContainerRuntime.Runtime, From: cur, To: a.ContainerRuntime.Version})
		}
	case plan.ActionServiceRestart:
		items = append(items, ChangeItem{Name: a.ServiceRestart.Service, From: "running", To: "restarted"})
	case plan.ActionKubernetesNode:
		if !db.Drained {
			items = append(items, ChangeItem{Name: "node", From: "schedulable", To: "drained"})
		}
	case plan.ActionScript:
		items = append(items, ChangeItem{Name: "script " + a.Script.Artifact, To: "run"})
	}
	return items, notes, nil
}

// Preflight says what Apply would change; None when nothing.
func (d *Sim) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	if err := ctx.Err(); err != nil {
		return Change{}, err
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	items, notes, err := d.diffLocked(a)
	if err != nil {
		return Change{}, fmt.Errorf("sim preflight: %w", err)
	}
	if d.s.FailPreflight != nil {
		if err := d.s.FailPreflight(a); err != nil {
			return Change{}, fmt.Errorf("sim preflight: %w", err)
		}
	}
	c := Change{Items: items, None: len(items) == 0, Reboot: a.Kernel != nil && len(items) > 0}
	if a.Package != nil {
		for _, it := range items {
			op := PlannedOp{Op: "upgrade", Name: it.Name, From: it.From, To: it.To}
			if it.From == "" {
				op.Op = "install"
			}
			c.Planned = append(c.Planned, op)
		}
	}
	c.Summary = simSummarize(items, "nothing to change")
	if len(notes) > 0 {
		c.Summary += " (" + strings.Join(notes, "; ") + ")"
	}
	return c, nil
}

func simSummarize(items []ChangeItem, none string) string {
	if len(items) == 0 {
		return none
	}
	parts := make([]string, len(items))
	for i, it := range items {
		from := it.From
		if from == "" {
			from = "(none)"
		}
		parts[i] = it.Name + " " + from + " -> " + it.To
	}
	return strings.Join(parts, ", ")
}

// Snapshot records the previous state of everything a touches.
func (d *Sim) Snapshot(ctx context.Context, a plan.Action) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	snap, err := d.snapshotLocked(a)
	if err != nil {
		return Snapshot{}, fmt.Errorf("sim snapshot: %w", err)
	}
	data, err := json.Marshal(snap)
	if err != nil {
		return Snapshot{}, fmt.Errorf("sim snapshot: %w", err)
	}
	return Snapshot{Driver: "sim", Summary: simSnapSummary(snap), Data: data}, nil
}

func (d *Sim) snapshotLocked(a plan.Action) (simSnapshot, error) {
	db := &d.s.db
	kind, err := KindOf(a)
	if err != nil {
		return simSnapshot{}, err
	}
	var snap simSnapshot
	switch kind {
	case plan.ActionPackage:
		pins, err := d.pins(a.Package)
		if err != nil {
			return simSnapshot{}, err
		}
		snap.Packages = map[string]string{}
		for _, p := range pins {
			snap.Packages[p.Name] = db.Packages[p.Name]
			if d.windowsBuild(p.Version) {
				snap.Kernel = db.KernelDefault
			}
			if slices.Contains(db.Holds, p.Name) {
				snap.Held = append(snap.Held, p.Name)
			}
		}
	case plan.ActionKernel:
		snap.Kernel = db.KernelDefault
		snap.Running = db.Kernel
	case plan.ActionLivePatch:
		loaded := slices.Contains(db.LivePatches, a.LivePatch.ID)
		snap.Patch = &loaded
	case plan.ActionContainerRuntime:
		snap.Runtime = map[string]string{a.ContainerRuntime.Runtime: db.Runtimes[a.ContainerRuntime.Runtime]}
	case plan.ActionKubernetesNode:
		drained := db.Drained
		snap.Drained = &drained
	}
	return snap, nil
}

func simSnapSummary(s simSnapshot) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(s.Packages)) {
		v := s.Packages[n]
		if v == "" {
			v = "(not installed)"
		}
		parts = append(parts, n+" "+v)
	}
	if s.Kernel != "" {
		parts = append(parts, "kernel "+s.Kernel)
	}
	if s.Patch != nil {
		parts = append(parts, "patch loaded="+strconv.FormatBool(*s.Patch))
	}
	for _, n := range slices.Sorted(maps.Keys(s.Runtime)) {
		parts = append(parts, n+" "+s.Runtime[n])
	}
	if s.Drained != nil {
		parts = append(parts, "drained="+strconv.FormatBool(*s.Drained))
	}
	if len(parts) == 0 {
		return "nothing to restore"
	}
	return strings.Join(parts, ", ")
}

// wait waits ApplyDelay on the clock, or until ctx ends.
func (d *Sim) wait(ctx context.Context) error {
	if d.s.ApplyDelay <= 0 {
		return ctx.Err()
	}
	var ch <-chan time.Time
	if d.s.Clock != nil {
		ch = d.s.Clock.After(d.s.ApplyDelay)
	} else {
		t := time.NewTimer(d.s.ApplyDelay)
		defer t.Stop()
		ch = t.C
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// simActionKey identifies an action for the hurt set.
func simActionKey(a plan.Action) string {
	b, _ := json.Marshal(a)
	return string(b)
}

// ApplyDeferred is Apply: a simulated node runs no services, so there is
// no restart to hold back for a pre-restart check.
func (d *Sim) ApplyDeferred(ctx context.Context, a plan.Action) (Outcome, error) {
	return d.Apply(ctx, a)
}

// RunDeferred has nothing to run (see ApplyDeferred).
func (d *Sim) RunDeferred(context.Context, plan.Action, []string) error { return nil }

// Apply makes the change after ApplyDelay. A kernel takes effect at the
// next Reboot (RebootRequired).
func (d *Sim) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	d.s.mu.Lock()
	d.s.db.Applies++
	d.s.mu.Unlock()
	if d.s.OnApply != nil {
		d.s.OnApply(a)
	}
	if d.s.FailApply != nil {
		if err := d.s.FailApply(a); err != nil {
			return Outcome{}, err
		}
	}
	if err := d.wait(ctx); err != nil {
		return Outcome{}, err
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	db := &d.s.db
	items, _, err := d.diffLocked(a)
	if err != nil {
		return Outcome{}, fmt.Errorf("sim apply: %w", err)
	}
	kind, _ := KindOf(a)
	var out Outcome
	var held []string
	switch kind {
	case plan.ActionPackage:
		for _, it := range items {
			db.Packages[it.Name] = it.To
			if d.windowsBuild(it.To) {
				db.KernelDefault = it.To
			}
		}
		if a.Package.Hold && simHolds(d.s.Family) {
			// As the package drivers: the pinned packages held afterwards
			// (pins cannot fail here: diffLocked read them).
			pins, _ := d.pins(a.Package)
			for _, p := range pins {
				if _, ok := db.Packages[p.Name]; ok && !slices.Contains(db.Holds, p.Name) {
					db.Holds = append(db.Holds, p.Name)
					held = append(held, p.Name)
				}
			}
			slices.Sort(db.Holds)
		}
	case plan.ActionKernel:
		if len(items) > 0 {
			db.KernelDefault = a.Kernel.Version
		}
	case plan.ActionLivePatch:
		if len(items) > 0 {
			db.LivePatches = append(db.LivePatches, a.LivePatch.ID)
		}
	case plan.ActionContainerRuntime:
		db.Runtimes[a.ContainerRuntime.Runtime] = a.ContainerRuntime.Version
	case plan.ActionServiceRestart:
		db.Restarts[a.ServiceRestart.Service]++
	case plan.ActionKubernetesNode:
		db.Drained = true
	case plan.ActionScript:
		db.Scripts = append(db.Scripts, a.Script.Artifact)
	}
	out.Changed = items
	out.Summary = simSummarize(items, "already in place, nothing changed")
	if len(held) > 0 {
		out.Summary += "; held " + strings.Join(held, ", ")
	}
	out.RebootRequired = db.Kernel != db.KernelDefault
	if d.s.Hurts != nil && d.s.Hurts(a) && len(items) > 0 {
		db.Hurt[simActionKey(a)] = "simulated: " + out.Summary + " hurts this node"
	}
	if err := d.s.saveLocked(); err != nil {
		return out, err
	}
	return out, nil
}

// Verify returns nil when a's target state holds.
func (d *Sim) Verify(ctx context.Context, a plan.Action) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	kind, err := KindOf(a)
	if err != nil {
		return fmt.Errorf("sim verify: %w", err)
	}
	switch kind {
	case plan.ActionServiceRestart, plan.ActionScript:
		return nil // nothing persistent to check
	}
	items, _, err := d.diffLocked(a)
	if err != nil {
		return fmt.Errorf("sim verify: %w", err)
	}
	if len(items) > 0 {
		return fmt.Errorf("sim verify: not in target state: %s", simSummarize(items, ""))
	}
	return nil
}

// Uncordon returns a simulated Kubernetes node to service after the
// step's later actions, as the kubernetes-node driver does: like its
// rollback, by the snapshot, so a node drained before the step stays
// drained. Only kubernetes-node actions have one.
func (d *Sim) Uncordon(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	if kind, err := KindOf(a); err != nil || kind != plan.ActionKubernetesNode {
		return Outcome{}, fmt.Errorf("sim: uncordon of a %s action: only kubernetes-node actions take a node out of service", kind)
	}
	return d.restore(ctx, a, s)
}

// Rollback restores the snapshot s.
func (d *Sim) Rollback(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	d.s.mu.Lock()
	d.s.db.Rollbacks++
	d.s.mu.Unlock()
	return d.restore(ctx, a, s)
}

// restore brings the simulated node back to the snapshot s.
func (d *Sim) restore(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	var snap simSnapshot
	if err := json.Unmarshal(s.Data, &snap); err != nil {
		return Outcome{}, fmt.Errorf("sim rollback: bad snapshot: %w", err)
	}
	kind, err := KindOf(a)
	if err != nil {
		return Outcome{}, fmt.Errorf("sim rollback: %w", err)
	}
	if kind == plan.ActionScript {
		if a.Script.RollbackArtifact() == "" {
			return Outcome{}, fmt.Errorf("sim rollback: script %s has no rollback artifact: %w", a.Script.Artifact, ErrUnsupported)
		}
	}
	if err := d.wait(ctx); err != nil {
		return Outcome{}, err
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	db := &d.s.db
	var items []ChangeItem
	switch kind {
	case plan.ActionPackage:
		for _, n := range slices.Sorted(maps.Keys(snap.Packages)) {
			want, cur := snap.Packages[n], db.Packages[n]
			if want == cur {
				continue
			}
			items = append(items, ChangeItem{Name: n, From: cur, To: want})
			if want == "" {
				delete(db.Packages, n)
			} else {
				db.Packages[n] = want
			}
		}
		if snap.Kernel != "" && db.KernelDefault != snap.Kernel {
			items = append(items, ChangeItem{Name: "build", From: db.KernelDefault, To: snap.Kernel})
			db.KernelDefault = snap.Kernel
		}
		// Holds as they were: the action's holds released, earlier ones kept.
		db.Holds = slices.DeleteFunc(db.Holds, func(h string) bool {
			_, ours := snap.Packages[h]
			return ours && !slices.Contains(snap.Held, h)
		})
	case plan.ActionKernel:
		if snap.Kernel != "" && db.KernelDefault != snap.Kernel {
			items = append(items, ChangeItem{Name: "kernel", From: db.KernelDefault, To: snap.Kernel})
			db.KernelDefault = snap.Kernel
		}
	case plan.ActionLivePatch:
		loaded := slices.Contains(db.LivePatches, a.LivePatch.ID)
		if snap.Patch != nil && !*snap.Patch && loaded {
			db.LivePatches = slices.DeleteFunc(db.LivePatches, func(id string) bool { return id == a.LivePatch.ID })
			items = append(items, ChangeItem{Name: "livepatch " + a.LivePatch.ID, From: "loaded", To: ""})
		}
	case plan.ActionContainerRuntime:
		for n, want := range snap.Runtime {
			if cur := db.Runtimes[n]; cur != want {
				items = append(items, ChangeItem{Name: n, From: cur, To: want})
				db.Runtimes[n] = want
			}
		}
	case plan.ActionKubernetesNode:
		if snap.Drained != nil && !*snap.Drained && db.Drained {
			db.Drained = false
			items = append(items, ChangeItem{Name: "node", From: "drained", To: "schedulable"})
		}
	case plan.ActionScript:
		db.Scripts = append(db.Scripts, a.Script.RollbackArtifact())
		items = append(items, ChangeItem{Name: "script " + a.Script.RollbackArtifact(), To: "run"})
	}
	delete(db.Hurt, simActionKey(a))
	out := Outcome{Changed: items, Summary: simSummarize(items, "already restored, nothing changed")}
	out.RebootRequired = db.Kernel != db.KernelDefault
	if err := d.s.saveLocked(); err != nil {
		return out, err
	}
	return out, nil
}

// VerifyRollback returns nil when the state a touches equals the snapshot
// s again. The agent uses it, when a driver has it, to check a rollback.
func (d *Sim) VerifyRollback(ctx context.Context, a plan.Action, s Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var want simSnapshot
	if err := json.Unmarshal(s.Data, &want); err != nil {
		return fmt.Errorf("sim verify rollback: bad snapshot: %w", err)
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	got, err := d.snapshotLocked(a)
	if err != nil {
		return fmt.Errorf("sim verify rollback: %w", err)
	}
	if g, w := simSnapSummary(got), simSnapSummary(want); g != w {
		return fmt.Errorf("sim verify rollback: state is %s, snapshot has %s", g, w)
	}
	return nil
}

var _ KernelFallback = (*Sim)(nil)

// Kernels returns the kernel the node ran when s was taken and the one
// it runs.
func (d *Sim) Kernels(ctx context.Context, a plan.Action, s Snapshot) (string, string, error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	var snap simSnapshot
	if err := json.Unmarshal(s.Data, &snap); err != nil {
		return "", "", fmt.Errorf("sim kernels: bad snapshot: %w", err)
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	return snap.Running, d.s.db.Kernel, nil
}

// SetFallbackBoot makes the next reboot start the kernel the snapshot's
// node ran (fallback: oneshot), or makes it the default (fallback:
// default, and for onRollback: hold).
func (d *Sim) SetFallbackBoot(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return Outcome{}, err
	}
	var snap simSnapshot
	if err := json.Unmarshal(s.Data, &snap); err != nil || a.Kernel == nil || snap.Running == "" {
		return Outcome{}, fmt.Errorf("sim fallback: no kernel recorded to boot: %w", ErrUnsupported)
	}
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	how := "one-shot"
	if a.Kernel.Fallback == plan.KernelFallbackDefault || a.Kernel.OnRollback == plan.KernelHold {
		d.s.db.KernelDefault, how = snap.Running, "default"
	} else {
		d.s.db.KernelOnce = snap.Running
	}
	if err := d.s.saveLocked(); err != nil {
		return Outcome{}, err
	}
	return Outcome{Summary: "boot kernel " + snap.Running + " next (" + how + " entry); reboot required", RebootRequired: true,
		Changed: []ChangeItem{{Name: "boot entry", To: snap.Running}}}, nil
}

// simHolds: the simulated family's package manager holds packages (apt,
// dnf versionlock, zypper locks; Windows and macOS have no holds).
func simHolds(family string) bool {
	return family != "windows" && family != "macos"
}

// SetHold holds or releases a package as someone on the node would by
// hand (apt-mark hold/unhold). Tests of drift detection use it.
func (s *SimState) SetHold(name string, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db.Holds = slices.DeleteFunc(s.db.Holds, func(h string) bool { return h == name })
	if held {
		s.db.Holds = append(s.db.Holds, name)
		slices.Sort(s.db.Holds)
	}
	_ = s.saveLocked()
}

// SetPackage changes a package as someone on the node would by hand
// (apt-get install, dpkg -i): version "" removes it. Tests of drift
// detection use it between polls.
func (s *SimState) SetPackage(name, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == "" {
		delete(s.db.Packages, name)
	} else {
		s.db.Packages[name] = version
	}
	_ = s.saveLocked()
}
