package cli

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets testscript run `drover` in-process: the test binary
// re-executes itself as drover, calling Main like cmd/drover does (an
// interrupt ends its context, so `kill -INT` stops `demo --keep` as
// Ctrl-C does).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"drover": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := Main(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs testdata/script/*.txtar. Besides testscript's builtins,
// scripts have `status N CMD ARGS...`: run CMD and require exit code N
// (its stdout and stderr are kept for the next stdout/stderr checks), and
// `sleep DURATION`. $EXAMPLES is the repository's examples/, as the README
// names them.
func TestScripts(t *testing.T) {
	examples, err := filepath.Abs(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("EXAMPLES", examples)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":     cmdStatus,
			"freeport":   cmdFreePort,
			"waitnodes":  cmdWaitNodes,
			"stdoutvar":  cmdStdoutVar,
			"waitstate":  cmdWaitState,
			"waitmatch":  cmdWaitMatch,
			"waitstdout": cmdWaitStdout,
			"waitended":  cmdWaitEnded,
			"sleep":      cmdSleep,
		},
	})
}

func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status CODE CMD [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status: bad code %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("status: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// cmdFreePort sets the environment variable NAME to a free loopback
// address, for a server started in the background.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport NAME")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ts.Fatalf("freeport: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ts.Setenv(args[0], addr)
}

// cmdWaitNodes waits (up to 30s) until N nodes are registered and online
// on $DROVER_SERVER, authenticating with $DROVER_TOKEN.
func cmdWaitNodes(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitnodes N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("waitnodes: %v", err)
	}
	c := &api.Client{Base: ts.Getenv("DROVER_SERVER"), Token: ts.Getenv("DROVER_TOKEN")}
	deadline := time.Now().Add(30 * time.Second)
	for {
		nodes, err := c.AllNodes(context.Background(), "")
		online := 0
		for _, nd := range nodes {
			if nd.Online {
				online++
			}
		}
		if err == nil && online >= n {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitnodes: %d of %d online after 30s (last error: %v)", online, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cmdSleep waits DURATION, e.g. for a command in the background to say
// something before the script changes what it says.
func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		ts.Fatalf("sleep: %v", err)
	}
	time.Sleep(d)
}

// cmdStdoutVar sets NAME to the first group of REGEX in the last stdout.
func cmdStdoutVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: stdoutvar NAME REGEX")
	}
	m := regexp.MustCompile(args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("stdoutvar: %q does not match stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}

// cmdWaitState waits (up to 30s) until rollout ID is in STATE.
func cmdWaitState(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitstate ROLLOUT STATE")
	}
	c := &api.Client{Base: ts.Getenv("DROVER_SERVER"), Token: ts.Getenv("DROVER_TOKEN")}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ro, err := c.GetRollout(context.Background(), args[0], false)
		if err == nil && string(ro.State) == args[1] {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitstate: rollout %s is %s after 30s, want %s (last error: %v)", args[0], ro.State, args[1], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cmdWaitMatch waits (up to 2 min) until FILE, written by a command in
// the background, matches REGEX, and sets each NAME to the next group.
func cmdWaitMatch(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitmatch FILE REGEX [NAME...]")
	}
	re := regexp.MustCompile(args[1])
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		if m := re.FindSubmatch(b); m != nil {
			for i, name := range args[2:] {
				if i+1 >= len(m) {
					ts.Fatalf("waitmatch: %q has no group %d for %s", args[1], i+1, name)
				}
				ts.Setenv(name, string(m[i+1]))
			}
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitmatch: %s does not match %q after 2 min; it holds:\n%s", args[0], args[1], b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cmdWaitStdout runs CMD ARGS... again (up to 2 min) until it succeeds and
// its standard output matches REGEX: for what the server reaches on its
// own time, such as every node having answered a pre-flight.
func cmdWaitStdout(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitstdout REGEX CMD [ARGS...]")
	}
	re := regexp.MustCompile("(?m)" + args[0])
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := ts.Exec(args[1], args[2:]...)
		out := ts.ReadFile("stdout")
		if err == nil && re.MatchString(out) {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitstdout: %s does not print %q after 2 min (last error: %v); it printed:\n%s", args[1], args[0], err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cmdWaitEnded waits (up to 2 min) until $DROVER_SERVER has N rollouts
// and every one has ended.
func cmdWaitEnded(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitended N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("waitended: %v", err)
	}
	c := &api.Client{Base: ts.Getenv("DROVER_SERVER"), Token: ts.Getenv("DROVER_TOKEN")}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		list, err := c.ListRollouts(context.Background())
		ended := 0
		for _, ro := range list.Rollouts {
			if ro.State.Terminal() {
				ended++
			}
		}
		if err == nil && len(list.Rollouts) == n && ended == n {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("waitended: %d of %d rollouts ended after 2 min (last error: %v)", ended, len(list.Rollouts), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
