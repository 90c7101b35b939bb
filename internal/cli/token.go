package cli

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
)

// caHTTPClient trusts the CA in $DROVER_CA_CERT (a TLS server's
// DATA-DIR/ca.pem) besides the system's; nil when unset.
func caHTTPClient(e *env) (*http.Client, error) {
	file := e.getenv("DROVER_CA_CERT")
	if file == "" {
		return nil, nil
	}
	pemData, err := os.ReadFile(file)
	if err != nil {
		return nil, exitf(ExitError, "DROVER_CA_CERT: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, exitf(ExitError, "DROVER_CA_CERT %s: no PEM certificate", file)
	}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}}}, nil
}

// newTokenCmd creates enrolment and API tokens, lists and revokes API
// tokens (admin only). "tokens" is the same command.
func newTokenCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Aliases: []string{"tokens"},
		Short: "Create enrolment tokens for agents and API tokens for users; list and revoke API tokens", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	var (
		r      remote
		ttl    time.Duration
		labels string
		user   string
		role   string
	)
	create := &cobra.Command{
		Use:   "create [--ttl 1h] [--labels k=v,...] | --user NAME --role ROLE [--ttl D]",
		Short: "Create a token (admin only); it is shown once and stored only hashed",
		Long: `Create a token. Without --user: a single-use enrolment token for one agent,
expiring after --ttl (default 1h), optionally limiting the node's labels
(--labels zone=a,env=prod); the agent runs
  drover agent --server https://SERVER --enroll-token TOKEN --ca-hash HASH
With --user and --role (viewer, operator, approver, admin): an API token,
expiring after --ttl if given.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			req := api.TokenRequest{Kind: api.TokenEnroll}
			if cmd.Flags().Changed("ttl") {
				if ttl <= 0 {
					return usagef("token create: --ttl %s: want a positive duration like 1h", ttl)
				}
				req.TTL = ttl.String()
			}
			switch {
			case user != "" || role != "":
				if user == "" || role == "" {
					return usagef("token create: --user and --role go together")
				}
				if labels != "" {
					return usagef("token create: --labels is for enrolment tokens")
				}
				req.Kind, req.User, req.Role = api.TokenAPI, user, role
			case labels != "":
				req.Labels = map[string]string{}
				for _, kv := range strings.Split(labels, ",") {
					k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
					if !ok || k == "" {
						return usagef("token create: --labels %q: want k=v,...", labels)
					}
					req.Labels[k] = v
				}
			}
			out, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return exitf(ExitError, "token create: %w", err)
			}
			return r.show(e, out, func(w io.Writer) {
				fmt.Fprintln(w, out.Token)
				if out.Kind == api.TokenEnroll {
					fmt.Fprintf(e.stderr, "enrolment token, single use, expires %s; agents pin the CA with --ca-hash %s\n",
						out.ExpiresAt.Format(time.RFC3339), out.CAHash)
				} else {
					fmt.Fprintf(e.stderr, "API token of %s (role %s, ID %s); it is not shown again\n", out.User, out.Role, out.ID)
				}
			})
		},
	}
	r.flags(create, e, true)
	f := create.Flags()
	f.DurationVar(&ttl, "ttl", 0, "lifetime (enrolment default 1h; API tokens default none)")
	f.StringVar(&labels, "labels", "", "enrolment: labels the node is limited to, k=v,...")
	f.StringVar(&user, "user", "", "API token: the user's name")
	f.StringVar(&role, "role", "", "API token: viewer, operator, approver or admin")
	cmd.AddCommand(create, newTokenListCmd(e), newTokenRevokeCmd(e), newTokenEnrollCmd(e))
	return cmd
}

// newTokenListCmd lists API tokens by ID; the tokens themselves are
// never shown again after their creation.
func newTokenListCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "list", Short: "List API tokens by ID, oldest first, revoked and expired ones included (admin only)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			list, err := c.ListTokens(cmd.Context())
			if err != nil {
				return apiErr(err)
			}
			now := time.Now()
			return r.show(e, list, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tUSER\tROLE\tSTATE\tCREATED\tEXPIRES\tREVOKED")
				for _, t := range list.Tokens {
					state := "active"
					switch {
					case !t.RevokedAt.IsZero():
						state = "revoked"
					case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
						state = "expired"
					}
					expires, revoked := "never", "-"
					if !t.ExpiresAt.IsZero() {
						expires = t.ExpiresAt.Format(time.RFC3339)
					}
					if !t.RevokedAt.IsZero() {
						revoked = t.RevokedAt.Format(time.RFC3339) + " by " + t.RevokedBy
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s by %s\t%s\t%s\n", t.ID, t.User, t.Role, state,
						t.CreatedAt.Format(time.RFC3339), t.CreatedBy, expires, revoked)
				}
				fmt.Fprintf(w, "%d tokens\n", len(list.Tokens))
			})
		}}
	r.flags(cmd, e, true)
	return cmd
}

// newTokenRevokeCmd revokes an API token: every server refuses it from
// now on. Revoking a revoked token succeeds and changes nothing.
func newTokenRevokeCmd(e *env) *cobra.Command {
	var r remote
	cmd := &cobra.Command{Use: "revoke ID", Short: "Revoke an API token by the ID `token list` shows (admin only); it stops working at once",
		Args: exactArgs(1, "a token ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return exitf(ExitError, "token revoke: %w", err)
			}
			fmt.Fprintf(e.stdout, "%s revoked\n", args[0])
			return nil
		}}
	r.flags(cmd, e, false)
	return cmd
}
