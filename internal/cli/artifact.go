package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/artifact"
	"github.com/drover-dev/drover/internal/plan"
)

// newArtifactCmd groups the operator's commands for the signed artifact
// repository. They run on the operator's machine, offline, and never talk
// to a server.
func newArtifactCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifact",
		Short: "Build and sign the artifact repository (TUF) offline",
		Long: `Build and sign the repository of artifacts that do not come from an OS
repository (scripts, kpatch live patches, packages), with The Update
Framework. Run these commands on an operator's machine: the keys never
leave it.

  drover artifact init --repo DIR        keys in DIR.keys, metadata in DIR
  drover artifact add --repo DIR FILE    publish FILE, sign the new state
  drover artifact sign --repo DIR        re-sign the timestamp (daily)
  drover artifact list --repo DIR        check and list what DIR publishes

Then copy DIR (metadata/ and targets/, never the keys) to the server's
--artifacts-dir, and give agents DIR/metadata/root.json (--artifact-root).
Default validity: root 1y, targets 90d, snapshot 7d, timestamp 1d; agents
refuse everything once one is expired, so re-sign the timestamp before it
expires (it needs only DIR.keys/timestamp.key).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newArtifactInitCmd(e), newArtifactAddCmd(e), newArtifactRemoveCmd(e),
		newArtifactSignCmd(e), newArtifactListCmd(e))
	return cmd
}

// repoFlags are the flags every artifact command shares.
type repoFlags struct {
	dir, keys string
	expires   []string
}

func (f *repoFlags) register(cmd *cobra.Command, signs bool) {
	cmd.Flags().StringVar(&f.dir, "repo", "", "repository directory (published: metadata/ and targets/)")
	if signs {
		cmd.Flags().StringVar(&f.keys, "keys", "", "offline keys directory (default REPO.keys; $DROVER_ARTIFACT_KEYS)")
		cmd.Flags().StringArrayVar(&f.expires, "expires", nil, "validity of a role's new metadata, ROLE=DURATION (e.g. timestamp=2d; repeatable)")
	}
}

func (f *repoFlags) repo(e *env, cmd *cobra.Command) (*artifact.Repo, artifact.Expiry, error) {
	if f.dir == "" {
		return nil, nil, usagef("%s: --repo is required", cmd.CommandPath())
	}
	dir := filepath.Clean(f.dir)
	keys := f.keys
	if keys == "" {
		keys = e.getenv("DROVER_ARTIFACT_KEYS")
	}
	if keys == "" {
		keys = dir + ".keys"
	}
	exp := artifact.Expiry{}
	for _, s := range f.expires {
		role, d, ok := strings.Cut(s, "=")
		if !ok {
			return nil, nil, usagef("--expires %q: want ROLE=DURATION", s)
		}
		if err := artifact.ValidRole(role); err != nil {
			return nil, nil, usagef("--expires %q: %v", s, err)
		}
		dur, err := parseValidity(d)
		if err != nil || dur <= 0 {
			return nil, nil, usagef("--expires %q: want a positive duration like 24h, 7d, 3mo or 1y", s)
		}
		exp[role] = dur
	}
	return &artifact.Repo{Dir: dir, KeysDir: keys}, exp, nil
}

// parseValidity reads a duration in drover's syntax ("36h", "7d") plus
// months ("3mo", 30 days) and years ("1y", 365 days).
func parseValidity(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"mo": 30 * 24 * time.Hour, "y": 365 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			var k int
			if _, err := fmt.Sscanf(n, "%d", &k); err != nil || fmt.Sprint(k) != n {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			return time.Duration(k) * unit, nil
		}
	}
	d, err := plan.ParseDuration(s)
	return d.D(), err
}

func newArtifactInitCmd(e *env) *cobra.Command {
	var f repoFlags
	cmd := &cobra.Command{Use: "init --repo DIR", Short: "Create the role keys (offline) and the first signed metadata", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, exp, err := f.repo(e, cmd)
			if err != nil {
				return err
			}
			if err := r.Init(exp); err != nil {
				return exitf(ExitError, "artifact init: %w", err)
			}
			fmt.Fprintf(e.stdout, "created repository %s (keys in %s: keep them offline)\n", r.Dir, r.KeysDir)
			fmt.Fprintf(e.stdout, "agents pin %s (drover agent --artifact-root)\n", filepath.Join(r.Dir, "metadata", "root.json"))
			return nil
		}}
	f.register(cmd, true)
	return cmd
}

func newArtifactAddCmd(e *env) *cobra.Command {
	var (
		f    repoFlags
		name string
	)
	cmd := &cobra.Command{Use: "add --repo DIR FILE", Short: "Publish FILE as a signed artifact (re-signs targets, snapshot, timestamp)",
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, exp, err := f.repo(e, cmd)
			if err != nil {
				return err
			}
			if name == "" {
				name = filepath.Base(args[0])
			}
			if err := artifact.ValidName(name); err != nil {
				return usagef("artifact add: %v", err)
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return exitf(ExitError, "artifact add: %w", err)
			}
			tf, err := r.Add(name, data, exp)
			if err != nil {
				return exitf(ExitError, "artifact add: %w", err)
			}
			fmt.Fprintf(e.stdout, "added %s (%d bytes, sha256 %x)\n", name, tf.Length, []byte(tf.Hashes["sha256"]))
			return nil
		}}
	f.register(cmd, true)
	cmd.Flags().StringVar(&name, "name", "", "artifact name plans refer to (default the file's base name)")
	return cmd
}

func newArtifactRemoveCmd(e *env) *cobra.Command {
	var f repoFlags
	cmd := &cobra.Command{Use: "remove --repo DIR NAME", Short: "Withdraw an artifact: agents refuse it once they see the new metadata",
		Args: exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, exp, err := f.repo(e, cmd)
			if err != nil {
				return err
			}
			if err := r.Remove(args[0], exp); err != nil {
				return exitf(ExitError, "artifact remove: %w", err)
			}
			fmt.Fprintf(e.stdout, "removed %s\n", args[0])
			return nil
		}}
	f.register(cmd, true)
	return cmd
}

func newArtifactSignCmd(e *env) *cobra.Command {
	var (
		f    repoFlags
		role string
	)
	cmd := &cobra.Command{Use: "sign --repo DIR [--role ROLE]", Short: "Re-sign a role with a fresh expiry (default the timestamp)",
		Long: `Re-sign ROLE with a new version and expiry, and the roles that describe it
(targets: snapshot and timestamp; snapshot: timestamp). Only those roles'
keys are read, so the daily timestamp needs DIR.keys/timestamp.key alone.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, exp, err := f.repo(e, cmd)
			if err != nil {
				return err
			}
			if err := artifact.ValidRole(role); err != nil {
				return usagef("artifact sign: %v", err)
			}
			if err := r.Sign(role, exp); err != nil {
				return exitf(ExitError, "artifact sign: %w", err)
			}
			l, err := r.List()
			if err != nil {
				return exitf(ExitError, "artifact sign: %w", err)
			}
			printRoles(e, l)
			return nil
		}}
	f.register(cmd, true)
	cmd.Flags().StringVar(&role, "role", "timestamp", "role to re-sign: timestamp, snapshot, targets or root")
	return cmd
}

func newArtifactListCmd(e *env) *cobra.Command {
	var f repoFlags
	cmd := &cobra.Command{Use: "list --repo DIR", Short: "Check the repository's signatures and list its roles and artifacts",
		Long: `Check the repository's signatures and versions as an agent would, then list
each role's version and expiry and every artifact. Exits 1 when a role is
expired (agents refuse every artifact until it is re-signed).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, _, err := f.repo(e, cmd)
			if err != nil {
				return err
			}
			l, err := r.List()
			if err != nil {
				return exitf(ExitError, "artifact list: %w", err)
			}
			printRoles(e, l)
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ARTIFACT\tBYTES\tSHA256")
			for _, t := range l.Targets {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", t.Name, t.Length, t.SHA256)
			}
			_ = tw.Flush()
			if exp := l.Expired(time.Now()); len(exp) > 0 {
				return exitf(ExitError, "artifact list: expired: %s (re-sign with drover artifact sign --role ROLE)", strings.Join(exp, ", "))
			}
			return nil
		}}
	f.register(cmd, false)
	return cmd
}

func printRoles(e *env, l artifact.Listing) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES")
	for _, ri := range l.Roles {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", ri.Role, ri.Version, ri.Expires.UTC().Format(time.RFC3339))
	}
	_ = tw.Flush()
}
