// Package agent owns what runs on a managed node (`drover agent`, or the
// slim drover-agent binary, whose command line is package agentcmd): the
// agent protocol loop (register, long-poll, report), the allow-list of
// action kinds, step execution through the drivers, node probes after a
// step, reboots, and the write-ahead step journal that lets a step survive
// a crash or a reboot. It knows nothing of the store or the engine's
// decisions; it executes the steps it is handed and reports what happened.
//
// # The step journal
//
// StateDir/journal.jsonl is append-only: one JSON record per line, each
// written before the agent acts on it, and fsynced first when resuming
// depends on it (the step, the snapshot, a failure, a reboot, an uncordon
// under way, rollback progress, the result; see record.durable). The
// records of a step:
//
//	step        taken on: the payload and the boot ID, before anything runs
//	action      per action: preflight (the change), snapshot (written just
//	            before Apply, so it also marks "Apply may have begun"),
//	            applied (the outcome), verified, rolled-back; for a
//	            kubernetes-node action, uncordoning and uncordoned (apply
//	            steps) and held (rollback steps); for a kernel action
//	            whose kernel the node runs, fallback-boot-set and
//	            fallback-confirmed before rolled-back (below)
//	failing     the reason the step failed; in-step rollback follows
//	rebooting   the boot ID before a requested reboot
//	verifying   every action in place; node probes run from here
//	result      the final report, journaled before it is sent
//	reported    the server accepted the final report
//
// On start the journal is replayed. A last line that is cut short or does
// not parse is torn: it is cut off the file and its step is treated as
// interrupted at that point (the intact records are used). A step without
// a result is settled by resume (see resume.go): the drivers' Verify and
// the boot ID say what really happened; Apply is never re-run. A step ID
// the journal holds a result for is never executed again: if the server
// hands it out again, the recorded result is reported again.
//
// # Kubernetes nodes
//
// A kubernetes-node action takes the node out of service (cordon, and
// drain when it says so) for the actions after it in the plan, and the
// agent returns it to service:
//
//   - Success: once every action is applied and verified and, when the
//     step reboots, after the reboot and the actions' check on the new
//     boot; before the node probes, so they judge the node in service.
//   - Crash or reboot: the action's snapshot record is the write-ahead
//     mark that an uncordon is owed until its uncordoned (or rolled-back)
//     record; resume uncordons it at the same point of the step. The
//     uncordoning record, written before Uncordon is called, tells resume
//     the node may be schedulable already, so the action is not verified
//     (cordoned) again; Uncordon is idempotent, so one cut short before
//     its record is simply done again.
//   - Failure (in-step rollback): the later actions are restored, last
//     first, then the node is uncordoned (the action's Rollback). If a
//     restore failed, the node is left cordoned and the reason says so:
//     no workloads are sent back to a node in a state nobody chose. An
//     uncordon that still fails after retries (about two minutes) fails
//     the step.
//   - Rollback step: the node is cordoned and drained again before
//     anything the apply left in place is restored (so restores and their
//     reboot never run under workloads), and uncordoned after the restores
//     and the reboot; not uncordoned if the drain or a restore failed.
//   - A node cordoned before the step (an operator's cordon, seen in the
//     snapshot) is never uncordoned.
//
// # Kernel fallback
//
// A kernel action's rollback cannot remove the kernel the node runs. When
// the node runs a kernel other than the one the snapshot recorded (it
// booted the step's), the rollback first falls back (kernel.go): the
// driver sets the boot loader to start the recorded kernel, the agent
// journals fallback-boot-set with the boot ID and reboots (rebooting);
// on a new boot ID with the recorded kernel running it journals
// fallback-confirmed, and only then runs the action's Rollback (remove or
// hold the new kernel). Resumed at any point: set but not rebooted
// reboots (twice at most), rebooted into the new kernel again fails the
// rollback and leaves the kernel installed. Rollback steps and in-step
// rollbacks do the same.
//
// # Reports
//
// Per apply step: running; verifying (actions in place, probes not yet
// passing: sent only when the first probe round fails); verifying with
// Gate pass and HealthySince once every probe passes (when there is a
// soak); then the final report, journaled first: verifying with Gate pass after
// MinHealthy of passing probes (the engine marks the node succeeded), or
// verifying with Gate fail and the probe's reason when one fails during
// the soak, or failed with a reason naming the action and the driver's
// error ("package openssl 3.0.15: dpkg lock held by another process (pid
// 1234); rolled back ..."). A rollback step ends rolled-back or failed
// ("rollback failed: ...").
//
// Progress reports (all but the final one) are sent in the background,
// in order; each waits 200 ms for a newer one, which replaces it, so a
// step done within that time reports only its result. The final report
// waits for the progress report being sent and drops an unsent one.
package agent
