package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// killPhase runs REST reads over every server for the kill window, kills
// the leading server a third of the way in, and measures the reads, the
// new leader, the agents moving and the survivors' cost.
func (fr *fleetRun) killPhase(ctx context.Context, srvs []*serverProc, hc *http.Client, userTok string) (KillResult, error) {
	cfg := fr.cfg
	leader, err := waitAnyLeader(ctx, hc, fr.bases, 30*time.Second)
	if err != nil {
		return KillResult{}, err
	}
	killAt := cfg.KillWindow / 3
	k := KillResult{Killed: leader, KilledLeader: true, NewLeader: -1, WindowSeconds: cfg.KillWindow.Seconds(), KillAtSeconds: killAt.Seconds()}
	var survivors []int
	for i := range srvs {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	load := &failoverLoad{workers: cfg.APIWorkers, pause: cfg.APIPause}
	for _, b := range fr.bases {
		load.clients = append(load.clients, &api.Client{Base: b, Token: userTok, HTTP: hc})
	}
	cpu0 := make([]time.Duration, len(survivors))
	for j, s := range survivors {
		if cpu0[j], err = procCPU(srvs[s].pid); err != nil {
			return k, err
		}
	}
	k.Survivors = make([]ServerStat, len(survivors))
	fmt.Fprintf(cfg.Progress, "REST reads over %d servers for %s; killing server %d (the leader) at %s\n",
		len(srvs), cfg.KillWindow, leader, killAt)
	t0 := time.Now()
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	load.start(lctx, &wg)
	if err := sampleRSS(ctx, t0.Add(killAt), srvs, survivors, k.Survivors); err != nil {
		stop()
		wg.Wait()
		return k, err
	}
	killT := time.Now()
	errs0 := fr.errs.Load()
	srvs[leader].kill()
	fmt.Fprintf(cfg.Progress, "killed server %d\n", leader)
	var bases []string
	for _, s := range survivors {
		bases = append(bases, fr.bases[s])
	}
	nl, err := waitAnyLeader(ctx, hc, bases, cfg.KillWindow)
	if err == nil {
		k.NewLeader = survivors[nl]
		k.LeaderAfterSeconds = roundMs(time.Since(killT))
		fmt.Fprintf(cfg.Progress, "server %d leads after %.2f s\n", k.NewLeader, k.LeaderAfterSeconds)
	}
	var polls0 int64
	var tMid time.Time
	if err := sampleRSS(ctx, killT.Add(cfg.Heartbeat), srvs, survivors, k.Survivors); err == nil {
		polls0, tMid = fr.polls.Load(), time.Now()
		err = sampleRSS(ctx, t0.Add(cfg.KillWindow), srvs, survivors, k.Survivors)
	}
	stop()
	wg.Wait()
	if err != nil {
		return k, err
	}
	end := time.Now()
	if end.After(tMid) {
		k.PollsPerSecAfter = round1(float64(fr.polls.Load()-polls0) / end.Sub(tMid).Seconds())
	}
	k.PollErrors = fr.errs.Load() - errs0
	k.AgentsMoved = fr.moved.Load()
	k.LastPollError = fr.lastPollError()
	k.Retried = load.retried.Load()
	for j, s := range survivors {
		st, err := serverCost(srvs[s].pid, cpu0[j], end.Sub(t0), &k.Survivors[j])
		if err != nil {
			return k, err
		}
		m, err := scrape(ctx, hc, fr.bases[s])
		if err != nil {
			return k, err
		}
		st.Polling = int(m["drover_agents_connected"])
		st.Leader = m["drover_leader"] == 1
		k.Survivors[j] = st
		k.PollingAfter += st.Polling
	}
	during := killT.Add(cfg.Heartbeat)
	k.Before = load.phase(time.Time{}, killT)
	k.During = load.phase(killT, during)
	k.After = load.phase(during, end)
	return k, nil
}

// failoverLoad is REST reads spread over the servers: worker w starts
// on server w mod n; a failed request is retried on the next server and
// the worker stays there.
type failoverLoad struct {
	clients []*api.Client
	workers int
	pause   time.Duration

	mu      sync.Mutex
	reqs    []timedReq
	retried atomic.Int64
}

type timedReq struct {
	at time.Time
	d  time.Duration
	ok bool
}

func (l *failoverLoad) start(ctx context.Context, wg *sync.WaitGroup) {
	calls := []func(ctx context.Context, c *api.Client) error{
		func(ctx context.Context, c *api.Client) error { _, err := c.ListNodes(ctx, "", "", 100); return err },
		func(ctx context.Context, c *api.Client) error { _, err := c.ListRollouts(ctx); return err },
	}
	for w := range l.workers {
		wg.Go(func() {
			cur := w % len(l.clients)
			for n := w; ; n++ {
				call := calls[n%len(calls)]
				t0 := time.Now()
				var err error
				for try := range len(l.clients) {
					if try > 0 {
						l.retried.Add(1)
						cur = (cur + 1) % len(l.clients)
					}
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err = call(rctx, l.clients[cur])
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
				}
				if ctx.Err() != nil {
					return
				}
				l.mu.Lock()
				l.reqs = append(l.reqs, timedReq{at: t0, d: time.Since(t0), ok: err == nil})
				l.mu.Unlock()
				if sleepCtx(ctx, l.pause) != nil {
					return
				}
			}
		})
	}
}

// phase is the reads begun in [from, to).
func (l *failoverLoad) phase(from, to time.Time) PhaseStat {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ds []time.Duration
	var st PhaseStat
	for _, r := range l.reqs {
		if r.at.Before(from) || !r.at.Before(to) {
			continue
		}
		if !r.ok {
			st.Errors++
			continue
		}
		ds = append(ds, r.d)
	}
	slices.Sort(ds)
	st.Requests = len(ds) + int(st.Errors)
	if len(ds) > 0 {
		st.P50Ms, st.P99Ms, st.MaxMs = ms(quantile(ds, .5)), ms(quantile(ds, .99)), ms(ds[len(ds)-1])
	}
	return st
}

// waitAnyLeader waits until one of bases reports leading on /healthz and
// returns its index.
func waitAnyLeader(ctx context.Context, hc *http.Client, bases []string, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for i, b := range bases {
			if leads(ctx, hc, b) {
				return i, nil
			}
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return -1, err
		}
	}
	return -1, fmt.Errorf("no server led within %s", within)
}

func leads(ctx context.Context, hc *http.Client, base string) bool {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct {
		Leader bool `json:"leader"`
	}
	return json.NewDecoder(resp.Body).Decode(&h) == nil && h.Leader
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute figures (zeros where
// unreadable).
func loadAvg() [3]float64 {
	var out [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	for i, f := range strings.Fields(string(b)) {
		if i >= 3 {
			break
		}
		out[i], _ = strconv.ParseFloat(f, 64)
	}
	return out
}

func roundMs(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}
