// Package gatetest runs a real Prometheus (Debian's package, installed by
// scripts/prometheus.sh) scraping exporters that tests run in-process, one
// listener per simulated node. Tests of the gates and of the server use it.
package gatetest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drover-dev/drover/internal/fleet"
)

// This file runs a real Prometheus (Debian's package, installed by
// scripts/prometheus.sh) scraping exporters that the tests run
// in-process, one listener per simulated node.

// PrometheusBinary finds the prometheus binary or fails the test: the
// integration tests are part of the suite, never silently skipped.
func PrometheusBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus"
	}
	t.Fatalf("the prometheus binary is missing (not on PATH, not at /usr/bin/prometheus): run scripts/prometheus.sh, which `make test` runs first")
	return ""
}

// Prometheus is a Prometheus process run by one test.
type Prometheus struct {
	URL string
	API v1.API
	log *bytes.Buffer
}

// StartPrometheus starts Prometheus on a free 127.0.0.1 port scraping
// targets every second, with the given alerting rules (YAML, may be
// empty), and waits until every target is up. It is stopped when the
// test ends.
func StartPrometheus(t *testing.T, targets []string, rules string) *Prometheus {
	t.Helper()
	bin := PrometheusBinary(t)
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
	if rules != "" {
		if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.WriteString("rule_files: [rules.yml]\n")
	}
	cfg.WriteString("scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [")
	for i, tg := range targets {
		if i > 0 {
			cfg.WriteString(", ")
		}
		fmt.Fprintf(&cfg, "%q", tg)
	}
	cfg.WriteString("]\n")
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	var (
		cmd  *exec.Cmd
		addr string
		logs *bytes.Buffer
		exit chan error
	)
	// A free port can be taken between closing our listener and
	// Prometheus binding it; try again on a fresh port if it exits.
	for attempt := 0; ; attempt++ {
		addr = FreeAddr(t)
		logs = &bytes.Buffer{}
		cmd = exec.Command(bin,
			"--config.file="+cfgPath,
			"--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr,
			"--log.level=warn",
		)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		exit = make(chan error, 1)
		go func() { exit <- cmd.Wait() }()
		err := waitReady(addr, exit, 30*time.Second)
		if err == nil {
			break
		}
		stopProcess(cmd, exit)
		if attempt == 2 || !strings.Contains(logs.String(), "address already in use") {
			t.Fatalf("prometheus did not become ready: %v\n%s", err, logs)
		}
	}
	t.Cleanup(func() {
		stopProcess(cmd, exit)
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs)
		}
	})
	c, err := api.NewClient(api.Config{Address: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	ps := &Prometheus{URL: "http://" + addr, API: v1.NewAPI(c), log: logs}
	ps.WaitTargetsUp(t, len(targets))
	return ps
}

func FreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitReady(addr string, exit <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-exit:
			return fmt.Errorf("prometheus exited: %v", err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s", timeout)
}

// stopProcess stops the Prometheus this test started, by its own
// process handle: SIGTERM, then SIGKILL after five seconds.
func stopProcess(cmd *exec.Cmd, exit <-chan error) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exit:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exit
	}
}

// WaitTargetsUp waits until n active targets report up.
func (ps *Prometheus) WaitTargetsUp(t *testing.T, n int) {
	t.Helper()
	Eventually(t, 30*time.Second, "all targets up", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		res, err := ps.API.Targets(ctx)
		if err != nil {
			return false, err.Error()
		}
		up := 0
		var states []string
		for _, tg := range res.Active {
			if tg.Health == v1.HealthGood {
				up++
			}
			states = append(states, fmt.Sprintf("%s=%s", tg.ScrapeURL, tg.Health))
		}
		return up >= n, strings.Join(states, " ")
	})
}

// Eventually polls cond every 200ms until it holds, or fails the test
// after timeout with the last detail cond returned.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var detail string
	for {
		var ok bool
		ok, detail = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after %s: %s", what, timeout, detail)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Exporter is one simulated node: an HTTP listener exposing a request
// latency histogram, a request counter by status code and a histogram
// that never sees an observation, from a private registry. Each scrape
// first records perScrape synthetic requests drawn from the node's
// current behaviour, so the data depends on scrapes, not on timers.
type Exporter struct {
	Node *fleet.Node
	Addr string

	srv     *http.Server
	reqs    *prometheus.CounterVec
	latency prometheus.Histogram

	mu        sync.Mutex
	rng       *rand.Rand
	median    float64 // seconds
	sigma     float64
	errRatio  float64
	errCarry  float64
	perScrape int
}

// StartExporter runs a simulated node with the given ID and hardware
// class on a free 127.0.0.1 port; its node carries the exporter's
// host:port in label "instance", which the test queries map through
// `{{ .Nodes | label "instance" | regex }}`.
func StartExporter(t *testing.T, id, class string, seed uint64) *Exporter {
	t.Helper()
	reg := prometheus.NewRegistry()
	e := &Exporter{
		rng:       rand.New(rand.NewPCG(seed, 99)),
		median:    0.100,
		sigma:     0.2,
		errRatio:  0.005,
		perScrape: 200,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Request latency.",
			Buckets: prometheus.ExponentialBuckets(0.010, 1.1, 60),
		}),
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "Requests by status code.",
		}, []string{"code"}),
	}
	idle := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "idle_duration_seconds",
		Help:    "A histogram with no observations.",
		Buckets: prometheus.ExponentialBuckets(0.010, 2, 8),
	})
	reg.MustRegister(e.latency, e.reqs, idle)
	e.reqs.WithLabelValues("200")
	e.reqs.WithLabelValues("500")
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		e.simulate()
		metrics.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.Addr = ln.Addr().String()
	e.Node = &fleet.Node{ID: id, Labels: map[string]string{"instance": e.Addr}}
	e.Node.Facts.OS.Family = "debian"
	e.Node.Facts.Hardware.Class = class
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	t.Cleanup(e.Stop)
	return e
}

// simulate records one scrape's worth of requests.
func (e *Exporter) simulate() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for range e.perScrape {
		e.latency.Observe(e.median * math.Exp(e.sigma*e.rng.NormFloat64()))
	}
	e.errCarry += e.errRatio * float64(e.perScrape)
	errs := math.Floor(e.errCarry)
	e.errCarry -= errs
	e.reqs.WithLabelValues("500").Add(errs)
	e.reqs.WithLabelValues("200").Add(float64(e.perScrape) - errs)
}

// Set changes the node's behaviour from the next scrape on.
func (e *Exporter) Set(median, errRatio float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.median, e.errRatio = median, errRatio
}

// Stop makes the node disappear: the listener and its connections close.
func (e *Exporter) Stop() {
	_ = e.srv.Close() // closing twice is harmless
}

func StartExporters(t *testing.T, prefix, class string, n int, seed uint64) []*Exporter {
	out := make([]*Exporter, n)
	for i := range out {
		out[i] = StartExporter(t, fmt.Sprintf("%s-%d", prefix, i+1), class, seed+uint64(i))
	}
	return out
}

func NodesOf(es ...[]*Exporter) []*fleet.Node {
	var out []*fleet.Node
	for _, group := range es {
		for _, e := range group {
			out = append(out, e.Node)
		}
	}
	return out
}

func AddrsOf(es ...[]*Exporter) []string {
	var out []string
	for _, group := range es {
		for _, e := range group {
			out = append(out, e.Addr)
		}
	}
	return out
}
