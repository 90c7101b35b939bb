package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/demo"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/server"
)

// The browser tests drive Debian's chromium through chromedp against a
// demo server (a real server on SQLite with real agents over loopback on
// simulated nodes). They fail, never skip, when chromium is missing:
// scripts/deps.sh installs it.

const demoNodes = 20

// fixture is one demo fleet and one headless browser shared by the
// subtests, which run in order.
type fixture struct {
	t       *testing.T
	ctx     context.Context // the test's deadline
	base    string
	users   map[string]server.User
	browser context.Context // a chromedp tab
	shots   string          // screenshot directory
}

func chromiumPath(t *testing.T) string {
	if p := os.Getenv("DROVER_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: the dashboard's browser tests need it. Run scripts/deps.sh (apt-get install chromium) or set DROVER_CHROMIUM to a Chromium binary.")
	return ""
}

func artifactDir(t *testing.T) string {
	dir := t.TempDir()
	if d := os.Getenv("DROVER_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, "dashboard")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("dashboard screenshots: %s", dir)
	return dir
}

func newFixture(t *testing.T) *fixture {
	chromium := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)

	// The demo fleet, kept serving after its two rollouts.
	demoCtx, stopDemo := context.WithCancel(ctx)
	ready := make(chan demo.Access, 1)
	done := make(chan error, 1)
	go func() {
		_, err := demo.Run(demoCtx, demo.Options{Nodes: demoNodes, Keep: true, Dir: t.TempDir(), Step: time.Second,
			Ready: func(a demo.Access) { ready <- a }})
		done <- err
	}()
	t.Cleanup(func() {
		stopDemo()
		if err := <-done; err != nil && demoCtx.Err() == nil {
			t.Errorf("demo: %v", err)
		}
	})
	f := &fixture{t: t, ctx: ctx, users: map[string]server.User{}, shots: artifactDir(t)}
	select {
	case a := <-ready:
		f.base = a.URL
		for _, u := range a.Users {
			f.users[u.Name] = u
		}
	case err := <-done:
		t.Fatalf("demo stopped before its fleet was up: %v", err)
	case <-ctx.Done():
		t.Fatal("demo fleet not up in time")
	}

	// The browser: headless, no sandbox (tests run as root in containers),
	// no background networking, a throwaway profile.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(tab, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	f.browser = tab
	return f
}

// client is an API client acting as user.
func (f *fixture) client(user string) *api.Client {
	return &api.Client{Base: f.base, Token: f.users[user].Token}
}

// do runs browser actions with a bound on how long they may take.
func (f *fixture) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.browser, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		f.t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](f *fixture, js string) T {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.browser, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		f.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func (f *fixture) text(sel string) string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.browser, 15*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		f.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// signIn signs user in through the sign-in page.
func (f *fixture) signIn(user string) {
	f.t.Helper()
	f.do("sign in as "+user,
		chromedp.Navigate(f.base+"/ui/login"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), f.users[user].Token),
		chromedp.Click(chromedp.CSS(`form[action="/ui/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=me]`)),
	)
	if got := f.text(".me-name"); got != user {
		f.t.Fatalf("signed in as %q, want %q", got, user)
	}
	if html := eval[string](f, "document.documentElement.outerHTML"); strings.Contains(html, f.users[user].Token) {
		f.t.Fatal("the page shows the token after sign-in")
	}
	if c := eval[string](f, "document.cookie"); strings.Contains(c, f.users[user].Token) {
		f.t.Fatal("the token cookie is readable by scripts; want HttpOnly")
	}
}

func (f *fixture) signOut() {
	f.t.Helper()
	f.do("sign out", chromedp.Click(chromedp.CSS(`form.who button`)), chromedp.WaitVisible(chromedp.CSS("#token")))
}

// waitRollout polls the API until ok accepts one of the rollouts.
func (f *fixture) waitRollout(what string, limit time.Duration, ok func(api.Rollout) bool) api.Rollout {
	f.t.Helper()
	c := f.client("admin")
	deadline := time.Now().Add(limit)
	for {
		list, err := c.ListRollouts(f.ctx)
		if err == nil {
			for _, ro := range list.Rollouts {
				if ok(ro) {
					return ro
				}
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no rollout %s within %s (last error %v)", what, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitJS polls a JavaScript condition until it holds.
func (f *fixture) waitJS(what, cond string) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(f.browser, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			url := eval[string](f, "location.href")
			f.t.Fatalf("waiting for %s (%s) at %s: %v", what, cond, url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the current page at the given viewport, as the screen
// shows it (NAME-WxH.png) and full length (NAME-WxH-full.png).
func (f *fixture) screenshot(name string, width, height int64) {
	f.t.Helper()
	opts := []chromedp.EmulateViewportOption{}
	if width < 600 {
		opts = append(opts, chromedp.EmulateMobile)
	}
	f.do("viewport", chromedp.EmulateViewport(width, height, opts...), chromedp.Sleep(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(f.browser, 30*time.Second)
	defer cancel()
	for suffix, shot := range map[string]chromedp.Action[[]byte]{"": chromedp.CaptureScreenshot(), "-full": chromedp.FullScreenshot(100)} {
		png, err := chromedp.Run(ctx, shot)
		if err != nil {
			f.t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(f.shots, fmt.Sprintf("%s-%dx%d%s.png", name, width, height, suffix))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

func TestDashboardInBrowser(t *testing.T) {
	f := newFixture(t)
	f.signIn("admin")

	// The demo's first rollout (a change that hurts gen3 nodes) starts as
	// soon as the fleet is up: watch it change live.
	var first api.Rollout
	t.Run("rollout page updates live", func(t *testing.T) {
		f.t = t
		ro := f.waitRollout("running", 30*time.Second, func(r api.Rollout) bool { return r.State == engine.RolloutRunning })
		first = ro
		f.do("open rollout", chromedp.Navigate(f.base+"/ui/rollouts/"+ro.ID), chromedp.WaitVisible(chromedp.CSS("#live .cell")))
		cells := `Array.from(document.querySelectorAll("#live .cell")).map(c => c.dataset.node + "=" + c.dataset.phase).join(" ")`
		before := eval[string](f, cells)
		eval[bool](f, "window.__sameDocument = true")
		deadline := time.Now().Add(60 * time.Second)
		for {
			now := eval[string](f, cells)
			if now != before {
				if !eval[bool](f, "window.__sameDocument === true") {
					t.Fatal("the page reloaded to show the change")
				}
				if eval[string](f, "document.getElementById('live').dataset.updated || ''") == "" {
					t.Fatal("cells changed but the live region was not swapped by the event stream")
				}
				t.Logf("cells changed without a reload:\n  before %s\n  after  %s", before, now)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no node changed state on the page within 60s (rollout %s); cells: %s", ro.ID, now)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if s := f.text("#live-status"); !strings.Contains(s, "Live") {
			t.Errorf("live status %q", s)
		}
	})

	t.Run("halted rollout shows the failure and its reason", func(t *testing.T) {
		f.t = t
		ro := f.waitRollout("halted", 90*time.Second, func(r api.Rollout) bool {
			return r.ID == first.ID && r.State == engine.RolloutHalted
		})
		full, err := f.client("admin").GetRollout(f.ctx, ro.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		f.do("open halted rollout", chromedp.Navigate(f.base+"/ui/rollouts/"+ro.ID), chromedp.WaitVisible(chromedp.CSS("#rollout-reason")))
		if got := f.text("#rollout-state"); got != "halted" {
			t.Errorf("state shown %q, want halted", got)
		}
		if got := f.text("#rollout-reason"); !strings.Contains(got, ro.Reason) {
			t.Errorf("reason shown %q, want it to contain %q", got, ro.Reason)
		}
		table := f.text("#attention")
		failed := 0
		for _, n := range full.Nodes {
			if n.Reason != "" && (n.Phase == engine.PhaseRolledBack || n.Phase == engine.PhaseFailed) {
				failed++
				if !strings.Contains(table, n.ID) || !strings.Contains(table, n.Reason) {
					t.Errorf("failing node %s (%s: %s) not shown with its reason in:\n%s", n.ID, n.Phase, n.Reason, table)
				}
			}
		}
		// The node that failed is shown with why, numbers included (the
		// demo's gen3 nodes answer their health probe with 503).
		if !strings.Contains(table, "did not pass") || !strings.Contains(table, "503") {
			t.Errorf("the failing node's probe failure is not shown:\n%s", table)
		}
		if failed == 0 {
			t.Errorf("the halted rollout has no failed node with a reason: %+v", full.Nodes)
		}
		// A wave's failure reason carries the numbers behind it.
		waves := f.text(`[data-wave="canary"]`)
		if !strings.Contains(waves, "failed") {
			t.Errorf("canary wave row does not say it failed: %s", waves)
		}
		f.screenshot("rollout-halted", 1280, 800)
		f.screenshot("rollout-halted", 390, 844)
		f.do("reset viewport", chromedp.EmulateViewport(1280, 800))
	})

	t.Run("fleet page lists every node and filters by CEL", func(t *testing.T) {
		f.t = t
		f.do("open fleet", chromedp.Navigate(f.base+"/ui/fleet"), chromedp.WaitVisible(chromedp.CSS("tr[data-node]")))
		if n := eval[int](f, `document.querySelectorAll("tr[data-node]").length`); n != demoNodes {
			t.Errorf("fleet page lists %d nodes, want %d", n, demoNodes)
		}
		all, err := f.client("admin").AllNodes(f.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range all {
			if eval[int](f, fmt.Sprintf(`document.querySelectorAll('tr[data-node=%q]').length`, n.ID)) != 1 {
				t.Errorf("node %s not listed", n.ID)
			}
		}
		sel := `node.os.family == "windows"`
		want, err := f.client("admin").AllNodes(f.ctx, sel)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 || len(want) == demoNodes {
			t.Fatalf("selector %s matches %d of %d nodes: a useless filter for this test", sel, len(want), demoNodes)
		}
		f.do("filter", chromedp.SendKeys(chromedp.CSS("#selector"), sel), chromedp.Click(chromedp.CSS("#apply")))
		f.waitJS("the filtered page", `location.search.includes("selector=") && document.readyState === "complete" && !!document.getElementById("count-matching")`)
		if n := eval[int](f, `document.querySelectorAll("tr[data-node]").length`); n != len(want) {
			t.Errorf("filtered page lists %d nodes, want %d", n, len(want))
		}
		if got := f.text("#count-matching"); got != fmt.Sprint(len(want)) {
			t.Errorf("matching count %s, want %d", got, len(want))
		}
		f.do("bad filter", chromedp.Navigate(f.base+"/ui/fleet?selector="+urlQuery(`node.os.family ==`)))
		f.waitJS("the selector error", `!!document.getElementById("selector-error")`)
		if got := f.text("#selector-error"); !strings.Contains(got, "Selector error") {
			t.Errorf("selector error shown as %q", got)
		}
	})

	t.Run("approver approves, author cannot", func(t *testing.T) {
		f.t = t
		// Wait for the demo's second rollout to end: an approved rollout
		// then has the fleet to itself.
		f.waitRollout("of the good change finished", 120*time.Second, func(r api.Rollout) bool {
			return r.ID != first.ID && r.State.Terminal()
		})
		ro, err := f.client("alice").CreateRollout(f.ctx, "needs-approval.yaml", approvalPlan)
		if err != nil {
			t.Fatal(err)
		}
		if ro.State != engine.RolloutPendingApproval {
			t.Fatalf("new rollout is %s, want pending-approval", ro.State)
		}
		page := f.base + "/ui/rollouts/" + ro.ID
		f.signOut()
		f.signIn("alice")
		f.do("open as author", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#approval-note")))
		if n := eval[int](f, `document.querySelectorAll("#do-approve").length`); n != 0 {
			t.Error("the author sees an Approve button")
		}
		if note := f.text("#approval-note"); !strings.Contains(note, "alice") {
			t.Errorf("approval note %q does not say why alice cannot approve", note)
		}
		f.screenshot("rollout-pending-author", 1280, 800)
		f.do("reset viewport", chromedp.EmulateViewport(1280, 800))
		f.signOut()
		f.signIn("bob")
		f.do("approve as bob", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#do-approve")),
			chromedp.Click(chromedp.CSS("#do-approve")), chromedp.WaitVisible(chromedp.CSS("#flash-notice")))
		if got := f.text("#flash-notice"); !strings.Contains(got, "approved") {
			t.Errorf("after approving the page says %q", got)
		}
		after, err := f.client("admin").GetRollout(f.ctx, ro.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Approvals) != 1 || after.Approvals[0].By != "bob" || after.State == engine.RolloutPendingApproval {
			t.Errorf("after bob approved: state %s, approvals %+v", after.State, after.Approvals)
		}
		f.signOut()
		f.signIn("admin")
	})

	t.Run("screenshots", func(t *testing.T) {
		f.t = t
		// The demo's good change, whose wave gates the page charts (the
		// approved rollout has none).
		good := f.waitRollout("succeeded", 10*time.Second, func(r api.Rollout) bool {
			return r.State == engine.RolloutSucceeded && r.Name == "openssl-3-0-15"
		})
		f.do("open succeeded rollout", chromedp.Navigate(f.base+"/ui/rollouts/"+good.ID), chromedp.WaitVisible(chromedp.CSS("#gates")))
		if n := eval[int](f, `document.querySelectorAll("#gates svg.chart").length`); n == 0 {
			t.Error("the gate results show no canary-versus-baseline chart")
		}
		pages := []struct{ name, path, wait string }{
			{"rollout-succeeded", "/ui/rollouts/" + good.ID, "#gates"},
			{"fleet", "/ui/fleet?level=pkg:openssl", "tr[data-node]"},
			{"fleet-filtered", "/ui/fleet?group=zone&selector=" + urlQuery(`node.os.family == "debian" || node.os.family == "ubuntu"`), "tr[data-node]"},
			{"rollouts", "/ui/rollouts", "table.rollouts"},
			{"coverage", "/ui/coverage?package=openssl", "#coverage-summary"},
			{"audit", "/ui/audit", "#verify"},
		}
		for _, p := range pages {
			f.do("open "+p.name, chromedp.Navigate(f.base+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait)))
			f.screenshot(p.name, 1280, 800)
			f.screenshot(p.name, 390, 844)
			f.do("reset viewport", chromedp.EmulateViewport(1280, 800))
		}
		if s := f.text("#verify"); !strings.Contains(s, "verified") {
			t.Errorf("audit verification shows %q", s)
		}
		f.signOut()
		f.screenshot("login", 1280, 800)
		f.screenshot("login", 390, 844)
	})

	t.Run("fleet safety page shows budgets with their use and freezes", func(t *testing.T) {
		f.t = t
		f.signIn("admin")
		admin := f.client("admin")
		b, err := admin.CreateBudget(f.ctx, api.BudgetRequest{Name: "demo-zones", MaxUnavailable: "1", Per: "zone"})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		paris, err := time.LoadLocation("Europe/Paris")
		if err != nil {
			t.Fatal(err)
		}
		_, err = admin.CreateFreezes(f.ctx, []api.FreezeSpec{
			{Name: "quiet-hour", TimeZone: "UTC", Start: now.Add(-time.Hour).Format("2006-01-02T15:04"), End: now.Add(time.Hour).Format("2006-01-02T15:04"),
				Selector: `node.labels.zone == "nowhere"`, Reason: "browser test"},
			{Name: "christmas", TimeZone: "Europe/Paris", Start: "2026-12-25", End: "2026-12-26", Rule: "FREQ=YEARLY", Reason: "holidays"},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = admin.DeleteBudget(f.ctx, "demo-zones")
			_ = admin.DeleteFreeze(f.ctx, "quiet-hour")
			_ = admin.DeleteFreeze(f.ctx, "christmas")
		}()
		f.do("open fleet safety", chromedp.Navigate(f.base+"/ui/safety"), chromedp.WaitVisible(chromedp.CSS(`article[data-budget="demo-zones"]`)))
		if got := eval[int](f, `document.querySelectorAll('article[data-budget="demo-zones"] li[data-domain]').length`); got != len(b.Domains) || got < 2 {
			t.Errorf("budget shows %d domains, want the %d zones of the demo fleet", got, len(b.Domains))
		}
		if cur := eval[string](f, `document.querySelector('nav a[aria-current="page"]').textContent`); cur != "Safety" {
			t.Errorf("current nav entry %q", cur)
		}
		if st := f.text(`tr[data-freeze="quiet-hour"] td[data-label="State"]`); !strings.Contains(st, "in force") || !strings.Contains(st, "UTC") {
			t.Errorf("the freeze in force shows %q", st)
		}
		if st := f.text(`tr[data-freeze="christmas"] td[data-label="State"]`); !strings.Contains(st, "12-25 00:00 Europe/Paris") &&
			!strings.Contains(st, "12-26 00:00 Europe/Paris") { // next, or in force on Christmas Day
			t.Errorf("the yearly freeze shows %q", st)
		}
		if a := f.text("#freeze-alert"); !strings.Contains(a, "fleet freeze") || !strings.Contains(a, "in force") {
			t.Errorf("freeze alert %q", a)
		}
		f.screenshot("safety", 1280, 800)
		f.screenshot("safety", 390, 844)
		f.do("reset viewport", chromedp.EmulateViewport(1280, 800))

		// A rollout of zone a held by a fleet freeze: its page says why
		// its nodes wait and shows the fleet budget among its limits.
		if _, err := admin.CreateFreezes(f.ctx, []api.FreezeSpec{{Name: "zone-a-hold", TimeZone: "Europe/Paris",
			Start: now.In(paris).Add(-time.Hour).Format("2006-01-02T15:04"), End: now.In(paris).Add(time.Hour).Format("2006-01-02T15:04"),
			Selector: `node.labels.zone == "a"`, Reason: "rack move"}}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = admin.DeleteFreeze(f.ctx, "zone-a-hold") }()
		ro, err := f.client("alice").CreateRollout(f.ctx, "held.yaml", `apiVersion: drover.dev/v1
name: held-by-freeze
target:
  selector: node.labels.zone == "a"
change:
  actions:
    - package:
        packages: [{name: telemetry-agent, version: 7.3.0}]
      noRollbackOn: [macos]
waves:
  - name: all
`)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_, _ = admin.Command(f.ctx, ro.ID, "abort", 0, api.CommandRequest{Reason: "browser test done"})
		}()
		f.do("open held rollout", chromedp.Navigate(f.base+"/ui/rollouts/"+ro.ID), chromedp.WaitVisible(chromedp.CSS("#h-waits")))
		if w := f.text("main"); !strings.Contains(w, "fleet freeze zone-a-hold until") || !strings.Contains(w, "Europe/Paris (rack move)") {
			t.Errorf("the held rollout's page does not name the freeze:\n%s", w)
		}
		if caps := f.text("#caps"); !strings.Contains(caps, "fleet budget demo-zones zone=a") {
			t.Errorf("the rollout's limits do not show the fleet budget: %q", caps)
		}
		f.screenshot("rollout-fleet-freeze", 1280, 800)
	})
}

func urlQuery(s string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", "\"", "%22", "=", "%3D", "&", "%26", "|", "%7C", "+", "%2B", "#", "%23")
	return r.Replace(s)
}

// approvalPlan needs one approval before it starts.
const approvalPlan = `apiVersion: drover.dev/v1
name: needs-approval
description: an OpenSSL update that needs an approver
target:
  selector: node.os.family == "debian"
change:
  actions:
    - name: openssl
      package:
        packages:
          - name: openssl
            version: 3.0.16
  reboot: never
approvals:
  start: 1
waves:
  - name: all
limits:
  maxInFlight: 2
`
