// Package evidence captures a bounded evidence bundle on a node: what an
// operator checks first in an update outage (essay 002's playbook) —
// what the step changed, kernel and boot ID, failed units and their last
// log lines, missing libraries of the service's binary, resolver
// configuration and answers, routes and MTUs, mounts, time sync, the
// iptables backend, IO latency and utilisation, TLS handshakes to the
// probes' endpoints, connection counts by state and kernel errors.
//
// The agent captures a bundle when a step or a node gate fails, before
// anything is rolled back, and on the server's demand from any node.
//
// Bounds: a capture takes at most Spec.Deadline (DefaultDeadline, 10 s)
// in total and each collector at most Spec.CollectorTimeout
// (DefaultCollectorTimeout, 5 s); collectors run concurrently. Each
// section's data is at most Spec.MaxSection bytes of JSON
// (DefaultMaxSection, 64 KiB) and the whole bundle's sections at most
// Spec.MaxTotal (DefaultMaxTotal, 512 KiB); what is cut is marked
// Truncated. A bundle's encoding is therefore below MaxTotal plus the
// sections' names, errors and timings (under 8 KiB for the 17 Linux
// sections): MaxBundleBytes bounds it, and the server refuses larger.
//
// Collectors are functions of a Host (command runner, root directory,
// resolver, TLS dialer), so tests run them over captured outputs; the
// parse functions are pure over bytes and named by what they parse.
package evidence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Bounds (see the package comment).
const (
	DefaultDeadline         = 10 * time.Second
	DefaultCollectorTimeout = 5 * time.Second
	DefaultMaxSection       = 64 << 10
	DefaultMaxTotal         = 512 << 10
	DefaultJournalLines     = 50
	// MaxBundleBytes bounds a bundle's JSON encoding with the default
	// bounds: MaxTotal plus room for names, errors and timings.
	MaxBundleBytes = DefaultMaxTotal + 64<<10
)

// Reasons a bundle is captured.
const (
	ReasonFailure  = "failure"
	ReasonOnDemand = "on-demand"
)

// Section is one dimension of a bundle. Data is the collector's typed
// value (see the Section names and their types below) or a JSON string
// of text; Error says why the collector gave nothing (a missing tool, a
// timeout); Truncated marks data cut to the bounds.
type Section struct {
	Name      string          `json:"name"`
	Data      json.RawMessage `json:"data,omitempty"`
	Error     string          `json:"error,omitempty"`
	Truncated bool            `json:"truncated,omitempty"`
	Took      time.Duration   `json:"took"`
}

// Bundle is one capture on one node.
type Bundle struct {
	Node       string        `json:"node"`
	Rollout    string        `json:"rollout,omitempty"`
	Step       string        `json:"step,omitempty"`
	Reason     string        `json:"reason"` // failure | on-demand
	OS         string        `json:"os"`     // runtime.GOOS of the agent
	CapturedAt time.Time     `json:"capturedAt"`
	Took       time.Duration `json:"took"`
	// Truncated: some section was cut or left out for the total bound.
	Truncated bool      `json:"truncated,omitempty"`
	Sections  []Section `json:"sections"`
}

// Section returns the section named name, or nil.
func (b *Bundle) Section(name string) *Section {
	for i := range b.Sections {
		if b.Sections[i].Name == name {
			return &b.Sections[i]
		}
	}
	return nil
}

// Decode decodes the data of section name into v; false when the section
// is absent, empty, or its data is not of v's type (cut by the bound).
func (b *Bundle) Decode(name string, v any) bool {
	s := b.Section(name)
	if s == nil || len(s.Data) == 0 {
		return false
	}
	return json.Unmarshal(s.Data, v) == nil
}

// PackageChange is one package a step changed.
type PackageChange struct {
	Name   string `json:"name"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// Spec says what to capture and within which bounds. Zero bounds take
// the defaults.
type Spec struct {
	Node, Rollout, Step, Reason string
	// Packages is what the step changed (before and after), from its
	// snapshots and outcomes.
	Packages []PackageChange
	// Units are the services the plan names or probes: their state, last
	// log lines and their binary's linkage are captured.
	Units []string
	// Binaries are the binaries the step's linkage probes name: their
	// linkage is captured (hosts without systemd name their services'
	// binaries this way).
	Binaries []string
	// Names are the host names the probes use (resolved); Endpoints the
	// host:port of their HTTPS URLs and TCP addresses (TLS handshake).
	Names     []string
	Endpoints []string
	// CAFiles maps an endpoint to the CA bundle its tls probe verifies
	// with; the bundle verifies the endpoint's chain with it.
	CAFiles map[string]string
	// JournalLines is N in "the last N log lines" (default 50).
	JournalLines     int
	Deadline         time.Duration
	CollectorTimeout time.Duration
	MaxSection       int
	MaxTotal         int
	// DiskSample is the time between the two /proc/diskstats samples
	// (default 1 s).
	DiskSample time.Duration
}

// Runner runs a program and returns its standard output (and, on
// error, what it wrote to standard error in the error).
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Host is the node evidence is taken from.
type Host struct {
	// GOOS selects the collectors (runtime.GOOS when empty).
	GOOS string
	// Root prefixes the paths of files read (/proc, /sys, /etc); "" is /.
	Root string
	Run  Runner
	// LookupHost resolves a name (net.DefaultResolver.LookupHost).
	LookupHost func(ctx context.Context, name string) ([]string, error)
	// Handshake does a TLS handshake with addr (host:port) and describes
	// the peer's chain (TLSHandshake).
	Handshake func(ctx context.Context, addr string) (TLSResult, error)
	// Sleep waits between samples (time.Sleep under ctx when nil).
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
}

// LocalHost is the machine the agent runs on.
func LocalHost() Host {
	return Host{GOOS: runtime.GOOS, Run: ExecRunner, LookupHost: defaultLookup, Handshake: TLSHandshake}
}

// ExecRunner runs name with os/exec, in the C locale.
func ExecRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0")
	var stderr strings.Builder
	cmd.Stderr = &limitWriter{w: &stderr, n: 4096}
	out, err := cmd.Output()
	if err != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return out, fmt.Errorf("%s: %w: %s", name, err, s)
		}
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

type limitWriter struct {
	w *strings.Builder
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if rest := l.n - l.w.Len(); rest > 0 {
		l.w.Write(p[:min(len(p), rest)])
	}
	return len(p), nil
}

func (h Host) path(p string) string {
	if h.Root == "" {
		return p
	}
	return filepath.Join(h.Root, p)
}

func (h Host) read(p string) ([]byte, error) { return os.ReadFile(h.path(p)) }

func (h Host) sleep(ctx context.Context, d time.Duration) error {
	if h.Sleep != nil {
		return h.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// collector produces one section's data (any JSON-encodable value; a
// string is kept as text).
type collector struct {
	name string
	run  func(ctx context.Context, h Host, s Spec) (any, error)
}

// errNoTool marks a collector whose tool is absent on the node.
var errNoTool = errors.New("tool not available on this node")

// Capture takes a bundle from h as s says, within s's bounds. It never
// fails: a collector that fails gives a section with its error.
func Capture(ctx context.Context, h Host, s Spec) *Bundle {
	if h.GOOS == "" {
		h.GOOS = runtime.GOOS
	}
	if h.Run == nil {
		h.Run = ExecRunner
	}
	s = s.withDefaults()
	start := h.now()
	ctx, cancel := context.WithTimeout(ctx, s.Deadline)
	defer cancel()
	cs := Collectors(h.GOOS)
	secs := make([]Section, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.CollectorTimeout)
			defer cancel()
			t0 := time.Now()
			secs[i] = runCollector(cctx, c, h, s)
			secs[i].Took = time.Since(t0).Round(time.Millisecond)
		})
	}
	wg.Wait()
	b := &Bundle{Node: s.Node, Rollout: s.Rollout, Step: s.Step, Reason: s.Reason, OS: h.GOOS, CapturedAt: start.UTC(), Sections: secs}
	b.Truncated = boundTotal(b.Sections, s.MaxTotal)
	for _, sec := range b.Sections {
		b.Truncated = b.Truncated || sec.Truncated
	}
	b.Took = h.now().Sub(start).Round(time.Millisecond)
	return b
}

func (s Spec) withDefaults() Spec {
	if s.Deadline <= 0 {
		s.Deadline = DefaultDeadline
	}
	if s.CollectorTimeout <= 0 {
		s.CollectorTimeout = DefaultCollectorTimeout
	}
	s.CollectorTimeout = min(s.CollectorTimeout, s.Deadline)
	if s.MaxSection <= 0 {
		s.MaxSection = DefaultMaxSection
	}
	if s.MaxTotal <= 0 {
		s.MaxTotal = DefaultMaxTotal
	}
	if s.JournalLines <= 0 {
		s.JournalLines = DefaultJournalLines
	}
	if s.DiskSample <= 0 {
		s.DiskSample = time.Second
	}
	if s.Reason == "" {
		s.Reason = ReasonFailure
	}
	return s
}

// runCollector runs c, recovering a panic into the section's error, and
// bounds its data to s.MaxSection.
func runCollector(ctx context.Context, c collector, h Host, s Spec) (sec Section) {
	sec.Name = c.name
	defer func() {
		if r := recover(); r != nil {
			sec.Error = fmt.Sprintf("collector panicked: %v", r)
		}
	}()
	type result struct {
		v   any
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- result{err: fmt.Errorf("collector panicked: %v", r)}
			}
		}()
		v, err := c.run(ctx, h, s)
		ch <- result{v, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		sec.Error = "timed out: " + ctx.Err().Error()
		return sec
	}
	if r.err != nil {
		sec.Error = r.err.Error()
		if len(sec.Error) > 1024 {
			sec.Error = sec.Error[:1024] + "…"
		}
	}
	if r.v == nil {
		return sec
	}
	sec.Data, sec.Truncated = boundData(r.v, s.MaxSection)
	return sec
}

// boundData encodes v in at most max bytes. Text keeps its last lines
// (the newest log lines matter most); other data that is too large is
// kept as the start of its JSON, as text, marked truncated.
func boundData(v any, max int) (json.RawMessage, bool) {
	if t, ok := v.(string); ok {
		cut := false
		for {
			raw, _ := json.Marshal(t)
			if len(raw) <= max {
				return raw, cut
			}
			cut = true
			t = TailBytes(t, min(len(t)-1, len(t)*max/len(raw)-16))
		}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		raw, _ = json.Marshal("unencodable: " + err.Error())
		return raw, false
	}
	if len(raw) <= max {
		return raw, false
	}
	s := string(raw[:max/2]) // a JSON string of it may double in size
	out, _ := json.Marshal(s)
	return out, true
}

// TailBytes keeps at most n bytes from the end of t, starting at a line.
func TailBytes(t string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(t) <= n {
		return t
	}
	t = t[len(t)-n:]
	if i := strings.IndexByte(t, '\n'); i >= 0 && i < len(t)-1 {
		t = t[i+1:]
	}
	return t
}

// boundTotal cuts the sections to total bytes of data: sections keep
// their order, and the first that does not fit, and every later one
// larger than what remains, lose their data (Truncated, Error says why).
func boundTotal(secs []Section, total int) bool {
	used, cut := 0, false
	for i := range secs {
		n := len(secs[i].Data)
		if used+n <= total {
			used += n
			continue
		}
		secs[i].Data = nil
		secs[i].Truncated = true
		secs[i].Error = strings.TrimPrefix(secs[i].Error+"; ", "; ") + fmt.Sprintf("left out: the bundle's %d-byte bound was reached", total)
		cut = true
	}
	return cut
}

// Collectors lists the collectors for goos, in the order a bundle shows
// their sections.
func Collectors(goos string) []collector {
	common := []collector{
		{"packages", collectPackages},
		{"resolver", collectResolver},
		{"tls", collectTLS},
	}
	switch goos {
	case "linux":
		return slices.Concat(common[:1], []collector{
			{"kernel", collectKernelLinux},
			{"failed-units", collectFailedUnits},
			{"unit-logs", collectUnitLogs},
			{"linkage", collectLinkage},
		}, common[1:2], []collector{
			{"routes", collectRoutes},
			{"interfaces", collectInterfaces},
			{"mounts", collectMounts},
			{"time", collectTime},
			{"firewall", collectFirewall},
			{"io", collectIO},
		}, common[2:], []collector{
			{"connections", collectConnections},
			{"kernel-errors", collectKernelErrors},
		})
	case "windows":
		return slices.Concat(common[:1], []collector{
			{"kernel", collectKernelWindows},
			{"failed-units", collectServicesWindows},
			{"unit-logs", collectEventLogWindows},
		}, common[1:], []collector{
			{"routes", runText("route", "print")},
			{"connections", runText("netstat", "-an", "-p", "tcp")},
		})
	case "darwin":
		return slices.Concat(common[:1], []collector{
			{"kernel", collectKernelDarwin},
			{"failed-units", runText("launchctl", "list")},
			{"unit-logs", collectUnifiedLogDarwin},
		}, common[1:], []collector{
			{"routes", runText("netstat", "-rn")},
			{"mounts", runText("mount")},
			{"connections", runText("netstat", "-an", "-p", "tcp")},
		})
	}
	return common
}

// runText is a collector whose section is the output of one command.
func runText(name string, args ...string) func(ctx context.Context, h Host, s Spec) (any, error) {
	return func(ctx context.Context, h Host, s Spec) (any, error) {
		out, err := h.Run(ctx, name, args...)
		if err != nil {
			return nilIfEmpty(out), tool(err)
		}
		return string(out), nil
	}
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// tool turns "executable file not found" into errNoTool's message.
func tool(err error) error {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", errNoTool, err)
	}
	return err
}

func collectPackages(_ context.Context, _ Host, s Spec) (any, error) {
	if len(s.Packages) == 0 {
		return nil, nil
	}
	return s.Packages, nil
}
