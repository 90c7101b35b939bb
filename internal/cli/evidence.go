package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/evidence"
)

// newEvidenceCmd shows a node's newest evidence bundle (of a rollout),
// or asks the node for one now and waits for it (--capture).
func newEvidenceCmd(e *env) *cobra.Command {
	var r remote
	var rollout, id string
	var capture, list bool
	var units, binaries []string
	var wait time.Duration
	cmd := &cobra.Command{Use: "evidence NODE [--rollout R] [--capture] [--list]",
		Short: "Show the evidence a node's agent captured when a step failed, before the rollback (or capture it now)",
		Long: `Show a node's newest evidence bundle: what its agent captured when a step
or its node probes failed, before anything was rolled back — what the step
changed, kernel and boot ID, failed units and the last log lines of the
units the plan names, missing libraries of their binaries, resolver
configuration and answers, routes and MTUs, mounts, time sync, the
iptables backend, IO latency and utilisation, TLS handshakes to the
probes' endpoints, connection counts by state and kernel errors. Sections
cut to the bundle's bounds are marked truncated; a section whose tool is
absent on the node says so.

--rollout picks the newest bundle of that rollout, --id a given bundle,
--list lists the node's bundles. --capture asks the node's agent for a
bundle now (operator role; a healthy node too, to compare) and waits for
it, up to --wait.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("%s: want NODE, got %d argument(s)", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			ctx, node := cmd.Context(), args[0]
			if capture {
				req, err := c.AskEvidence(ctx, node, api.EvidenceAsk{Units: units, Binaries: binaries})
				if err != nil {
					return apiErr(err)
				}
				deadline := time.Now().Add(wait)
				for {
					st, err := c.EvidenceRequest(ctx, req.ID)
					if err != nil {
						return apiErr(err)
					}
					if st.Bundle != "" {
						id = st.Bundle
						break
					}
					if time.Now().After(deadline) || time.Now().After(st.Deadline) {
						return exitf(ExitError, "node %s did not answer evidence request %s within %s (is its agent online?)", node, req.ID, wait)
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(500 * time.Millisecond):
					}
				}
			}
			if id == "" {
				l, err := c.ListEvidence(ctx, node, rollout)
				if err != nil {
					return apiErr(err)
				}
				if list {
					return r.show(e, l, func(w io.Writer) { evidenceListTable(w, l) })
				}
				if len(l.Bundles) == 0 {
					in := ""
					if rollout != "" {
						in = " in rollout " + rollout
					}
					return exitf(ExitError, "node %s has no evidence bundle%s (capture one with --capture)", node, in)
				}
				id = l.Bundles[0].ID
			}
			b, err := c.GetEvidence(ctx, id)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, b, func(w io.Writer) { evidenceTable(w, b) })
		}}
	cmd.Flags().StringVar(&rollout, "rollout", "", "the newest bundle of this rollout")
	cmd.Flags().StringVar(&id, "id", "", "show this bundle")
	cmd.Flags().BoolVar(&list, "list", false, "list the node's bundles")
	cmd.Flags().BoolVar(&capture, "capture", false, "ask the node's agent for a bundle now and wait for it")
	cmd.Flags().StringArrayVar(&units, "unit", nil, "with --capture: a unit whose state, logs and linkage to capture (repeatable)")
	cmd.Flags().StringArrayVar(&binaries, "binary", nil, "with --capture: an absolute path of a binary whose linkage to capture (repeatable; a service's binary on a host without systemd)")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "with --capture: how long to wait for the node's answer")
	r.flags(cmd, e, true)
	return cmd
}

func evidenceListTable(w io.Writer, l api.EvidenceList) {
	fmt.Fprintln(w, "ID\tREASON\tROLLOUT\tSTEP\tCAPTURED\tSIZE\tSHA256")
	for _, b := range l.Bundles {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", b.ID, b.Reason, orDash(b.Rollout), orDash(b.Step),
			b.CapturedAt.UTC().Format(time.RFC3339), b.Size, b.SHA256[:min(16, len(b.SHA256))])
	}
}

// evidenceTable prints a bundle's header, then each section: its data
// human-readable (text as lines, typed data as indented JSON), its error,
// and whether it was cut.
func evidenceTable(w io.Writer, b api.EvidenceBundle) {
	fmt.Fprintf(w, "bundle\t%s (%s)\n", b.ID, b.Reason)
	fmt.Fprintf(w, "node\t%s\n", b.Node)
	if b.Rollout != "" {
		fmt.Fprintf(w, "rollout\t%s step %s\n", b.Rollout, orDash(b.Step))
	}
	fmt.Fprintf(w, "captured\t%s", b.CapturedAt.UTC().Format(time.RFC3339))
	if b.Bundle != nil {
		fmt.Fprintf(w, " in %s", b.Bundle.Took)
		if b.Bundle.OS != "" {
			fmt.Fprintf(w, " on %s", b.Bundle.OS)
		}
	}
	fmt.Fprintf(w, "\nsha256\t%s (%d bytes, in the audit log)\n", b.SHA256, b.Size)
	if b.Bundle == nil {
		return
	}
	if b.Bundle.Truncated {
		fmt.Fprintln(w, "truncated\tsome sections were cut to the bundle's bounds")
	}
	for _, s := range b.Bundle.Sections {
		head := "\n== " + s.Name
		if s.Truncated {
			head += " (TRUNCATED)"
		}
		fmt.Fprintf(w, "%s (%s)\n", head, s.Took)
		if s.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", s.Error)
		}
		if len(s.Data) == 0 {
			if s.Error == "" {
				fmt.Fprintln(w, "  (nothing to capture)")
			}
			continue
		}
		for _, line := range sectionLines(s) {
			fmt.Fprintln(w, "  "+line)
		}
	}
}

// sectionLines renders a section's data: text as its lines, the common
// typed sections as one line per item, anything else as indented JSON.
func sectionLines(s evidence.Section) []string {
	var text string
	if json.Unmarshal(s.Data, &text) == nil {
		return strings.Split(strings.TrimRight(text, "\n"), "\n")
	}
	var out []string
	b := &evidence.Bundle{Sections: []evidence.Section{s}}
	switch s.Name {
	case "interfaces":
		var v []evidence.Interface
		if b.Decode(s.Name, &v) {
			for _, i := range v {
				out = append(out, fmt.Sprintf("%-16s mtu %-6d %s", i.Name, i.MTU, i.State))
			}
			return out
		}
	case "mounts":
		var v []evidence.Mount
		if b.Decode(s.Name, &v) {
			for _, m := range v {
				rw := "rw"
				if m.ReadOnly {
					rw = "ro"
				}
				out = append(out, fmt.Sprintf("%-32s %s %-12s %s", m.Point, rw, m.FSType, m.Source))
			}
			return out
		}
	case "routes":
		var v []evidence.Route
		if b.Decode(s.Name, &v) {
			for _, r := range v {
				out = append(out, fmt.Sprintf("%-18s via %-15s dev %s", r.Destination, orDash(r.Gateway), r.Iface))
			}
			return out
		}
	case "connections":
		var v map[string]int
		if b.Decode(s.Name, &v) {
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				out = append(out, fmt.Sprintf("%-12s %d", k, v[k]))
			}
			return out
		}
	case "packages":
		var v []evidence.PackageChange
		if b.Decode(s.Name, &v) {
			for _, p := range v {
				out = append(out, fmt.Sprintf("%s %s -> %s", p.Name, orDash(p.Before), orDash(p.After)))
			}
			return out
		}
	case "unit-logs":
		var v []evidence.UnitLog
		if b.Decode(s.Name, &v) {
			for _, l := range v {
				out = append(out, "-- "+l.Unit)
				if l.Error != "" {
					out = append(out, "error: "+l.Error)
				}
				out = append(out, strings.Split(strings.TrimRight(l.Lines, "\n"), "\n")...)
			}
			return out
		}
	case "linkage":
		var v []evidence.Linkage
		if b.Decode(s.Name, &v) {
			for _, l := range v {
				who := l.Binary
				if l.Unit != "" {
					who = l.Unit + ": " + l.Binary
				}
				switch {
				case l.Error != "":
					out = append(out, fmt.Sprintf("%s: %s", strings.TrimSuffix(who, ": "), l.Error))
				case len(l.Missing) > 0:
					out = append(out, fmt.Sprintf("%s MISSING %s", who, strings.Join(l.Missing, ", ")))
				case l.Static:
					out = append(out, who+" static")
				default:
					out = append(out, fmt.Sprintf("%s links (%d libraries)", who, len(l.Libraries)))
				}
			}
			return out
		}
	}
	var v any
	if json.Unmarshal(s.Data, &v) != nil {
		return []string{string(s.Data)}
	}
	raw, _ := json.MarshalIndent(v, "", "  ")
	return strings.Split(string(raw), "\n")
}
