package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/agent/agentcmd"
	"github.com/drover-dev/drover/internal/gate"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/store"
)

// newServerCmd runs the control plane. Configuration precedence: defaults
// < --config file < DROVER_* environment < flags; everything is validated
// before anything starts.
func newServerCmd(e *env) *cobra.Command {
	var file string
	flagCfg := server.DefaultConfig()
	cmd := &cobra.Command{Use: "server", Short: "Run the control plane: API, agent channel, scheduler", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := server.DefaultConfig()
			cfg.TLS = true // the library default is off; the server command serves TLS unless told otherwise
			if file != "" {
				if err := cfg.LoadFile(file); err != nil {
					return exitf(ExitError, "%w", err)
				}
			}
			if err := cfg.LoadEnv(e.getenv); err != nil {
				return exitf(ExitError, "%w", err)
			}
			f := cmd.Flags()
			set := func(name string, apply func()) {
				if f.Changed(name) {
					apply()
				}
			}
			set("listen", func() { cfg.Listen = flagCfg.Listen })
			set("data-dir", func() { cfg.DataDir = flagCfg.DataDir })
			set("database", func() { cfg.Database = flagCfg.Database })
			set("server-id", func() { cfg.ServerID = flagCfg.ServerID })
			set("lease", func() { cfg.Lease = flagCfg.Lease })
			set("poll-wait", func() { cfg.PollWait = flagCfg.PollWait })
			set("tick", func() { cfg.Tick = flagCfg.Tick })
			set("prometheus", func() { cfg.Prometheus = flagCfg.Prometheus })
			set("agent-token", func() { cfg.AgentToken = flagCfg.AgentToken })
			set("artifacts-dir", func() { cfg.ArtifactsDir = flagCfg.ArtifactsDir })
			set("audit-key", func() { cfg.AuditKey = flagCfg.AuditKey })
			set("tls", func() { cfg.TLS = flagCfg.TLS })
			set("ca-cert", func() { cfg.CACert = flagCfg.CACert })
			set("ca-key", func() { cfg.CAKey = flagCfg.CAKey })
			set("insecure-plain-http", func() { cfg.InsecurePlainHTTP = flagCfg.InsecurePlainHTTP })
			if err := cfg.Validate(); err != nil {
				return exitf(ExitError, "invalid configuration:\n%w", err)
			}
			log := agentcmd.NewLogger(orString(e.getenv("DROVER_LOG"), cfg.LogLevel), e.stderr)
			// The data dir holds the SQLite database, the CA and the audit key.
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return exitf(ExitError, "data dir: %w", err)
			}
			ctx := cmd.Context()
			st, err := store.Open(ctx, cfg.DSN(), log)
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			defer st.Close()
			var gates gate.Evaluator
			if cfg.Prometheus != "" {
				if gates, err = newPrometheusGates(cfg.Prometheus, log); err != nil {
					return exitf(ExitError, "prometheus: %w", err)
				}
			}
			srv, err := server.New(cfg, server.Deps{Store: st, Logger: log, Registry: prometheus.NewRegistry(), Gates: gates})
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			err = srv.Run(ctx, func(addr string) {
				if cfg.TLS {
					fmt.Fprintf(e.stdout, "drover server %s listening on https://%s (database %s)\nCA %s: agents enrol with --ca-hash %s; CLI clients set DROVER_CA_CERT to the CA file\n",
						cfg.ServerID, addr, redact(cfg.DSN()), orString(cfg.CACert, filepath.Join(cfg.DataDir, "ca.pem")), srv.CAHash())
					return
				}
				fmt.Fprintf(e.stdout, "drover server %s listening on http://%s (database %s)\n", cfg.ServerID, addr, redact(cfg.DSN()))
			})
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			return nil
		}}
	f := cmd.Flags()
	f.StringVar(&file, "config", "", "YAML configuration file")
	f.StringVar(&flagCfg.Listen, "listen", flagCfg.Listen, "host:port to serve the API and the agent channel on")
	f.StringVar(&flagCfg.DataDir, "data-dir", flagCfg.DataDir, "directory of the SQLite database")
	f.StringVar(&flagCfg.Database, "database", "", "database DSN (postgres://... for several servers); default SQLite in --data-dir")
	f.StringVar(&flagCfg.ServerID, "server-id", flagCfg.ServerID, "unique name of this server process")
	f.DurationVar(&flagCfg.Lease, "lease", flagCfg.Lease, "an agent silent this long makes its in-flight nodes unknown")
	f.DurationVar(&flagCfg.PollWait, "poll-wait", flagCfg.PollWait, "how long an idle agent poll is held")
	f.DurationVar(&flagCfg.Tick, "tick", flagCfg.Tick, "scheduler period when nothing wakes it")
	f.StringVar(&flagCfg.Prometheus, "prometheus", "", "Prometheus base URL for wave gates and blocking alerts")
	f.StringVar(&flagCfg.AgentToken, "agent-token", "", "INSECURE shared agent token (any holder may act as any node): tests and migrations only")
	f.BoolVar(&flagCfg.TLS, "tls", true, "serve TLS with the built-in CA and accept agents' client certificates (--tls=false: plain HTTP, for tests on loopback)")
	f.StringVar(&flagCfg.CACert, "ca-cert", "", "the operator's own CA certificate (default DATA-DIR/ca.pem, created at the first start)")
	f.StringVar(&flagCfg.CAKey, "ca-key", "", "the private key of --ca-cert")
	f.BoolVar(&flagCfg.InsecurePlainHTTP, "insecure-plain-http", false, "with --tls=false, allow listening on an address that is not loopback (tokens cross the network in clear)")
	f.StringVar(&flagCfg.AuditKey, "audit-key", "", "note signer key file signing the audit log's checkpoints (default DATA-DIR/audit.key, generated at first start; servers sharing a database must share it)")
	f.StringVar(&flagCfg.ArtifactsDir, "artifacts-dir", "", "signed artifact repository (drover artifact init) to publish read-only at /v1/artifacts")
	return cmd
}

func orString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// redact hides a DSN's password.
func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if u, _, ok := strings.Cut(userinfo, ":"); ok {
		return dsn[:scheme+3] + u + ":***" + dsn[at:]
	}
	return dsn
}

// newPrometheusGates builds the Prometheus wave-gate evaluator.
func newPrometheusGates(url string, log *slog.Logger) (gate.Evaluator, error) {
	return gate.NewPrometheus(url, gate.WithLogger(log.With("component", "gates")))
}
