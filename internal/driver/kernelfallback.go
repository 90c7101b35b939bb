package driver

import (
	"context"
	"fmt"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// KernelFallback is implemented by drivers whose kernel actions can be
// undone on a node that already booted the new kernel. Rollback alone
// cannot: it never removes the running kernel (ErrRunningKernel). The
// agent, which owns reboots and the journal, runs the fallback:
//
//  1. Kernels says which kernel the snapshot's node ran (the known-good
//     one) and which it runs now. Equal, or no known-good kernel
//     recorded: no fallback, Rollback goes ahead.
//  2. SetFallbackBoot makes the boot loader start the known-good kernel
//     (one-shot or default, as the action says) and reads it back.
//  3. The agent journals it, reboots, and on the new boot checks the boot
//     ID changed and Kernels reports the known-good kernel running.
//  4. Rollback removes the new kernel, or holds it (onRollback: hold).
type KernelFallback interface {
	// Kernels returns the kernel release (uname -r) the node ran when s
	// was taken ("" when s recorded none) and the one it runs now.
	Kernels(ctx context.Context, a plan.Action, s Snapshot) (previous, running string, err error)
	// SetFallbackBoot makes the boot loader start the previous kernel:
	// on the next boot only (fallback: oneshot) or at every boot
	// (fallback: default; onRollback: hold sets the default too, so that
	// the kept kernel is not booted again). It reads the setting back.
	SetFallbackBoot(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error)
}

var _ KernelFallback = (*PackageDriver)(nil)

// bootLoaderFor returns how a PackageDriver finds its boot loader: bl
// when set, else DetectBootLoader at the time it is needed (the boot
// configuration changes as kernels come and go).
func bootLoaderFor(r Runner, fsys FileSystem, bl BootLoader) func() (BootLoader, error) {
	if bl != nil {
		return func() (BootLoader, error) { return bl, nil }
	}
	return func() (BootLoader, error) { return DetectBootLoader(r, fsys) }
}

// Kernels reads the known-good kernel from the snapshot and the running
// one from uname -r.
func (d *PackageDriver) Kernels(ctx context.Context, a plan.Action, s Snapshot) (string, string, error) {
	if a.Kernel == nil {
		return "", "", fmt.Errorf("%s: action %q is not a kernel action: %w", d.b.name(), a.Name, ErrUnsupported)
	}
	data, err := d.snapshotData(s)
	if err != nil {
		return "", "", err
	}
	k, err := d.b.runningKernel(ctx)
	if err != nil {
		return "", "", err
	}
	return data.RunningKernel, k.Release, nil
}

// SetFallbackBoot finds the boot entry of the snapshot's kernel and sets
// it (see KernelFallback).
func (d *PackageDriver) SetFallbackBoot(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	t, err := d.target(a)
	if err != nil {
		return Outcome{}, err
	}
	if !t.kernel {
		return Outcome{}, fmt.Errorf("%s: action %q is not a kernel action: %w", d.b.name(), a.Name, ErrUnsupported)
	}
	data, err := d.snapshotData(s)
	if err != nil {
		return Outcome{}, err
	}
	if data.RunningKernel == "" {
		return Outcome{}, fmt.Errorf("%s: the snapshot records no kernel the node ran before the step: no known-good kernel to boot: %w", d.b.name(), ErrUnsupported)
	}
	bl, err := d.boot()
	if err != nil {
		return Outcome{}, err
	}
	entry, err := bl.Entry(ctx, data.RunningKernel)
	if err != nil {
		return Outcome{}, err
	}
	var set []string
	if a.Kernel.Fallback != plan.KernelFallbackDefault {
		what, err := bl.Set(ctx, plan.KernelFallbackOneShot, entry)
		if err != nil {
			return Outcome{}, err
		}
		set = append(set, what)
	}
	if a.Kernel.Fallback == plan.KernelFallbackDefault || t.keepKernel {
		what, err := bl.Set(ctx, plan.KernelFallbackDefault, entry)
		if err != nil {
			return Outcome{}, err
		}
		set = append(set, what)
	}
	out := Outcome{Summary: fmt.Sprintf("boot kernel %s next (%s); reboot required", data.RunningKernel, strings.Join(set, "; ")), RebootRequired: true,
		Changed: []ChangeItem{{Name: "boot entry", To: entry}}}
	return out, nil
}

// holdKernel is Rollback for onRollback: hold: the new kernel stays
// installed and held, and the known-good kernel, which the node must be
// running already (the fallback booted it), is the boot loader's
// default. Repeating it changes nothing.
func (d *PackageDriver) holdKernel(ctx context.Context, a plan.Action, t pkgTarget, data pkgSnapshotData) (Outcome, error) {
	if data.RunningKernel == "" {
		return Outcome{}, fmt.Errorf("%s: onRollback: hold keeps the new kernel, but the snapshot records no kernel the node ran before the step to boot instead: %w", d.b.name(), ErrUnsupported)
	}
	k, err := d.b.runningKernel(ctx)
	if err != nil {
		return Outcome{}, err
	}
	if k.Release != data.RunningKernel {
		return Outcome{}, fmt.Errorf("%s: onRollback: hold: the node runs kernel %s, not %s, the kernel it ran before the step; nothing was changed (boot %s first): %w",
			d.b.name(), k.Release, data.RunningKernel, data.RunningKernel, ErrRunningKernel)
	}
	bl, err := d.boot()
	if err != nil {
		return Outcome{}, err
	}
	entry, err := bl.Entry(ctx, data.RunningKernel)
	if err != nil {
		return Outcome{}, err
	}
	what, err := bl.Set(ctx, plan.KernelFallbackDefault, entry)
	if err != nil {
		return Outcome{}, err
	}
	held, err := d.held(ctx, pinNames(t.pins), true)
	if err != nil {
		return Outcome{}, err
	}
	var toHold []plan.PackagePin
	for _, p := range t.pins {
		if !held[p.Name] {
			toHold = append(toHold, p)
		}
	}
	if len(toHold) > 0 {
		if err := d.b.hold(ctx, toHold); err != nil {
			return Outcome{}, err
		}
	}
	out := Outcome{Summary: fmt.Sprintf("kept %s installed and held (onRollback: hold); running kernel %s, the boot default (%s)",
		strings.Join(pinNames(t.pins), ", "), k.Release, what)}
	for _, p := range toHold {
		out.Changed = append(out.Changed, ChangeItem{Name: p.Name, From: p.Version, To: p.Version + " (held)"})
	}
	return out, d.kernelHeld(ctx, t, data)
}

// kernelHeld checks what holdKernel leaves: the new kernel held, the
// known-good kernel running.
func (d *PackageDriver) kernelHeld(ctx context.Context, t pkgTarget, data pkgSnapshotData) error {
	k, err := d.b.runningKernel(ctx)
	if err != nil {
		return err
	}
	if k.Release != data.RunningKernel {
		return fmt.Errorf("%s: rollback: the node runs kernel %s, not %s", d.b.name(), k.Release, data.RunningKernel)
	}
	held, err := d.held(ctx, pinNames(t.pins), true)
	if err != nil {
		return err
	}
	for _, p := range t.pins {
		if !held[p.Name] {
			return fmt.Errorf("%s: rollback: %s is not held (onRollback: hold)", d.b.name(), p.Name)
		}
	}
	return nil
}

// VerifyRollback checks a rollback: the packages as the snapshot recorded
// them, or for a kernel kept by onRollback: hold, the kernel held and the
// known-good kernel running.
func (d *PackageDriver) VerifyRollback(ctx context.Context, a plan.Action, s Snapshot) error {
	t, err := d.target(a)
	if err != nil {
		return err
	}
	data, err := d.snapshotData(s)
	if err != nil {
		return err
	}
	if t.keepKernel {
		return d.kernelHeld(ctx, t, data)
	}
	return d.restored(ctx, data)
}
