package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// LivePatch loads and unloads kernel live patches without a reboot.
//
// Provider kpatch (the default): Apply verifies the patch artifact through
// the Verifier (with none configured every patch is refused: drover loads
// only signed kernel modules) and runs kpatch load FILE.ko; Verify reads
// /sys/kernel/livepatch/ID/enabled (1); Rollback runs kpatch unload ID.
//
// Provider canonical-livepatch: Apply runs canonical-livepatch refresh;
// Verify reads canonical-livepatch status --format json and requires the
// running kernel's livepatch applied with the fix named by the action's ID
// (a CVE such as cve-2024-1086) patched. Canonical Livepatch cannot unload
// one fix: Rollback runs canonical-livepatch disable, which removes every
// live patch of the running kernel and detaches the machine (a person
// re-enables it with its token), and confirms the fix is no longer
// applied.
//
// An action with rollback: none is not rolled back (ErrUnsupported).
type LivePatch struct {
	r  Runner
	v  Verifier
	fs FileSystem
}

var _ Driver = (*LivePatch)(nil)

// NewLivePatch returns the live patch driver; v nil refuses kpatch loads,
// fs nil reads the real /sys.
func NewLivePatch(r Runner, v Verifier, fs FileSystem) *LivePatch {
	if fs == nil {
		fs = OSFileSystem{}
	}
	return &LivePatch{r: r, v: v, fs: fs}
}

// Name is "livepatch".
func (l *LivePatch) Name() string { return "livepatch" }

func (l *LivePatch) action(a plan.Action) (*plan.LivePatchAction, string, error) {
	la := a.LivePatch
	if la == nil {
		return nil, "", fmt.Errorf("livepatch: action %q is not a livepatch action: %w", a.Name, ErrUnsupported)
	}
	// The id names a kernel module (kpatch unload ID, /sys/kernel/
	// livepatch/ID) or a fix: a plan.LivePatchID has no '/', no ".."
	// and cannot be taken for an option.
	if err := plan.LivePatchID.Check(la.ID); err != nil {
		return nil, "", fmt.Errorf("livepatch: invalid patch id: %w", err)
	}
	p := la.Provider
	if p == "" {
		p = "kpatch"
	}
	if p != "kpatch" && p != "canonical-livepatch" {
		return nil, "", fmt.Errorf("livepatch: unknown provider %q: %w", p, ErrUnsupported)
	}
	return la, p, nil
}

// kpatchModule is the kernel's name of a kpatch module: file name without
// .ko, dashes as underscores.
func kpatchModule(id string) string {
	return strings.ReplaceAll(strings.TrimSuffix(id, ".ko"), "-", "_")
}

// kpatchList is kpatch list output.
type kpatchList struct {
	Loaded    map[string]bool // module -> enabled
	Installed []string
}

// parseKpatchList reads "Loaded patch modules:" ("NAME [enabled]") and
// "Installed patch modules:" ("NAME (KERNEL)") sections.
func parseKpatchList(out string) (kpatchList, error) {
	l := kpatchList{Loaded: map[string]bool{}}
	section := ""
	for line := range strings.SplitSeq(out, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "":
		case t == "Loaded patch modules:":
			section = "loaded"
		case t == "Installed patch modules:":
			section = "installed"
		case section == "loaded":
			f := strings.Fields(t)
			l.Loaded[f[0]] = len(f) > 1 && f[1] == "[enabled]"
		case section == "installed":
			l.Installed = append(l.Installed, strings.Fields(t)[0])
		default:
			return kpatchList{}, fmt.Errorf("malformed kpatch list output: %q outside a section", t)
		}
	}
	if section == "" {
		return kpatchList{}, fmt.Errorf("malformed kpatch list output %q", firstLine(out))
	}
	return l, nil
}

func (l *LivePatch) kpatchList(ctx context.Context) (kpatchList, error) {
	stdout, _, err := l.r.Run(ctx, nil, "kpatch", "list")
	if err != nil {
		return kpatchList{}, fmt.Errorf("livepatch: kpatch list: %w", err)
	}
	kl, err := parseKpatchList(string(stdout))
	if err != nil {
		return kpatchList{}, fmt.Errorf("livepatch: %w", err)
	}
	return kl, nil
}

func (l *LivePatch) sysEnabled(id string) (bool, error) {
	raw, err := l.fs.ReadFile("/sys/kernel/livepatch/" + kpatchModule(id) + "/enabled")
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("livepatch: %w", err)
	}
	return strings.TrimSpace(string(raw)) == "1", nil
}

// Preflight says whether the patch is loaded already; for kpatch it also
// verifies the artifact.
func (l *LivePatch) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	la, p, err := l.action(a)
	if err != nil {
		return Change{}, err
	}
	if err := l.Verify(ctx, a); err == nil {
		return Change{Summary: "live patch " + la.ID + " already applied", None: true}, nil
	}
	if p == "kpatch" {
		if _, err := l.artifact(ctx, la); err != nil {
			return Change{}, err
		}
	}
	return Change{Summary: "would apply live patch " + la.ID, Items: []ChangeItem{{Name: la.ID, From: "not applied", To: "applied"}}}, nil
}

func (l *LivePatch) artifact(ctx context.Context, la *plan.LivePatchAction) (string, error) {
	if la.Artifact == "" {
		return "", fmt.Errorf("livepatch: kpatch patch %s names no artifact", la.ID)
	}
	if l.v == nil {
		return "", fmt.Errorf("livepatch %s refused: %w", la.Artifact, ErrNoVerifier)
	}
	path, err := l.v.Verify(ctx, la.Artifact)
	if err != nil {
		return "", fmt.Errorf("livepatch %s refused: verify artifact: %w", la.Artifact, err)
	}
	return path, nil
}

// Snapshot records whether the patch was applied before.
func (l *LivePatch) Snapshot(ctx context.Context, a plan.Action) (Snapshot, error) {
	la, _, err := l.action(a)
	if err != nil {
		return Snapshot{}, err
	}
	applied := l.Verify(ctx, a) == nil
	raw, _ := json.Marshal(map[string]bool{"applied": applied})
	return Snapshot{Driver: l.Name(), Summary: fmt.Sprintf("live patch %s applied: %t", la.ID, applied), Data: raw}, nil
}

// Apply loads the patch (kpatch) or refreshes Canonical Livepatch, then
// verifies it took effect.
func (l *LivePatch) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	la, p, err := l.action(a)
	if err != nil {
		return Outcome{}, err
	}
	if l.Verify(ctx, a) == nil {
		return Outcome{Summary: "live patch " + la.ID + " already applied"}, nil
	}
	if p == "kpatch" {
		path, err := l.artifact(ctx, la)
		if err != nil {
			return Outcome{}, err
		}
		if _, _, err := l.r.Run(ctx, nil, "kpatch", "load", path); err != nil {
			return Outcome{}, fmt.Errorf("livepatch: kpatch load %s: %w", la.Artifact, err)
		}
	} else if _, _, err := l.r.Run(ctx, nil, "canonical-livepatch", "refresh"); err != nil {
		return Outcome{}, fmt.Errorf("livepatch: canonical-livepatch refresh: %w", err)
	}
	if err := l.Verify(ctx, a); err != nil {
		return Outcome{}, err
	}
	return Outcome{Summary: "applied live patch " + la.ID, Changed: []ChangeItem{{Name: la.ID, From: "not applied", To: "applied"}}}, nil
}

// Verify checks the patch is loaded and enabled (kpatch) or the fix is
// applied (Canonical Livepatch).
func (l *LivePatch) Verify(ctx context.Context, a plan.Action) error {
	la, p, err := l.action(a)
	if err != nil {
		return err
	}
	if p == "kpatch" {
		ok, err := l.sysEnabled(la.ID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("livepatch: %s is not enabled (/sys/kernel/livepatch/%s/enabled)", la.ID, kpatchModule(la.ID))
		}
		return nil
	}
	stdout, _, err := l.r.Run(ctx, nil, "canonical-livepatch", "status", "--format", "json")
	if err != nil {
		return fmt.Errorf("livepatch: canonical-livepatch status: %w", err)
	}
	return checkCanonicalStatus(string(stdout), la.ID)
}

// canonicalStatus is the part of canonical-livepatch status --format json
// drover reads. fixes is a list of objects in recent clients and a
// "* cve-... " text in older ones.
type canonicalStatus struct {
	Status []struct {
		Kernel    string `json:"kernel"`
		Running   bool   `json:"running"`
		Livepatch struct {
			CheckState string          `json:"checkState"`
			State      string          `json:"state"`
			Version    string          `json:"version"`
			Fixes      json.RawMessage `json:"fixes"`
		} `json:"livepatch"`
	} `json:"status"`
}

type canonicalFix struct {
	Name    string `json:"name"`
	Patched bool   `json:"patched"`
}

// checkCanonicalStatus requires the running kernel's livepatch applied
// and fix patched.
func checkCanonicalStatus(out, fix string) error {
	var st canonicalStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return fmt.Errorf("livepatch: malformed canonical-livepatch status: %w", err)
	}
	for _, k := range st.Status {
		if !k.Running {
			continue
		}
		if k.Livepatch.State != "applied" {
			return fmt.Errorf("livepatch: kernel %s livepatch state %q, not applied", k.Kernel, k.Livepatch.State)
		}
		var fixes []canonicalFix
		if err := json.Unmarshal(k.Livepatch.Fixes, &fixes); err != nil {
			var text string
			if err := json.Unmarshal(k.Livepatch.Fixes, &text); err != nil {
				return fmt.Errorf("livepatch: malformed fixes in canonical-livepatch status")
			}
			for line := range strings.SplitSeq(text, "\n") {
				f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "*"))
				if len(f) > 0 && strings.EqualFold(f[0], fix) {
					return nil
				}
			}
			return fmt.Errorf("livepatch: fix %s not in kernel %s's livepatch %s", fix, k.Kernel, k.Livepatch.Version)
		}
		for _, f := range fixes {
			if strings.EqualFold(f.Name, fix) {
				if !f.Patched {
					return fmt.Errorf("livepatch: fix %s known but not patched on kernel %s", fix, k.Kernel)
				}
				return nil
			}
		}
		return fmt.Errorf("livepatch: fix %s not in kernel %s's livepatch %s", fix, k.Kernel, k.Livepatch.Version)
	}
	return errors.New("livepatch: canonical-livepatch status lists no running kernel")
}

// Rollback undoes the patch unless the snapshot shows it was applied
// before: kpatch unload (nothing to do when not loaded), or
// canonical-livepatch disable. rollback: none is ErrUnsupported.
func (l *LivePatch) Rollback(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	la, p, err := l.action(a)
	if err != nil {
		return Outcome{}, err
	}
	if la.Rollback == "none" {
		return Outcome{}, fmt.Errorf("livepatch: action %q declares rollback: none: %w", a.Name, ErrUnsupported)
	}
	var before struct{ Applied bool }
	if len(s.Data) > 0 {
		if err := json.Unmarshal(s.Data, &before); err != nil {
			return Outcome{}, fmt.Errorf("livepatch: decode snapshot: %w", err)
		}
	}
	if before.Applied {
		return Outcome{Summary: "live patch " + la.ID + " was applied before; left loaded"}, nil
	}
	if p == "canonical-livepatch" {
		return l.disableCanonical(ctx, la.ID)
	}
	kl, err := l.kpatchList(ctx)
	if err != nil {
		return Outcome{}, err
	}
	mod := kpatchModule(la.ID)
	if _, loaded := kl.Loaded[mod]; !loaded {
		return Outcome{Summary: "live patch " + la.ID + " not loaded"}, nil
	}
	if _, _, err := l.r.Run(ctx, nil, "kpatch", "unload", mod); err != nil {
		return Outcome{}, fmt.Errorf("livepatch: kpatch unload %s: %w", mod, err)
	}
	return Outcome{Summary: "unloaded live patch " + la.ID, Changed: []ChangeItem{{Name: la.ID, From: "applied", To: "unloaded"}}}, nil
}

// canonicalNotEnabled is what canonical-livepatch status says on a
// machine where Livepatch is disabled.
const canonicalNotEnabled = "not enabled"

// disableCanonical runs canonical-livepatch disable and confirms fix is
// no longer applied: status either says the machine is not enabled or no
// longer lists the fix as patched on the running kernel.
func (l *LivePatch) disableCanonical(ctx context.Context, fix string) (Outcome, error) {
	if _, _, err := l.r.Run(ctx, nil, "canonical-livepatch", "disable"); err != nil {
		return Outcome{}, fmt.Errorf("livepatch: canonical-livepatch disable: %w", err)
	}
	stdout, _, err := l.r.Run(ctx, nil, "canonical-livepatch", "status", "--format", "json")
	var ee *ExitError
	switch {
	case errors.As(err, &ee) && strings.Contains(ee.Stderr, canonicalNotEnabled):
	case err != nil:
		return Outcome{}, fmt.Errorf("livepatch: canonical-livepatch status after disable: %w", err)
	case checkCanonicalStatus(string(stdout), fix) == nil:
		return Outcome{}, fmt.Errorf("livepatch: fix %s still applied after canonical-livepatch disable", fix)
	}
	return Outcome{
		Summary: "disabled Canonical Livepatch: every live patch of the running kernel removed, " + fix + " among them; re-enable with canonical-livepatch enable TOKEN",
		Changed: []ChangeItem{{Name: fix, From: "applied", To: "livepatch disabled"}},
	}, nil
}
