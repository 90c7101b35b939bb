package fleettest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// Suites are the Debian releases of the fleet; each is an image
// drover-fleet:SUITE built by scripts/fleet-rootfs.sh.
var suites = []string{"bullseye", "bookworm", "trixie"}

// Server timing: a 10 s heartbeat (the server hands agents its poll wait
// as their heartbeat) and a 20 s lease, so a stopped container's node
// becomes unknown within about 20 s.
const (
	pollWait = 10 * time.Second
	lease    = 20 * time.Second
)

// node is one container running one agent.
type node struct {
	name      string // node ID and container host name
	suite     string
	zone      string
	role      string // fleet (the rollouts' target) or bad (bad-input tests)
	container string
	stateDir  string // host directory bind-mounted at /var/lib/drover
	tmpfs     string // extra docker run --tmpfs argument, if any
	// caps are extra capabilities (docker run --cap-add): NET_ADMIN for
	// a node whose MTU the test changes.
	caps []string
	// packaged: the node runs drover-agent installed from its .deb, as
	// its systemd unit starts it (package_test.go), not /opt/drover/drover.
	packaged bool
	// image is the node's image when not drover-fleet:SUITE: bootImage
	// for a node that models its boot loader and kernel (kernel_test.go).
	image string
	// testsvc is the version of the test package its first boot
	// installs: "" is 1.0, "none" installs none (advisory_test.go).
	testsvc string
}

// fleet is everything the test started.
type fleet struct {
	t       *testing.T
	id      string // unique per run: names of containers and the network
	dir     string // binaries, repository, server data, state dirs
	bin     string // directory bind-mounted at /opt/drover
	network string
	gateway string
	repoURL string
	server  string // base URL, https://
	caHash  string // the CA pin agents enrol with (--ca-hash)
	caPEM   []byte // the server's CA, which the operator's client trusts
	api     *api.Client
	nodes   []*node
	byName  map[string]*node

	mu      sync.Mutex
	srvLog  bytes.Buffer
	repoLog []string
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// docker runs the docker CLI and returns its combined output.
func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sh runs a shell command inside n's container and returns its output.
func (f *fleet) sh(n *node, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return docker(ctx, "exec", n.container, "sh", "-c", script)
}

func (f *fleet) mustSh(t testing.TB, n *node, script string) string {
	t.Helper()
	out, err := f.sh(n, script)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	return out
}

// installed returns "STATUS VERSION" of the test package on n, as dpkg
// sees it ("installed 1.1").
func (f *fleet) installed(t testing.TB, n *node) string {
	t.Helper()
	out := f.mustSh(t, n, `dpkg-query -W -f='${db:Status-Status} ${Version}' `+testPackage+` 2>&1 || true`)
	return strings.TrimSpace(out)
}

// checkPreconditions fails the test with what to do when Docker, the
// images or the packaging tools are missing.
func checkPreconditions(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("the Debian fleet test needs the Docker CLI and a running engine: docker not found")
	}
	if _, err := docker(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Fatalf("the Debian fleet test needs a running Docker engine: %v", err)
	}
	var missing []string
	for _, s := range suites {
		if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", "drover-fleet:"+s); err != nil {
			missing = append(missing, "drover-fleet:"+s)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the Debian fleet test needs the images %s: build them with scripts/fleet-rootfs.sh (make deps runs it)", strings.Join(missing, ", "))
	}
	for _, tool := range []string{"dpkg-deb", "dpkg-scanpackages", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the Debian fleet test needs %s on the host (scripts/deps.sh installs dpkg-dev): %v", tool, err)
		}
	}
}

// moduleRoot is the repository root (this package is internal/fleettest).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	return root
}

// goBuild builds a binary without cgo: static, but for the test
// service, whose DT_NEEDED entry the Go linker writes itself
// (testdata/testsvc/link_linux.go).
func goBuild(t *testing.T, dir, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// entrypoint is each container's command, and every start of a container
// is a boot of its node as the agent sees it:
//
//   - a new boot ID: a random UUID from the kernel
//     (/proc/sys/kernel/random/uuid) is bind-mounted read-only over
//     /proc/sys/kernel/random/boot_id, which the agent reads (as
//     systemd-nspawn gives its containers their own boot ID). This needs
//     CAP_SYS_ADMIN in the container (docker run --cap-add SYS_ADMIN;
//     without it mount(2) is refused; --privileged is more than it needs)
//     and a fresh mount namespace per start, which Docker makes;
//   - an empty /run (docker run --tmpfs /run), so what a boot clears,
//     such as /run/reboot-required, is gone.
//
// It then points apt at the test's repository (and nothing else),
// installs drover-testsvc 1.0 (or the node's testsvc version, or none) on the first boot (downloading outside
// /var/cache/apt/archives, which the full-disk node mounts as a tiny
// tmpfs), starts the service when it is installed (the containers have no
// systemd: this is its init script) and runs the real agent. The agent
// enrols on its first boot with its single-use enrolment token and the CA
// pin, and keeps its key and certificate in its state dir: later boots
// use them and never look at the spent token again.
const entrypoint = `#!/bin/sh
set -eu
boot_id=/run/drover-fleettest/boot_id
mkdir -p /run/lock /run/drover-fleettest
cat /proc/sys/kernel/random/uuid >$boot_id
chmod 0444 $boot_id
mount --bind $boot_id /proc/sys/kernel/random/boot_id
mount -o remount,bind,ro /proc/sys/kernel/random/boot_id
echo "boot $(cat /proc/sys/kernel/random/boot_id)"
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
echo "deb [trusted=yes] $DROVER_REPO ./" >/etc/apt/sources.list.d/drover-fleettest.list
kernel=
if command -v grub-reboot >/dev/null; then
	kernel="$FLEET_BASE_KERNEL=1.0"
fi
testsvc=drover-testsvc=${DROVER_TESTSVC:-1.0}
if [ "$testsvc" = drover-testsvc=none ]; then
	testsvc=
fi
if [ ! -e /var/lib/drover-fleettest-ready ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	mkdir -p /var/tmp/apt-first/partial
	apt-get install -y -qq -o Dir::Cache::Archives=/var/tmp/apt-first/ $testsvc $kernel >/dev/null
	rm -rf /var/tmp/apt-first /var/run/reboot-required /var/run/reboot-required.pkgs
	touch /var/lib/drover-fleettest-ready
fi
if [ -n "$kernel" ]; then
	/opt/drover/grub-boot
fi
if [ -x /usr/bin/drover-testsvc ]; then
	start-stop-daemon --start --quiet --oknodo --background --make-pidfile \
		--pidfile /run/drover-testsvc.pid --exec /usr/bin/drover-testsvc -- serve || true
fi
exec /opt/drover/drover agent --server "$DROVER_SERVER" --state-dir /var/lib/drover --node-id "$DROVER_NODE" \
	--enroll-token "$DROVER_ENROLL_TOKEN" --ca-hash "$DROVER_CA_HASH" --allow-command-probes
`

// systemctl stands in for systemd in the containers, which have none. The
// agent's real rebooter runs `systemctl reboot` (driver.Rebooter on
// Linux); here that ends the container as a reboot ends a machine: it
// logs the request (to /var/log, which survives the reboot) and sends
// SIGTERM to the container's init (docker run --init), which passes it to
// the agent and exits when the agent has; every other process of the
// container dies with it. Docker's restart policy (--restart always) then
// starts the container again: the next boot. Any other systemctl command
// fails as the real one does without systemd.
const systemctl = `#!/bin/sh
if [ "$*" = reboot ]; then
	echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) reboot requested; ending boot $(cat /proc/sys/kernel/random/boot_id)" >>/var/log/drover-fleettest-reboots.log
	kill -TERM 1
	exit 0
fi
echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
exit 1
`

// setup builds the binaries and the repository, creates the network,
// starts the server and the containers, and waits for every agent to
// register. Everything is removed in t.Cleanup.
func setup(t *testing.T, nodes []*node) *fleet {
	t.Helper()
	return setupUnpublished(t, nodes)
}

// setupUnpublished is setup with the test package's versions unpublished
// left out of the repository's index (their .debs kept aside) until
// fleet.publish adds them: nodes' first apt-get update does not see them.
func setupUnpublished(t *testing.T, nodes []*node, unpublished ...string) *fleet {
	t.Helper()
	checkPreconditions(t)
	f := &fleet{t: t, id: randHex(4), dir: t.TempDir(), byName: map[string]*node{}}
	root := moduleRoot(t)
	f.bin = filepath.Join(f.dir, "opt")
	repo := filepath.Join(f.dir, "repo")
	for _, d := range []string{f.bin, repo} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	goBuild(t, root, filepath.Join(f.bin, "drover"), "./cmd/drover")
	svc := filepath.Join(f.bin, "drover-testsvc")
	goBuild(t, filepath.Join(root, "internal", "fleettest"), svc, "./testdata/testsvc")
	goBuild(t, filepath.Join(root, "internal", "fleettest"), filepath.Join(f.bin, "setmtu"), "./testdata/setmtu")
	for name, text := range map[string]string{"entrypoint.sh": strings.ReplaceAll(entrypoint, "$FLEET_BASE_KERNEL", baseKernelPackage), "systemctl": systemctl,
		"grub-boot": grubBoot, "update-grub": updateGRUB, "uname": uname} {
		if err := os.WriteFile(filepath.Join(f.bin, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if slices.ContainsFunc(nodes, func(n *node) bool { return n.packaged }) {
		buildAgentPackages(t, root, f.bin, repo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := buildRepo(ctx, repo, svc); err != nil {
		t.Fatalf("build the apt repository: %v", err)
	}
	if len(unpublished) > 0 {
		aside := filepath.Join(f.dir, "unpublished")
		if err := os.MkdirAll(aside, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range unpublished {
			deb := debName(v)
			if err := os.Rename(filepath.Join(repo, deb), filepath.Join(aside, deb)); err != nil {
				t.Fatalf("hold %s back: %v", v, err)
			}
		}
		if err := writeIndex(ctx, repo); err != nil {
			t.Fatalf("index the apt repository: %v", err)
		}
	}
	t.Logf("built drover, drover-testsvc and the apt repository (%d versions) in %s", len(repoVersions), time.Since(start).Round(time.Millisecond))

	// The network, and everything on it, goes away at the end.
	sweepStale(t)
	f.network = "drover-fleettest-" + f.id
	mustDocker(t, "network", "create", "--label", "drover-fleettest="+f.id, "--label", pidLabel(), f.network)
	t.Cleanup(f.cleanup)
	f.gateway = strings.TrimSpace(mustDocker(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", f.network))
	if f.gateway == "" {
		t.Fatalf("network %s has no gateway address", f.network)
	}
	f.repoURL = serveDir(t, f.gateway+":0", repo, func(s string) {
		f.mu.Lock()
		f.repoLog = append(f.repoLog, s)
		f.mu.Unlock()
	})
	f.startServer(t)

	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		n.container = "drover-fleettest-" + f.id + "-" + n.name
		n.stateDir = filepath.Join(f.dir, "state", n.name)
		if err := os.MkdirAll(n.stateDir, 0o700); err != nil {
			t.Fatal(err)
		}
		f.nodes = append(f.nodes, n)
		f.byName[n.name] = n
		// One single-use enrolment token per node, as an admin makes them
		// (drover token create): its labels, not the agent's claims, place
		// the node in its zone and role.
		tok, err := f.api.CreateToken(ctx, api.TokenRequest{Kind: api.TokenEnroll, TTL: "15m",
			Labels: map[string]string{"zone": n.zone, "role": n.role}})
		if err != nil {
			t.Fatalf("enrolment token for %s: %v", n.name, err)
		}
		if tok.CAHash != f.caHash {
			t.Fatalf("enrolment token for %s pins CA %s, the server printed %s", n.name, tok.CAHash, f.caHash)
		}
		args := []string{"run", "-d", "--init", "--restart", "always", "--cap-add", "SYS_ADMIN", "--tmpfs", "/run",
			"--name", n.container, "--hostname", n.name, "--network", f.network,
			"--label", "drover-fleettest=" + f.id, "--label", pidLabel(),
			"-v", f.bin + ":/opt/drover:ro", "-v", n.stateDir + ":/var/lib/drover",
			"-v", filepath.Join(f.bin, "systemctl") + ":/usr/local/sbin/systemctl:ro",
			"-e", "DROVER_SERVER=" + f.server, "-e", "DROVER_ENROLL_TOKEN=" + tok.Token, "-e", "DROVER_CA_HASH=" + tok.CAHash,
			"-e", "DROVER_REPO=" + f.repoURL, "-e", "DROVER_LOG=info", "-e", "DROVER_NODE=" + n.name}
		if n.tmpfs != "" {
			args = append(args, "--tmpfs", n.tmpfs)
		}
		if n.testsvc != "" {
			args = append(args, "-e", "DROVER_TESTSVC="+n.testsvc)
		}
		for _, c := range n.caps {
			args = append(args, "--cap-add", c)
		}
		image := "drover-fleet:" + n.suite
		if n.image != "" {
			image = n.image
			args = append(args, "-v", filepath.Join(f.bin, "uname")+":/usr/local/bin/uname:ro")
		}
		if n.packaged {
			args = append(args, image, "/opt/drover/entrypoint-packaged.sh")
		} else {
			args = append(args, image, "/opt/drover/entrypoint.sh")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := docker(ctx, args...); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f.waitRegistered(t, len(nodes), 3*time.Minute)
	f.checkEnrolled(t)
	t.Logf("fleet of %d containers enrolled and registered %s after start", len(nodes), time.Since(start).Round(time.Millisecond))
	return f
}

// checkEnrolled checks that every agent enrolled: its key and certificate
// and the server's CA are in its state dir (0600), the server logged its
// enrolment, and its zone and role are its token's.
func (f *fleet) checkEnrolled(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	srvLog := f.srvLog.String()
	f.mu.Unlock()
	for _, n := range f.nodes {
		for _, file := range []string{"identity.pem", "ca.pem"} {
			p := filepath.Join(n.stateDir, "tls", file)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s did not enrol: %v", n.name, err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s: %s has mode %s, want 0600", n.name, file, st.Mode().Perm())
			}
		}
		if ca, err := os.ReadFile(filepath.Join(n.stateDir, "tls", "ca.pem")); err != nil || !bytes.Equal(ca, f.caPEM) {
			t.Errorf("%s: the CA it keeps is not the server's (%v)", n.name, err)
		}
		if !strings.Contains(srvLog, `msg="node enrolled" node=`+n.name+" ") {
			t.Errorf("%s: the server's log shows no enrolment", n.name)
		}
		nd, err := f.api.GetNode(context.Background(), n.name)
		if err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
		if nd.Labels["zone"] != n.zone || nd.Labels["role"] != n.role {
			t.Errorf("%s: labels %v, want its enrolment token's zone=%s role=%s", n.name, nd.Labels, n.zone, n.role)
		}
	}
}

// pidLabel labels what this test process creates, so that a later run can
// tell leftovers of a killed run (its process gone: t.Cleanup does not run
// when go test's -timeout kills the binary) from those of a run in
// progress on the same Docker engine.
func pidLabel() string { return "drover-fleettest.pid=" + strconv.Itoa(os.Getpid()) }

// sweepStale removes the containers and networks of fleet test runs whose
// process is gone.
func sweepStale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, kind := range []string{"container", "network"} {
		list := []string{"ps", "-a"}
		if kind == "network" {
			list = []string{"network", "ls"}
		}
		out, err := docker(ctx, append(list, "--filter", "label=drover-fleettest", "--format", `{{.ID}} {{.Label "drover-fleettest.pid"}}`)...)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			id, pid, _ := strings.Cut(line, " ")
			if id == "" || pid == "" {
				continue
			}
			if _, err := os.Stat("/proc/" + pid); err == nil {
				continue // its run is still going
			}
			args := []string{kind, "rm", id}
			if kind == "container" {
				args = []string{"rm", "-f", "-v", id}
			}
			if _, err := docker(ctx, args...); err == nil {
				t.Logf("removed %s %s left by a killed fleet test run (pid %s)", kind, id, pid)
			}
		}
	}
}

// startServer runs `drover server` as a subprocess on SQLite, listening
// on the network's gateway address, as in production: TLS with its
// built-in CA (created in its data dir at this first start) and no shared
// agent token, so agents are accepted only with a client certificate the
// CA issued at their enrolment. The operator's client trusts the CA file
// the server names (DROVER_CA_CERT for the CLI).
func (f *fleet) startServer(t *testing.T) {
	t.Helper()
	opToken := randHex(16)
	cfg := fmt.Sprintf(`listen: %q
dataDir: %q
serverId: fleettest
lease: %s
pollWait: %s
tick: 250ms
tls: true
logLevel: info
users:
  - name: operator
    role: admin
    token: %q
`, f.gateway+":0", filepath.Join(f.dir, "server"), lease, pollWait, opToken)
	path := filepath.Join(f.dir, "server.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(f.bin, "drover"), "server", "--config", path)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	// The server dies with the test process, even one killed by -timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &lockedWriter{mu: &f.mu, w: &f.srvLog}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start drover server: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	// It prints its URL, then its CA file and the CA's pin.
	type started struct{ url, caFile, caHash string }
	ready := make(chan started, 1)
	go func() {
		listening := regexp.MustCompile(`listening on (https://\S+)`)
		caLine := regexp.MustCompile(`^CA (\S+): agents enrol with --ca-hash (sha256:\S+);`)
		var s started
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				s.url = m[1]
			}
			if m := caLine.FindStringSubmatch(sc.Text()); m != nil && s.url != "" {
				s.caFile, s.caHash = m[1], m[2]
				select {
				case ready <- s:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var s started
	select {
	case s = <-ready:
	case <-time.After(30 * time.Second):
		f.mu.Lock()
		defer f.mu.Unlock()
		t.Fatalf("drover server did not start with TLS within 30s; its log:\n%s", f.srvLog.String())
	}
	f.server, f.caHash = s.url, s.caHash
	if f.caPEM, err = os.ReadFile(s.caFile); err != nil {
		t.Fatalf("the server's CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.caPEM) {
		t.Fatalf("the server's CA %s holds no certificate", s.caFile)
	}
	f.api = &api.Client{Base: f.server, Token: opToken, HTTP: &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}}}}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitRegistered waits until n agents are registered and online.
func (f *fleet) waitRegistered(t *testing.T, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		nodes, err := f.api.AllNodes(context.Background(), "")
		online := 0
		if err == nil {
			for _, nd := range nodes {
				if nd.Online {
					online++
				}
			}
		}
		if online >= n {
			return
		}
		if time.Now().After(deadline) {
			f.dumpLogs()
			t.Fatalf("%d of %d agents registered within %s (last error: %v)", online, n, within, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// dumpLogs logs the server's and every container's output (on failure).
func (f *fleet) dumpLogs() {
	f.mu.Lock()
	f.t.Logf("== drover server log:\n%s", tail(f.srvLog.String(), 200))
	f.mu.Unlock()
	for _, n := range f.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, _ := docker(ctx, "logs", "--tail", "80", n.container)
		cancel()
		f.t.Logf("== %s (%s, zone %s) agent log:\n%s", n.name, n.suite, n.zone, out)
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// cleanup removes the containers and the network, even after a failure
// (the server and the repository stop through their own t.Cleanup).
func (f *fleet) cleanup() {
	if f.t.Failed() {
		f.dumpLogs()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _ := docker(ctx, "ps", "-aq", "--filter", "label=drover-fleettest="+f.id)
	if ids := strings.Fields(out); len(ids) > 0 {
		if _, err := docker(ctx, append([]string{"rm", "-f", "-v"}, ids...)...); err != nil {
			f.t.Logf("cleanup: %v", err)
		}
	}
	if _, err := docker(ctx, "network", "rm", f.network); err != nil {
		f.t.Logf("cleanup: %v", err)
	}
}

// journal reads the records of n's agent journal (bind-mounted state dir).
func (f *fleet) journal(n *node) []map[string]any {
	b, err := os.ReadFile(filepath.Join(n.stateDir, "journal.jsonl"))
	if err != nil {
		return nil
	}
	var recs []map[string]any
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		var r map[string]any
		if json.Unmarshal(line, &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs
}
