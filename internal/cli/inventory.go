package cli

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
)

// newNodesImportCmd imports an inventory file as expected nodes: it
// shows what would change, then applies it after a confirmation (or
// --yes).
func newNodesImportCmd(e *env) *cobra.Command {
	var (
		r      remote
		name   string
		dryRun bool
		yes    bool
	)
	cmd := &cobra.Command{Use: "import FILE [--inventory NAME] [--dry-run] [--yes]",
		Short: "Import an inventory (Ansible INI or YAML, drover YAML) as the nodes expected to run an agent",
		Long: `Import an inventory file into the server: its hosts become expected nodes,
their variables labels (well-known ones facts, as drover simulate reads
them) and their groups labels group.NAME=true. The file replaces the
named inventory's hosts (default: the file's name without extension) in
one transaction. What would change is shown first (added hosts, changed
labels and groups, removed hosts) and applied after a confirmation, or
at once with --yes; re-importing an unchanged file changes nothing.
drover nodes coverage then shows which expected nodes have no agent yet.`,
		Args: exactArgs(1, "an inventory file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return exitf(ExitError, "nodes import: %w", err)
			}
			if name == "" {
				base := filepath.Base(args[0])
				name = strings.TrimSuffix(base, filepath.Ext(base))
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			req := api.InventoryImportRequest{Name: name, Source: args[0], Content: string(data), DryRun: true}
			d, err := c.ImportInventory(cmd.Context(), req)
			if err != nil {
				return apiErr(err)
			}
			machine := r.output != string(formatTable)
			if machine && (dryRun || !yes || emptyDiff(d)) {
				// Machine output: the diff, never a prompt; applied only with --yes.
				return r.show(e, d, nil)
			}
			if !machine {
				printInventoryDiff(e.stdout, d)
			}
			if !machine && (dryRun || emptyDiff(d)) {
				return nil
			}
			if !yes {
				fmt.Fprintf(e.stdout, "Apply these changes to inventory %s? [y/N] ", name)
				var line string
				if e.stdin != nil {
					line, _ = bufio.NewReader(e.stdin).ReadString('\n')
				}
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					return exitf(ExitError, "nodes import: not applied (answer y, or pass --yes)")
				}
			}
			req.DryRun = false
			d, err = c.ImportInventory(cmd.Context(), req)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, d, func(w io.Writer) {
				if d.Applied {
					fmt.Fprintf(w, "inventory %s imported: %d hosts (%d added, %d changed, %d removed)\n",
						d.Inventory, d.Hosts, len(d.Added), len(d.Changed), len(d.Removed))
				} else {
					fmt.Fprintf(w, "inventory %s: no change\n", d.Inventory)
				}
			})
		}}
	f := cmd.Flags()
	f.StringVar(&name, "inventory", "", "inventory name (default the file's name without extension)")
	f.BoolVar(&dryRun, "dry-run", false, "show what would change, change nothing")
	f.BoolVarP(&yes, "yes", "y", false, "apply without asking")
	r.flags(cmd, e, true)
	return cmd
}

func emptyDiff(d api.InventoryDiff) bool {
	return !d.New && len(d.Added) == 0 && len(d.Changed) == 0 && len(d.Removed) == 0
}

// printInventoryDiff shows an import's changes, one host a line.
func printInventoryDiff(w io.Writer, d api.InventoryDiff) {
	if emptyDiff(d) {
		fmt.Fprintf(w, "inventory %s (%s, %d hosts): no change\n", d.Inventory, d.Format, d.Hosts)
		return
	}
	what := "changes"
	if d.New {
		what = "new inventory"
	}
	fmt.Fprintf(w, "inventory %s (%s, %d hosts): %s: %d added, %d changed, %d removed, %d unchanged\n",
		d.Inventory, d.Format, d.Hosts, what, len(d.Added), len(d.Changed), len(d.Removed), d.Unchanged)
	for _, h := range d.Added {
		fmt.Fprintf(w, "  + %s\n", h)
	}
	for _, c := range d.Changed {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
			v := c.Labels[k]
			switch {
			case v[0] == "":
				parts = append(parts, fmt.Sprintf("+%s=%s", k, v[1]))
			case v[1] == "":
				parts = append(parts, fmt.Sprintf("-%s", k))
			default:
				parts = append(parts, fmt.Sprintf("%s: %s -> %s", k, v[0], v[1]))
			}
		}
		for _, g := range c.GroupsAdded {
			parts = append(parts, "+group "+g)
		}
		for _, g := range c.GroupsRemoved {
			parts = append(parts, "-group "+g)
		}
		if c.Facts {
			parts = append(parts, "facts")
		}
		fmt.Fprintf(w, "  ~ %s: %s\n", c.Host, strings.Join(parts, ", "))
	}
	for _, h := range d.Removed {
		fmt.Fprintf(w, "  - %s\n", h)
	}
}

// newNodesCoverageCmd shows the agent coverage of the imported
// inventories.
func newNodesCoverageCmd(e *env) *cobra.Command {
	var r remote
	var name string
	cmd := &cobra.Command{Use: "coverage [--inventory NAME]",
		Short: "Show which expected nodes (imported inventories) have no agent yet, and which agents no inventory names",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			st, err := c.InventoryStatus(cmd.Context(), name)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, st, func(w io.Writer) {
				for _, i := range st.Inventories {
					fmt.Fprintf(w, "inventory\t%s\t%d hosts\t%s (%s), imported %s by %s\n", i.Name, i.Hosts, i.Source, i.Format,
						i.ImportedAt.Format(time.RFC3339), i.ImportedBy)
				}
				pct := 100.0
				if st.Expected > 0 {
					pct = 100 * float64(st.Covered) / float64(st.Expected)
				}
				fmt.Fprintf(w, "coverage\t%d of %d expected nodes have an agent (%.0f%%); %d registered\n", st.Covered, st.Expected, pct, st.Registered)
				for _, m := range st.Missing {
					fmt.Fprintf(w, "no agent\t%s\t%s\t%s\n", m.Host, m.Inventory, orDash(strings.Join(m.Groups, ",")))
				}
				for _, u := range st.Unexpected {
					fmt.Fprintf(w, "not in inventory\t%s\n", u)
				}
			})
		}}
	cmd.Flags().StringVar(&name, "inventory", "", "one inventory's coverage (agents outside it are not listed)")
	r.flags(cmd, e, true)
	return cmd
}

// newTokenEnrollCmd prints one enrolment token per expected host without
// an agent, for an inventory or a selector: the material an Ansible run
// (deploy/ansible) enrols the hosts with.
func newTokenEnrollCmd(e *env) *cobra.Command {
	var (
		r         remote
		inventory string
		selector  string
		ttl       time.Duration
		output    string
	)
	cmd := &cobra.Command{Use: "enroll --inventory NAME | --selector CEL [--ttl 1h] [-o ansible|json|csv]",
		Short: "Create one single-use enrolment token per expected host without an agent (admin only)",
		Long: `Create the enrolment material of an imported inventory's hosts (drover nodes
import), or of the expected hosts a CEL selector matches (their groups are
labels group.NAME): per host a single-use enrolment token bound to its
name, expiring after --ttl, and the CA pin. Hosts whose agent is
registered already get none. Output:
  -o ansible  a vars file for deploy/ansible: drover_ca_hash and
              drover_enroll_tokens (host -> token) (default)
  -o json     the API's answer: caHash, hosts {HOST: {token, expiresAt, labels}}
  -o csv      host,token,expires_at,ca_hash
The tokens are shown once; keep the file private (mode 0600).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if inventory == "" && selector == "" {
				return usagef("token enroll: want --inventory, --selector or both")
			}
			f, err := parseFormat(output, "ansible", formatJSON, "csv")
			if err != nil {
				return err
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			req := api.EnrollTokensRequest{Inventory: inventory, Selector: selector}
			if cmd.Flags().Changed("ttl") {
				if ttl <= 0 {
					return usagef("token enroll: --ttl %s: want a positive duration like 1h", ttl)
				}
				req.TTL = ttl.String()
			}
			out, err := c.CreateEnrollTokens(cmd.Context(), req)
			if err != nil {
				return apiErr(err)
			}
			hosts := slices.Sorted(maps.Keys(out.Hosts))
			fmt.Fprintf(e.stderr, "%d enrolment tokens (single use, bound to their host); %d hosts skipped (agent registered already)\n",
				len(hosts), len(out.Skipped))
			switch f {
			case formatJSON:
				return writeJSON(e.stdout, out)
			case "csv":
				w := csv.NewWriter(e.stdout)
				_ = w.Write([]string{"host", "token", "expires_at", "ca_hash"})
				for _, h := range hosts {
					_ = w.Write([]string{h, out.Hosts[h].Token, out.Hosts[h].ExpiresAt.Format(time.RFC3339), out.CAHash})
				}
				w.Flush()
				return w.Error()
			}
			toks := make(map[string]string, len(hosts))
			for _, h := range hosts {
				toks[h] = out.Hosts[h].Token
			}
			return writeJSON(e.stdout, map[string]any{"drover_ca_hash": out.CAHash, "drover_enroll_tokens": toks})
		}}
	fl := cmd.Flags()
	fl.StringVar(&inventory, "inventory", "", "the imported inventory's hosts")
	fl.StringVar(&selector, "selector", "", `CEL selector over the expected nodes, e.g. node.labels["group.web"] == "true"`)
	fl.DurationVar(&ttl, "ttl", 0, "tokens' lifetime (default 1h)")
	r.flags(cmd, e, false)
	fl.StringVarP(&output, "output", "o", "ansible", "output format: ansible, json or csv")
	return cmd
}
