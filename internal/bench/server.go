package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/store"
)

// Environment variables carrying the bench server's tokens from the
// parent bench process to its server process (kept off the command line).
const (
	EnvAgentToken = "DROVER_BENCH_AGENT_TOKEN"
	EnvUserToken  = "DROVER_BENCH_USER_TOKEN"
	// EnvDatabase carries a PostgreSQL URL shared by several bench
	// servers (it may hold a password, so it is kept off the command line).
	EnvDatabase = "DROVER_BENCH_DATABASE"
)

// ServerOptions configure a bench server: SQLite in DataDir (or the
// PostgreSQL of Database), one admin user, short timings.
type ServerOptions struct {
	DataDir    string
	Database   string        // PostgreSQL URL; "" means SQLite in DataDir
	AuditKey   string        // the audit key file servers sharing Database share; "" means DataDir/audit.key
	HTTP2      bool          // also serve prior-knowledge HTTP/2 (h2c)
	Listen     string        // "" means 127.0.0.1:0
	PollWait   time.Duration // how long an idle poll is held
	Tick       time.Duration // scheduler period
	Lease      time.Duration // must exceed PollWait
	AgentToken string
	UserToken  string
	CPUProfile string // write a CPU profile of the whole run here ("" none)
	MemProfile string // write the allocations profile (allocs) here at the end ("" none)
	Logger     *slog.Logger
}

// Serve runs a drover server on SQLite in o.DataDir (or on o.Database)
// until ctx ends.
// ready, if not nil, receives the bound address.
func Serve(ctx context.Context, o ServerOptions, ready func(addr string)) error {
	cfg := server.DefaultConfig()
	cfg.Listen = orDefault(o.Listen, "127.0.0.1:0")
	cfg.DataDir = o.DataDir
	cfg.Database = o.Database
	cfg.AuditKey = o.AuditKey
	cfg.PlainHTTP2 = o.HTTP2
	cfg.ServerID = fmt.Sprintf("bench-%d", os.Getpid())
	cfg.PollWait, cfg.Tick, cfg.Lease = o.PollWait, o.Tick, o.Lease
	cfg.AgentToken = o.AgentToken
	cfg.Users = []server.User{{Name: "bench", Role: server.RoleAdmin, Token: o.UserToken}}
	cfg.Metrics.Auth = server.MetricsAuthNone // scraped by the bench on loopback
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench server: %w", err)
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("bench server: data dir: %w", err)
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench server: cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench server: cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	st, err := store.Open(ctx, cfg.DSN(), o.Logger)
	if err != nil {
		return fmt.Errorf("bench server: %w", err)
	}
	defer st.Close()
	srv, err := server.New(cfg, server.Deps{Store: st, Logger: o.Logger, Registry: prometheus.NewRegistry()})
	if err != nil {
		return fmt.Errorf("bench server: %w", err)
	}
	if err := srv.Run(ctx, ready); err != nil {
		return fmt.Errorf("bench server: %w", err)
	}
	if o.MemProfile != "" {
		f, err := os.Create(o.MemProfile)
		if err != nil {
			return fmt.Errorf("bench server: allocs profile: %w", err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return fmt.Errorf("bench server: allocs profile: %w", err)
		}
	}
	return nil
}

// Command names how to start the drover binary: its path and any
// arguments and environment to put before the drover arguments (tests
// re-execute their own binary this way).
type Command struct {
	Path string
	Args []string
	Env  []string
}

func (c Command) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Path, append(append([]string(nil), c.Args...), args...)...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// serverProc is a bench server running as a child process.
type serverProc struct {
	cmd  *exec.Cmd
	addr string
	done chan error
	pid  int
}

// startServer starts `drover bench server` and waits for its address;
// its stderr goes to logDir/logName.
func startServer(ctx context.Context, c Command, o ServerOptions, logDir, logName string) (*serverProc, error) {
	args := []string{"bench", "server", "--data-dir", o.DataDir, "--poll-wait", o.PollWait.String(),
		"--tick", o.Tick.String(), "--lease", o.Lease.String()}
	if o.CPUProfile != "" {
		args = append(args, "--cpuprofile", o.CPUProfile)
	}
	if o.AuditKey != "" {
		args = append(args, "--audit-key", o.AuditKey)
	}
	if o.HTTP2 {
		args = append(args, "--http2")
	}
	if o.MemProfile != "" {
		args = append(args, "--memprofile", o.MemProfile)
	}
	cmd := c.cmd(ctx, args...)
	cmd.Env = append(cmd.Env, EnvAgentToken+"="+o.AgentToken, EnvUserToken+"="+o.UserToken, EnvDatabase+"="+o.Database)
	logf, err := os.Create(filepath.Join(logDir, logName))
	if err != nil {
		return nil, fmt.Errorf("server log: %w", err)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("server stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start server: %w", err)
	}
	p := &serverProc{cmd: cmd, done: make(chan error, 1), pid: cmd.Process.Pid}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, a, ok := strings.Cut(sc.Text(), "listening on http://"); ok {
				select {
				case addrc <- strings.Fields(a)[0]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.done <- err
	}()
	select {
	case p.addr = <-addrc:
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("server exited before listening (see %s): %w", logf.Name(), errOrExit(err))
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("server did not listen within 30s")
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// kill ends the server at once (SIGKILL: no shutdown, its connections
// reset, its PostgreSQL session and leader lock dropped by the kernel
// closing its sockets) and waits for it.
func (p *serverProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	p.done <- nil // stop, deferred, must not block
}

// stop asks the server to shut down (SIGTERM, so that a CPU profile is
// flushed) and waits for it.
func (p *serverProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func errOrExit(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
