// Package servertest runs a real drover server, on SQLite in a test's
// temporary directory, for the tests of other packages that drive it with
// real agents and the CLI.
package servertest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/store"
)

// Start runs a server with the default configuration, changed by edit,
// on a loopback port with plain HTTP, until ctx ends or the test ends
// (then it stops the server and closes its store, after the cleanups the
// test registers later, such as stopping its agents). It returns the
// server's base URL, its store and the configuration it runs with. The
// store is SQLite in the test's directory unless edit sets
// Config.Database (a PostgreSQL several servers share).
func Start(t testing.TB, ctx context.Context, edit func(*server.Config)) (string, store.Store, server.Config) {
	t.Helper()
	_, url, st, cfg := StartServer(t, ctx, edit)
	return url, st, cfg
}

// StartServer is Start that also returns the running server, for the
// addresses of its other listeners and its metrics registry.
func StartServer(t testing.TB, ctx context.Context, edit func(*server.Config)) (*server.Server, string, store.Store, server.Config) {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	edit(&cfg)
	st, err := store.Open(ctx, cfg.DSN(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, server.Deps{Store: st, Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx, func(a string) { addr <- a }) }()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		stop()
		st.Close()
		t.Fatalf("server did not start: %v", err)
	}
	t.Cleanup(func() {
		stop()
		<-done
		st.Close()
	})
	return srv, url, st, cfg
}
