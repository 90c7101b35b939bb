package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
)

func newNodesCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "nodes", Short: "List, inspect and label the fleet's nodes", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(newNodesListCmd(e), newNodesGetCmd(e), newNodesLabelCmd(e), newNodesRemoveCmd(e), newNodesReleaseCmd(e),
		newNodesImportCmd(e), newNodesCoverageCmd(e))
	return cmd
}

func newNodesListCmd(e *env) *cobra.Command {
	var r remote
	var selector string
	cmd := &cobra.Command{Use: "list [--selector CEL]", Short: "List nodes, optionally filtered by a CEL selector", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			nodes, err := c.AllNodes(cmd.Context(), selector)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, api.NodeList{Nodes: nodes}, func(w io.Writer) {
				fmt.Fprintln(w, "NODE\tOS\tVERSION\tCLASS\tZONE\tTIER\tONLINE\tLAST SEEN")
				for _, n := range nodes {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", n.ID, orDash(n.Facts.OS.Family), orDash(n.Facts.OS.Version),
						orDash(n.Facts.Hardware.Class), orDash(n.Labels["zone"]), orDash(n.Labels["tier"]), n.Online, sinceText(n.LastSeen))
				}
				fmt.Fprintf(w, "%d nodes\n", len(nodes))
			})
		}}
	cmd.Flags().StringVar(&selector, "selector", "", `CEL selector, e.g. node.os.family == "debian"`)
	r.flags(cmd, e, true)
	return cmd
}

func newNodesGetCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "get NODE", Short: "Show a node's facts and labels", Args: exactArgs(1, "a node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			n, err := c.GetNode(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, n, func(w io.Writer) {
				fmt.Fprintf(w, "node\t%s\nversion\t%d\nos\t%s %s %s\nkernel\t%s\narch\t%s\nclass\t%s\nonline\t%v\nlast seen\t%s\n",
					n.ID, n.Version, n.Facts.OS.Family, n.Facts.OS.Name, n.Facts.OS.Version, n.Facts.Kernel, n.Facts.Arch,
					n.Facts.Hardware.Class, n.Online, sinceText(n.LastSeen))
				keys := make([]string, 0, len(n.Labels))
				for k := range n.Labels {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				for _, k := range keys {
					fmt.Fprintf(w, "label\t%s=%s\n", k, n.Labels[k])
				}
				fmt.Fprintf(w, "packages\t%d\n", len(n.Facts.Packages))
				if h := n.HeldBy; h != nil {
					name := ""
					if h.Name != "" && h.Name != h.Holder {
						name = " (" + h.Name + ")"
					}
					fmt.Fprintf(w, "held by\t%s %s%s for %s\n", h.Kind, h.Holder, name, sinceText(h.Since))
				}
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

// newNodesLabelCmd sets (k=v) and removes (k-) labels, guarded by the
// node's version so that concurrent edits are not lost.
func newNodesLabelCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "label NODE KEY=VALUE... KEY-...", Short: "Set or remove a node's labels", Args: minArgs(2, "a node ID and at least one KEY=VALUE or KEY-"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			n, err := c.GetNode(cmd.Context(), args[0])
			if err != nil {
				return apiErr(err)
			}
			labels := map[string]string{}
			for k, v := range n.Labels {
				labels[k] = v
			}
			for _, a := range args[1:] {
				if k, ok := strings.CutSuffix(a, "-"); ok && !strings.Contains(a, "=") {
					delete(labels, k)
					continue
				}
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return usagef("label %q: want KEY=VALUE or KEY-", a)
				}
				labels[k] = v
			}
			n, err = c.SetLabels(cmd.Context(), args[0], n.Version, labels)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, n, func(w io.Writer) { fmt.Fprintf(w, "%s labelled (version %d)\n", n.ID, n.Version) })
		}}
	r.flags(cmd, e, true)
	return cmd
}

// newNodesRemoveCmd removes a node: its certificate is refused at once and
// its name may enrol again (with a new key) only after this.
func newNodesRemoveCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "remove NODE", Short: "Remove a node: its certificate stops working, its name may enrol again", Args: exactArgs(1, "a node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			if err := c.RemoveNode(cmd.Context(), args[0]); err != nil {
				return apiErr(err)
			}
			fmt.Fprintf(e.stdout, "%s removed\n", args[0])
			return nil
		}}
	r.flags(cmd, e, false)
	return cmd
}

// newNodesReleaseCmd releases the FleetLock slot a node holds (a Zincati
// or Flatcar node that never came back from its reboot).
func newNodesReleaseCmd(e *env) *cobra.Command {
	var r remote
	var reason string
	cmd := &cobra.Command{Use: "release NODE --reason R", Short: "Release the FleetLock reboot slot a node holds (admin)", Args: exactArgs(1, "a node ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("nodes release: --reason is required (recorded in the audit log)")
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			h, err := c.ReleaseFleetLock(cmd.Context(), args[0], reason)
			if err != nil {
				return apiErr(err)
			}
			return r.show(e, h, func(w io.Writer) {
				fmt.Fprintf(w, "%s released from FleetLock group %s (held for %s)\n", h.Node, h.Holder, sinceText(h.Since))
			})
		}}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	r.flags(cmd, e, true)
	return cmd
}
