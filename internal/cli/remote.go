package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// remote holds the flags every command that talks to a server shares.
type remote struct {
	server string
	token  string
	output string
}

func (r *remote) flags(cmd *cobra.Command, e *env, outputs bool) {
	cmd.Flags().StringVar(&r.server, "server", "", "server URL or host:port (default $DROVER_SERVER, else https://127.0.0.1:7070); http:// only for loopback")
	cmd.Flags().StringVar(&r.token, "token", "", "API token (default $DROVER_TOKEN)")
	if outputs {
		cmd.Flags().StringVarP(&r.output, "output", "o", "table", "output format: table, json or yaml")
	}
}

func (r *remote) client(e *env) (*api.Client, error) {
	server := r.server
	if server == "" {
		server = e.getenv("DROVER_SERVER")
	}
	server, err := serverURL(server)
	if err != nil {
		return nil, err
	}
	token := r.token
	if token == "" {
		token = e.getenv("DROVER_TOKEN")
	}
	if token == "" {
		return nil, usagef("no API token: pass --token or set DROVER_TOKEN")
	}
	hc, err := caHTTPClient(e)
	if err != nil {
		return nil, err
	}
	return &api.Client{Base: server, Token: token, HTTP: hc}, nil
}

// serverURL is the server's base URL: https:// unless the URL says
// http://, which is refused for anything but loopback (the token would
// cross the network in clear). "" is https://127.0.0.1:7070.
func serverURL(raw string) (string, error) {
	if raw == "" {
		raw = "127.0.0.1:7070"
	}
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", usagef("server %q: want https://HOST:PORT or HOST:PORT", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return "", usagef("server %s: refusing to send the API token in clear over http:// to a host that is not loopback; use https:// (with DROVER_CA_CERT set to the server's CA file)", raw)
		}
	default:
		return "", usagef("server %q: scheme %q: want https:// (or http:// on loopback)", raw, u.Scheme)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// show writes v as JSON or YAML, or calls table for the table format.
func (r *remote) show(e *env, v any, table func(w io.Writer)) error {
	f, err := parseFormat(r.output, formatTable, formatJSON, formatYAML)
	if err != nil {
		return err
	}
	switch f {
	case formatJSON:
		return writeJSON(e.stdout, v)
	case formatYAML:
		return writeYAML(e.stdout, v)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// apiErr turns a client error into an exit error.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	return exitf(ExitError, "%w", err)
}

func newRolloutCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Create, follow and steer rollouts on a server", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(newRolloutCreateCmd(e), newRolloutListCmd(e), newRolloutGetCmd(e), newRolloutWatchCmd(e), newRolloutPreflightCmd(e))
	for _, c := range []struct{ name, short string }{
		{"approve", "Approve a rollout (or one of its waves with --wave); never your own"},
		{"pause", "Pause a rollout: nodes in flight finish, nothing new starts"},
		{"resume", "Resume a paused rollout"},
		{"abort", "Abort a rollout: nothing new starts, nothing is rolled back"},
		{"rollback", "Roll back every node the rollout changed (or one wave with --wave)"},
	} {
		cmd.AddCommand(newRolloutCommand(e, c.name, c.short))
	}
	cmd.AddCommand(newRolloutResolveCmd(e), newRolloutBreakGlassCmd(e))
	return cmd
}

// newRolloutBreakGlassCmd lets a rollout start nodes during freezes (the
// plan's and the fleet's): an admin's decision with a reason, which the
// server audits as rollout.break-glass.
func newRolloutBreakGlassCmd(e *env) *cobra.Command {
	var r remote
	var reason string
	cmd := &cobra.Command{Use: "break-glass ID --reason TEXT", Short: "Let a rollout start nodes during freezes (admin; audited with the reason)",
		Long: `Let a rollout start nodes during its plan's freezes and the fleet's freezes.
Windows, caps, budgets, holds and gates still apply. Only an admin may, with
a reason; the server records it in the audit log (rollout.break-glass) and
every decision that starts a node inside a fleet freeze names the freeze
and the reason.`,
		Args: exactArgs(1, "a rollout ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("rollout break-glass: --reason is required (it is recorded in the audit log)")
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			ro, err := c.BreakGlass(cmd.Context(), args[0], reason)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, ro, func(w io.Writer) {
				fmt.Fprintf(w, "%s: break-glass recorded; freezes no longer hold it back (%s)\n", ro.ID, reason)
				fmt.Fprintln(w, stateLine(ro))
			})
		}}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	r.flags(cmd, e, true)
	return cmd
}

func newRolloutCreateCmd(e *env) *cobra.Command {
	var r remote
	var file, fromDry string
	var dry, accept, pre bool
	var seed uint64
	cmd := &cobra.Command{Use: "create -f PLAN | --from-dry-run ID", Short: "Create a rollout from a plan or a dry run (or rehearse it with --dry-run)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case file == "" && fromDry == "":
				return usagef("rollout create: -f PLAN or --from-dry-run ID is required")
			case dry && fromDry != "":
				return usagef("rollout create: --dry-run and --from-dry-run exclude each other")
			case accept && fromDry == "":
				return usagef("rollout create: --accept-changes needs --from-dry-run")
			}
			var data []byte
			if file != "" {
				var err error
				if data, err = os.ReadFile(file); err != nil {
					return exitf(ExitError, "%w", err)
				}
			}
			seedText := ""
			if cmd.Flags().Changed("seed") {
				seedText = strconv.FormatUint(seed, 10)
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			if pre && !dry {
				return usagef("rollout create: --preflight goes with --dry-run (a rollout runs its own pre-flight, as its plan's preflight: section says)")
			}
			if dry {
				res, err := c.Rehearse(cmd.Context(), api.DryRunRequest{Plan: string(data), File: file, Seed: seedText, Preflight: pre})
				if err != nil {
					return apiErr(err)
				}
				overlapNotes(e.stderr, file, data, res.Overlaps)
				next := fmt.Sprintf("dry run %s seed %s; create it with: drover rollout create --from-dry-run %s\n", res.ID, res.Seed, res.ID)
				if r.output == "json" {
					fmt.Fprint(e.stderr, next)
					_, err := e.stdout.Write(append(res.Result, '\n'))
					return err
				}
				fmt.Fprint(e.stdout, res.Text)
				if len(res.Canary) > 0 {
					fmt.Fprintf(e.stdout, "canary: %s\n", strings.Join(res.Canary, ", "))
				}
				fmt.Fprintf(e.stdout, "assignment sha256 %s\n", res.AssignmentSHA256)
				fmt.Fprint(e.stdout, next)
				return nil
			}
			ro, err := c.CreateRolloutFrom(cmd.Context(), api.CreateRolloutRequest{Plan: string(data), File: file,
				FromDryRun: fromDry, AcceptChanges: accept, Seed: seedText})
			if err != nil {
				return apiErr(err)
			}
			for _, wn := range ro.Warnings {
				fmt.Fprintf(e.stderr, "warning: %s\n", wn)
			}
			return r.show(e, ro, func(w io.Writer) {
				fmt.Fprintf(w, "created rollout %s (%s, %d nodes)\n", ro.ID, ro.State, ro.Total)
				switch {
				case ro.DryRun != "" && len(ro.Moves) == 0:
					fmt.Fprintf(w, "  assignment identical to dry run %s (seed %s, assignment sha256 %s)\n", ro.DryRun, ro.Seed, ro.AssignmentSHA256)
				case ro.DryRun != "":
					fmt.Fprintf(w, "  assignment differs from dry run %s, accepted with --accept-changes: %d node(s) moved\n", ro.DryRun, len(ro.Moves))
					for _, m := range ro.Moves {
						fmt.Fprintf(w, "    %s\n", m.Text())
					}
				}
				if ro.ApprovalsNeeded > 0 {
					fmt.Fprintf(w, "  needs %d approvals to start\n", ro.ApprovalsNeeded)
				}
				if ro.ApprovalFloor != "" {
					fmt.Fprintf(w, "  %s\n", ro.ApprovalFloor)
				}
				for _, o := range ro.Overlaps {
					fmt.Fprintf(w, "  overlaps rollout %s (%s, %s): %s; they wait for it\n", o.Rollout, o.Name, o.State, sharedText(o))
				}
				for _, u := range ro.Uncovered {
					fmt.Fprintf(w, "  %s\n", uncoveredText(u))
				}
				for _, r := range ro.Refusals {
					fmt.Fprintf(w, "  agents would refuse, these nodes will fail with nothing run: %s\n", r.Text())
				}
			})
		}}
	cmd.Flags().StringVarP(&file, "file", "f", "", "plan file")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "simulate the plan against the live inventory; the server keeps the dry run for --from-dry-run")
	cmd.Flags().StringVar(&fromDry, "from-dry-run", "", "create the rollout dry run `ID` rehearsed: its plan (-f must be the same text) and seed")
	cmd.Flags().BoolVar(&accept, "accept-changes", false, "with --from-dry-run: create even if nodes moved between waves since the dry run")
	cmd.Flags().Uint64Var(&seed, "seed", 0, "seed of the assignment of nodes to waves (default: random, or the dry run's)")
	cmd.Flags().BoolVar(&pre, "preflight", false, "with --dry-run: first ask every target node's agent what the change would do there (its pre-flight), and rehearse with their answers")
	r.flags(cmd, e, true)
	return cmd
}

// uncoveredText is a canary stratum no canary node covers, in one line:
// "wave canary does not cover zone=a class=gen3: held back (...)".
func uncoveredText(u engine.Stratum) string {
	return fmt.Sprintf("wave %s does not cover %s: %s", u.Wave, orDash(strata(u.Values)), u.Reason)
}

func strata(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}

func newRolloutListCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "list", Short: "List rollouts, newest first", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			list, err := c.ListRollouts(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, list, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tSTATE\tPROGRESS\tAGE\tAUTHOR\tPREDICTED/TOOK")
				for _, ro := range list.Rollouts {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", ro.ID, ro.State, progress(ro.Tally()),
						sinceText(ro.CreatedAt), ro.Author, predictionColumn(ro))
				}
				if e := meanError(list.Rollouts); e != "" {
					fmt.Fprintf(w, "\n%s\n", e)
				}
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

// progress is "succeeded/total", then the other non-zero counts in
// parentheses: "5/6 (1 failed)", "6/6 (2 already up to date)".
// engine.Tally is the one count.
func progress(t engine.Tally) string {
	var parts []string
	if t.Unchanged > 0 {
		parts = append(parts, fmt.Sprintf("%d already up to date", t.Unchanged))
	}
	if rest := t.Rest(); rest != "" {
		parts = append(parts, rest)
	}
	s := fmt.Sprintf("%d/%d", t.Succeeded, t.Total)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

func sinceText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return engine.FormatDuration(time.Since(t))
}

func newRolloutGetCmd(e *env) *cobra.Command {
	var r remote
	var nodes bool
	cmd := &cobra.Command{Use: "get ID", Short: "Show a rollout: waves, gates, approvals and why nodes wait", Args: exactArgs(1, "a rollout ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			ro, err := c.GetRollout(cmd.Context(), args[0], nodes)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, ro, func(w io.Writer) { printRollout(w, ro, nodes, time.Now()) })
		}}
	cmd.Flags().BoolVar(&nodes, "nodes", false, "list every node's state")
	r.flags(cmd, e, true)
	return cmd
}

func newRolloutPreflightCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "preflight ID", Short: "Show a rollout's node pre-flight: what each node's package manager would do", Args: exactArgs(1, "a rollout ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			v, err := c.Preflight(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, v, func(w io.Writer) { printPreflight(w, v) })
		}}
	r.flags(cmd, e, true)
	return cmd
}

// printPreflight shows a node pre-flight: a line per node, then what
// each node's package manager would do.
func printPreflight(w io.Writer, v api.PreflightView) {
	fmt.Fprintf(w, "pre-flight of %s: %d asked, %d passed, %d failed, %d waiting (asked %s, due %s)\n\n", v.Rollout, v.Asked, v.Passed,
		v.Failed, v.Waiting, v.AskedAt.UTC().Format(time.RFC3339), v.Deadline.UTC().Format(time.RFC3339))
	fmt.Fprintln(w, "NODE\tSTATE\tTOOK\tREBOOT\tNEED\tFREE\tREASON")
	for _, n := range v.Nodes {
		took, reboot, need, free := "-", "-", "-", "-"
		if rep := n.Report; rep != nil {
			took = rep.Took.Round(time.Millisecond).String()
			if rep.Took < time.Millisecond {
				took = rep.Took.Round(time.Microsecond).String()
			}
			reboot = map[bool]string{true: "yes", false: "no"}[rep.Reboot]
			need, free = bytesText(rep.BytesNeeded), bytesText(rep.BytesFree)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Node, n.State, took, reboot, need, free, orDash(n.Reason))
	}
	for _, n := range v.Nodes {
		if n.Report == nil {
			continue
		}
		for _, a := range n.Report.Actions {
			if len(a.Planned) == 0 && len(a.Held) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n%s: %s (%s)\n", n.Node, a.Action, a.Driver)
			for _, op := range a.Planned {
				fmt.Fprintf(w, "  %s %s %s\n", op.Op, op.Name, strings.TrimSpace(orDash(op.From)+" -> "+orDash(op.To)))
			}
			if len(a.Held) > 0 {
				fmt.Fprintf(w, "  held: %s\n", strings.Join(a.Held, ", "))
			}
		}
	}
}

func bytesText(n int64) string {
	if n <= 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printRollout writes ro as a table; now dates the bake and soak time left.
func printRollout(w io.Writer, ro api.Rollout, nodes bool, now time.Time) {
	fmt.Fprintf(w, "rollout\t%s\n", ro.ID)
	fmt.Fprintf(w, "state\t%s\n", ro.State)
	if ro.Reason != "" {
		fmt.Fprintf(w, "reason\t%s\n", ro.Reason)
	}
	for _, f := range ro.Localisation {
		fmt.Fprintf(w, "localised\t%s\n", f.Text)
	}
	fmt.Fprintf(w, "author\t%s\n", ro.Author)
	fmt.Fprintf(w, "version\t%d\n", ro.Version)
	if ro.AssignmentSHA256 != "" {
		from := ""
		if ro.DryRun != "" {
			from = ", from dry run " + ro.DryRun
		}
		fmt.Fprintf(w, "assignment\tsha256 %s (seed %s%s)\n", ro.AssignmentSHA256, ro.Seed, from)
	}
	fmt.Fprintf(w, "progress\t%s\n", progress(ro.Tally()))
	if !ro.State.Terminal() {
		fmt.Fprintf(w, "waiting\t%s\n", waitingText(ro, now))
	}
	if ro.ApprovalsNeeded > 0 {
		fmt.Fprintf(w, "approvals\tstart %s\n", approvalCount(ro, ""))
	}
	for _, wv := range ro.Waves {
		if wv.ApprovalsNeeded > 0 {
			fmt.Fprintf(w, "approvals\twave %s %s\n", wv.Name, approvalCount(ro, wv.Name))
		}
	}
	if ro.ApprovalFloor != "" {
		fmt.Fprintf(w, "approval floor\t%s\n", ro.ApprovalFloor)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "WAVE\tSTATE\tNODES\tIN FLIGHT\tSUCCEEDED\tFAILED\tROLLED BACK\tREASON")
	for _, wv := range ro.Waves {
		t := wv.Tally()
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", wv.Name, wv.State, wv.Nodes, t.InFlight, t.Succeeded,
			t.FailedEver(), t.RolledBack, orDash(wv.Reason))
	}
	if len(ro.Gates) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "GATE\tWAVE\tVERDICT\tREASON")
		for _, g := range ro.Gates {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", g.Gate, g.Wave, g.Verdict, orDash(g.Reason))
		}
	}
	if len(ro.Waits) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "WAITING\tWHY\tNODES")
		for _, wt := range ro.Waits {
			fmt.Fprintf(w, "%d\t%s\t%s\n", wt.Count, wt.Reason, sampleIDs(wt.Nodes, wt.Count))
		}
	}
	for _, u := range ro.Uncovered {
		fmt.Fprintf(w, "\nuncovered\t%s\n", uncoveredText(u))
	}
	printPrediction(w, ro)
	if nodes {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "NODE\tWAVE\tPHASE\tATTEMPT\tZONE\tFAMILY\tCLASS\tREASON")
		for _, n := range ro.Nodes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.ID, orDash(n.Wave), n.Phase, n.Attempt, orDash(n.Zone), orDash(n.Family),
				orDash(n.Class), orDash(n.Reason))
		}
	}
}

// approvalCount is the server's count of a rollout's approvals of wave
// ("" for the start): "GOT/NEEDED by NAMES" ("GOT/NEEDED, none yet"), the
// names being those the server counted (distinct, never the author).
func approvalCount(ro api.Rollout, wave string) string {
	got, need := ro.ApprovalsGot, ro.ApprovalsNeeded
	if wave != "" {
		got, need = 0, 0
		for _, wv := range ro.Waves {
			if wv.Name == wave {
				got, need = wv.ApprovalsGot, wv.ApprovalsNeeded
			}
		}
	}
	var by []string
	for _, a := range ro.Approvals {
		if a.Wave == wave && a.By != ro.Author && !slices.Contains(by, a.By) {
			by = append(by, a.By)
		}
	}
	if len(by) == 0 {
		return fmt.Sprintf("%d/%d, none yet", got, need)
	}
	return fmt.Sprintf("%d/%d by %s", got, need, strings.Join(by, ", "))
}

// orDash is s, or "-" for an empty table cell.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sampleIDs(ids []string, count int) string {
	if len(ids) > 5 {
		ids = ids[:5]
	}
	s := strings.Join(ids, ", ")
	if count > len(ids) {
		s += fmt.Sprintf(", and %d more", count-len(ids))
	}
	return s
}

func newRolloutCommand(e *env, action, short string) *cobra.Command {
	var r remote
	var reason, wave string
	var version int64
	cmd := &cobra.Command{Use: action + " ID", Short: short, Args: exactArgs(1, "a rollout ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			ro, err := c.Command(cmd.Context(), args[0], action, version, api.CommandRequest{Reason: reason, Wave: wave})
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, ro, func(w io.Writer) {
				if action == "approve" {
					what := "approvals"
					if wave != "" {
						what = "wave " + wave + " approvals"
					}
					fmt.Fprintf(w, "%s: approved; %s %s\n", ro.ID, what, approvalCount(ro, wave))
					if ro.AssignmentSHA256 != "" {
						fmt.Fprintf(w, "  for plan sha256 %s, assignment sha256 %s\n", ro.PlanSHA256, ro.AssignmentSHA256)
					}
					return
				}
				fmt.Fprintln(w, stateLine(ro))
			})
		}}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	if action == "approve" || action == "rollback" {
		cmd.Flags().StringVar(&wave, "wave", "", "only this wave")
	}
	cmd.Flags().Int64Var(&version, "if-version", 0, "act only if the rollout is still at this version (If-Match)")
	r.flags(cmd, e, true)
	return cmd
}

func newRolloutResolveCmd(e *env) *cobra.Command {
	var r remote
	var node, resolution, reason string
	cmd := &cobra.Command{Use: "resolve ID --node NODE --as retry|quarantine|skip", Short: "Resolve a failed or unknown node",
		Args: exactArgs(1, "a rollout ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			ro, err := c.Command(cmd.Context(), args[0], "resolve", 0, api.CommandRequest{Node: node, Resolution: resolution, Reason: reason})
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, ro, func(w io.Writer) { fmt.Fprintf(w, "%s: node %s resolved as %s\n", ro.ID, node, resolution) })
		}}
	cmd.Flags().StringVar(&node, "node", "", "the node")
	cmd.Flags().StringVar(&resolution, "as", "", "retry, quarantine or skip")
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	r.flags(cmd, e, true)
	return cmd
}

// stateLine is a rollout's state after a command: "ID: STATE" and its
// reason, when it has one.
func stateLine(ro api.Rollout) string {
	if ro.Reason == "" {
		return fmt.Sprintf("%s: %s", ro.ID, ro.State)
	}
	return fmt.Sprintf("%s: %s (%s)", ro.ID, ro.State, ro.Reason)
}

// newRolloutWatchCmd follows a rollout live. Exit codes: 0 when it
// succeeds, 3 when it halts, fails or is aborted, 1 on errors.
func newRolloutWatchCmd(e *env) *cobra.Command {
	var r remote
	var interval time.Duration
	cmd := &cobra.Command{Use: "watch ID", Short: "Follow a rollout live, wave by wave; exit 0 on success, 3 on halt or failure",
		Long: `Follow a rollout live. Every change prints the rollout's state, one line
per wave and the main reason nodes wait; while anything is pending a status
line (bake and soak time left, what the rollout waits for) is printed at
least every --interval. Exit 0 when the rollout succeeds, 3 when it halts,
fails or is aborted, 1 on errors.`,
		Args: exactArgs(1, "a rollout ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return usagef("--interval %s: want a positive duration", interval)
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			return watch(cmd.Context(), e, c, args[0], interval)
		}}
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "re-read the rollout and print its status at least this often")
	r.flags(cmd, e, false)
	return cmd
}

func watch(ctx context.Context, e *env, c *api.Client, id string, interval time.Duration) error {
	changed := make(chan struct{}, 1)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = c.Events(sctx, id, -1, func(api.Event) bool { // wake-ups only: new events
			select {
			case changed <- struct{}{}:
			default:
			}
			return true
		})
	}()
	last, lastStatus := "", ""
	var lastPrint time.Time
	for {
		ro, err := c.GetRollout(ctx, id, false)
		if err != nil {
			return apiErr(err)
		}
		now := time.Now()
		stamp := now.Format("15:04:05")
		if lines := watchLines(ro); lines != last {
			fmt.Fprintf(e.stdout, "%s %s", stamp, lines)
			last, lastPrint = lines, now
		}
		switch ro.State {
		case engine.RolloutSucceeded:
			fmt.Fprintf(e.stdout, "rollout %s succeeded\n", ro.ID)
			return nil
		case engine.RolloutHalted, engine.RolloutFailed, engine.RolloutAborted:
			fmt.Fprintf(e.stdout, "rollout %s\n", stateLine(ro))
			return &exitError{code: ExitHalted}
		}
		// The status line counts down: print it when what it says
		// changes, and at least every interval while anything is pending.
		status := watchStatus(ro, now)
		if key := watchStatus(ro, time.Time{}); key != lastStatus || now.Sub(lastPrint) >= interval-interval/10 {
			fmt.Fprintf(e.stdout, "%s %s\n", stamp, status)
			lastStatus, lastPrint = key, now
		}
		select {
		case <-ctx.Done():
			return exitf(ExitError, "watch interrupted")
		case <-changed:
			time.Sleep(100 * time.Millisecond) // let a burst of events settle
		case <-time.After(interval):
		}
	}
}

// watchLines renders the rollout's state, one line per wave and the main
// reason nodes wait.
func watchLines(ro api.Rollout) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s\n", ro.ID, ro.State, progress(ro.Tally()))
	if ro.Reason != "" {
		fmt.Fprintf(&b, "  reason: %s\n", ro.Reason)
	}
	for _, f := range ro.Localisation {
		fmt.Fprintf(&b, "  localised: %s\n", f.Text)
	}
	for _, w := range ro.Waves {
		fmt.Fprintf(&b, "  %-12s %-9s %3d nodes: %s\n", w.Name, w.State, w.Nodes, w.Tally().Summary())
	}
	if wt, ok := mainWait(ro.Waits); ok {
		fmt.Fprintf(&b, "  waiting: %s: %s\n", plural(wt.Count, "node"), wt.Reason)
	}
	if ro.ETA != nil {
		fmt.Fprintf(&b, "  eta: %s\n", etaText(ro.ETA))
	}
	return b.String()
}

// watchStatus is one line saying what the rollout waits for at now: the
// bakes and soaks with the time left, then the main reason nodes wait.
// A zero now leaves the times out (what the line says, not how long).
func watchStatus(ro api.Rollout, now time.Time) string {
	return fmt.Sprintf("%s %s: %s", ro.ID, ro.State, waitingText(ro, now))
}

// waitingText is what watchStatus says after the rollout's ID and state.
func waitingText(ro api.Rollout, now time.Time) string {
	var parts []string
	left := func(until time.Time) string {
		if now.IsZero() {
			return "…"
		}
		if d := until.Sub(now); d > 0 {
			return engine.FormatDuration((d + time.Second - 1).Truncate(time.Second)) + " left" // "1s left" until it is due
		}
		return "due now"
	}
	for _, w := range ro.Waves {
		if !w.BakeUntil.IsZero() {
			if now.IsZero() || w.BakeUntil.After(now) {
				parts = append(parts, fmt.Sprintf("wave %s baking: %s", w.Name, left(w.BakeUntil)))
			} else {
				parts = append(parts, fmt.Sprintf("wave %s baked, waiting for its gates to pass", w.Name))
			}
		}
		switch {
		case w.Soaking == 0:
		case w.SoakUntil.IsZero():
			parts = append(parts, fmt.Sprintf("wave %s: %s verifying, node gates not passing yet", w.Name, plural(w.Soaking, "node")))
		case w.Soaking == 1:
			parts = append(parts, fmt.Sprintf("wave %s: 1 node soaking, %s", w.Name, left(w.SoakUntil)))
		default:
			parts = append(parts, fmt.Sprintf("wave %s: %d nodes soaking, longest %s", w.Name, w.Soaking, left(w.SoakUntil)))
		}
	}
	if wt, ok := mainWait(ro.Waits); ok {
		parts = append(parts, fmt.Sprintf("%s %s: %s", plural(wt.Count, "node"), waitVerb(wt.Count), wt.Reason))
	}
	if len(parts) == 0 {
		t := ro.Tally()
		switch {
		case ro.Reason != "":
			parts = append(parts, ro.Reason)
		case t.InFlight > 0:
			parts = append(parts, fmt.Sprintf("%s in flight", plural(t.InFlight, "node")))
		default:
			parts = append(parts, "nothing pending")
		}
	}
	return strings.Join(parts, "; ")
}

// mainWait is the reason most nodes wait for (the first of equals).
func mainWait(ws []engine.Wait) (engine.Wait, bool) {
	var best engine.Wait
	for _, w := range ws {
		if w.Count > best.Count {
			best = w
		}
	}
	return best, best.Count > 0
}

func waitVerb(n int) string {
	if n == 1 {
		return "waits"
	}
	return "wait"
}

// plural is "1 node", "3 nodes".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
