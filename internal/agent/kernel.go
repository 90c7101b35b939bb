package agent

import (
	"context"
	"fmt"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/plan"
)

// kernelFallback runs the boot-loader fallback (driver.KernelFallback)
// of action i of step id, a kernel action whose snapshot is snap, before
// its Rollback: a node that booted the step's kernel cannot remove it
// while it runs it. Its journal points, each resumed after a crash:
//
//	(none)              the node runs the known-good kernel: no fallback.
//	                    Else set the boot entry, then journal
//	fallback-boot-set   (with the boot ID), then journal rebooting and
//	                    reboot. On a boot with the same ID (the agent
//	                    crashed before the reboot, or it did not happen)
//	                    reboot again, once.
//	                    On a new boot ID: the known-good kernel must run
//	                    (else the fallback failed: the loader started the
//	                    new kernel again); then journal
//	fallback-confirmed  and Rollback may run (removes or holds the kernel).
//
// It returns "" when Rollback may go on, or why the fallback failed
// (Rollback must not run: the new kernel stays, the step fails). The
// error is errStopped when the agent must stop: a reboot is under way.
func (a *agent) kernelFallback(ctx context.Context, id string, i int, act plan.Action, snap driver.Snapshot, d driver.Driver, kf driver.KernelFallback) (string, error) {
	for {
		st, _ := a.j.step(id)
		as := st.Actions[i]
		if as == nil {
			as = &actionState{}
		}
		if as.FallbackConfirmed {
			return "", nil
		}
		prev, running, err := kf.Kernels(ctx, act, snap)
		if stopped(ctx, err) {
			return "", errStopped
		}
		if err != nil {
			return "kernel fallback: " + err.Error(), nil
		}
		if prev == "" {
			return "", nil // nothing recorded to boot: Rollback decides
		}
		boot, err := a.bootID(ctx)
		if err != nil {
			return "kernel fallback: boot ID unknown: " + err.Error(), nil
		}
		if !as.FallbackSet {
			if running == prev {
				return "", nil // the node never booted the new kernel
			}
			out, err := kf.SetFallbackBoot(ctx, act, snap)
			if stopped(ctx, err) {
				return "", errStopped
			}
			if err != nil {
				return fmt.Sprintf("kernel fallback: the node runs kernel %s, the step's; setting the boot loader to start %s failed: %v; the new kernel was left in place", running, prev, err), nil
			}
			if err := a.j.append(record{Type: recAction, Step: id, At: a.clock.Now(), Action: i, Stage: stageFallbackSet, Driver: d.Name(), BootID: boot, Outcome: &out}); err != nil {
				return "", err
			}
			a.log.Warn("kernel fallback: boot entry set; rebooting", "step", id, "running", running, "previous", prev, "set", out.Summary)
			if why, err := a.fallbackReboot(ctx, id, boot); why != "" || err != nil {
				return why, err
			}
			continue // a simulated reboot: the new boot is here already
		}
		if boot == as.FallbackBoot {
			// Set, but not rebooted since: the agent stopped before the
			// reboot, or the reboot it asked for did not happen.
			asked := 0
			for _, b := range st.Reboots {
				if b == boot {
					asked++
				}
			}
			if asked >= 2 {
				return fmt.Sprintf("kernel fallback: reboot requested %d times to boot kernel %s but the node did not restart (boot ID still %s); the new kernel was left in place", asked, prev, boot), nil
			}
			if why, err := a.fallbackReboot(ctx, id, boot); why != "" || err != nil {
				return why, err
			}
			continue
		}
		if running != prev {
			return fmt.Sprintf("kernel fallback not confirmed: the node rebooted (boot ID %s -> %s) but runs kernel %s again, not %s, the kernel it ran before the step: the boot loader did not start it (%s); the new kernel was left in place",
				as.FallbackBoot, boot, running, prev, fallbackSummary(as)), nil
		}
		why := fmt.Sprintf("booted kernel %s (boot ID %s -> %s)", prev, as.FallbackBoot, boot)
		if err := a.j.append(record{Type: recAction, Step: id, At: a.clock.Now(), Action: i, Stage: stageFallbackConfirmed, Driver: d.Name(), BootID: boot, Reason: why}); err != nil {
			return "", err
		}
		a.log.Info("kernel fallback confirmed", "step", id, "kernel", prev, "boot_id", boot)
		return "", nil
	}
}

func fallbackSummary(as *actionState) string {
	if as.Fallback == nil {
		return "boot entry set"
	}
	return as.Fallback.Summary
}

// fallbackReboot journals and requests the fallback's reboot from boot.
// It returns errStopped when the reboot is under way (a real one kills
// the agent), nil when the boot ID changed at once (simulated), or why
// the reboot could not be requested.
func (a *agent) fallbackReboot(ctx context.Context, id, boot string) (string, error) {
	if a.cfg.Rebooter == nil {
		return "kernel fallback: the boot loader is set to start the previous kernel, but this agent has no rebooter configured; reboot the node, then roll back again", nil
	}
	if err := a.j.append(record{Type: recRebooting, Step: id, At: a.clock.Now(), BootID: boot}); err != nil {
		return "", err
	}
	if err := a.cfg.Rebooter.Reboot(ctx, "drover kernel fallback "+id); err != nil {
		if stopped(ctx, err) {
			return "", errStopped
		}
		return "kernel fallback: reboot: " + err.Error(), nil
	}
	if now, err := a.bootID(ctx); err == nil && now != boot {
		return "", nil
	}
	t := a.clock.NewTimer(a.cfg.RebootTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "", errStopped // killed by the reboot, as expected
	case <-t.C:
	}
	if now, err := a.bootID(ctx); err == nil && now != boot {
		return "", nil
	}
	return fmt.Sprintf("kernel fallback: reboot requested but the node did not restart within %s (boot ID still %s)", a.cfg.RebootTimeout, boot), nil
}

// fallbackFirst runs kernelFallback when d can fall back and act is a
// kernel action; see there for what it returns.
func (a *agent) fallbackFirst(ctx context.Context, id string, i int, act plan.Action, snap driver.Snapshot, d driver.Driver) (string, error) {
	kf, ok := d.(driver.KernelFallback)
	if !ok || act.Kernel == nil {
		return "", nil
	}
	return a.kernelFallback(ctx, id, i, act, snap, d, kf)
}
