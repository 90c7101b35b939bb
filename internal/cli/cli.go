// Package cli is drover's command line: it parses arguments, wires the
// internal packages together and turns their results into output and exit
// codes. It holds no state between calls: Main builds everything it needs
// from its arguments, so tests run it in-process.
//
// Exit codes (stable, documented in README.md):
//
//	0  success (plan valid, simulated rollout succeeded)
//	1  error (invalid plan, unreadable file, failed run)
//	2  usage error (unknown command or flag, missing argument)
//	3  the simulated rollout halted, paused or failed
//	4  the simulation found invariant violations (a bug: always reported)
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/agent/agentcmd"
)

// Exit codes of Main.
const (
	ExitOK         = 0
	ExitError      = 1
	ExitUsage      = 2
	ExitHalted     = 3
	ExitViolations = 4
)

// exitError carries an exit code through cobra. A nil err with a code
// means the command already printed what it had to say.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func exitf(code int, format string, args ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, args...)}
}

func usagef(format string, args ...any) error { return exitf(ExitUsage, format, args...) }

// env is what every command may use: the streams, the environment and a
// logger. It replaces globals.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	log            *slog.Logger
}

// Main runs drover with args (without the program name) and returns the
// process exit code. getenv reads the environment (os.Getenv in main);
// DROVER_LOG=debug|info|warn|error turns on logging to stderr.
func Main(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	// Everything the CLI prints is made safe for a terminal (safeout.go).
	safeOut, safeErr := newTerminalSafe(stdout), newTerminalSafe(stderr)
	defer safeOut.flush()
	defer safeErr.flush()
	stdout, stderr = safeOut, safeErr
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, log: agentcmd.NewLogger(getenv("DROVER_LOG"), stderr)}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Anything cobra itself returns is about the command line.
		ee = &exitError{code: ExitUsage, err: err}
	}
	if ee.err != nil {
		fmt.Fprintf(stderr, "drover: %v\n", ee.err)
		if ee.code == ExitUsage {
			fmt.Fprintln(stderr, "Run 'drover --help' for usage.")
		}
	}
	return ee.code
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "drover",
		Short: "Roll updates across heterogeneous fleets, in waves, with gates and rollback",
		Long: `drover rolls updates (packages, kernels, live patches, container runtimes,
node images, signed scripts) across fleets of Debian, Ubuntu, RHEL, SUSE,
Windows and macOS machines in waves, checks health after every step, caps
the blast radius, stops by itself when a change hurts, and rolls back.

Rehearse a plan on a virtual clock before touching anything:
  drover plan validate plan.yaml
  drover simulate plan.yaml --nodes 1000 --fail 'node.hardware.class == "gen3"=1'
  drover demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usagef("%w", err) })
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newPlanCmd(e), newSimulateCmd(e), newDemoCmd(e), newVersionCmd(e),
		newServerCmd(e), newAgentCmd(e), newRolloutCmd(e), newNodesCmd(e), newAuditCmd(e), newBenchCmd(e), newArtifactCmd(e), newTokenCmd(e), newStopCmd(e),
		newBudgetCmd(e), newFreezeCmd(e), newHistoryCmd(e), newDiffCmd(e), newAdvisoryCmd(e), newExposureCmd(e), newBaselineCmd(e), newDriftCmd(e),
		newWebhooksCmd(e), newEvidenceCmd(e))
	return root
}

// noArgs rejects arguments as a usage error, naming an unknown command.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return nil
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: want %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: want %s", cmd.CommandPath(), what)
		}
		return nil
	}
}
