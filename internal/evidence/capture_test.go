package evidence

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeRoot lays out the files the Linux collectors read, from the
// outputs captured on the bookworm container.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	diskstats := string(testdata(t, "diskstats.txt"))
	first, _, _ := strings.Cut(diskstats, "---\n")
	files := map[string]string{
		"proc/sys/kernel/osrelease":      "6.1.0-28-amd64\n",
		"proc/sys/kernel/random/boot_id": "ca118519-25d9-4680-ab99-23d078fac0ee\n",
		"proc/uptime":                    "1234.56 100.0\n",
		"proc/net/route":                 string(testdata(t, "route.txt")),
		"proc/self/mountinfo":            string(testdata(t, "mountinfo.txt")),
		"proc/diskstats":                 first,
		"proc/net/tcp":                   string(testdata(t, "tcp.txt")),
		"etc/resolv.conf":                "nameserver 10.255.255.53\n",
		"sys/class/net/eth0/mtu":         "1400\n",
		"sys/class/net/eth0/operstate":   "up\n",
		"sys/class/net/lo/mtu":           "65536\n",
	}
	for p, s := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// script is a command runner answering from a table (a stand-in for the
// node's tools: the real ones are exercised by the fleet test); a
// command not in it is "not found", as on a node without the tool.
func script(outs map[string]string) Runner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		key := strings.Join(append([]string{name}, args...), " ")
		for k, v := range outs {
			if strings.HasPrefix(key, k) {
				if v == "BLOCK" {
					<-ctx.Done()
					return nil, ctx.Err()
				}
				return []byte(v), nil
			}
		}
		return nil, fmt.Errorf("%s: %w", name, exec.ErrNotFound)
	}
}

func testHost(t *testing.T, outs map[string]string) Host {
	return Host{GOOS: "linux", Root: fakeRoot(t), Run: script(outs),
		LookupHost: func(ctx context.Context, name string) ([]string, error) {
			if name == "db.internal" {
				return nil, errors.New("no such host")
			}
			return []string{"10.0.0.7"}, nil
		},
		Handshake: func(ctx context.Context, addr string) (TLSResult, error) {
			return TLSResult{Version: "TLS 1.3", Verified: false, VerifyError: "x509: certificate has expired"}, nil
		},
		Sleep: func(context.Context, time.Duration) error { return nil },
	}
}

func TestCaptureLinux(t *testing.T) {
	h := testHost(t, map[string]string{
		"systemctl --failed":          "nginx.service loaded failed failed nginx\n",
		"systemctl show -p LoadState": "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\n",
		"systemctl show -p ExecStart": "{ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx ; }\n",
		"journalctl -u nginx.service": "Dec 07 nginx[1]: error while loading shared libraries: libpcre2-8.so.0\n",
		"iptables -V":                 "iptables v1.8.9 (nf_tables)\n",
		"journalctl -k":               "Dec 07 kernel: EXT4-fs error (device vda1)\n",
	})
	// nginx's binary (the unit's ExecStart) needs libpcre2-8.so.0, which
	// the root lacks; /usr/bin/svc (a binary the probes name) links.
	linkedELF(t, h.Root, "usr/sbin/nginx", "libpcre2-8.so.0")
	linkedELF(t, h.Root, "usr/bin/svc", "libsvc.so.1")
	linkedELF(t, h.Root, "usr/lib/x86_64-linux-gnu/libsvc.so.1", "")
	b := Capture(t.Context(), h, Spec{Node: "n1", Rollout: "r1", Step: "s1", Units: []string{"nginx.service"}, Binaries: []string{"/usr/bin/svc"},
		Names: []string{"api.example", "db.internal"}, Endpoints: []string{"api.example:443"},
		Packages: []PackageChange{{Name: "libpcre2-8-0", Before: "10.42-1", After: "10.42-4"}}})
	if b.Reason != ReasonFailure || b.Node != "n1" || b.Truncated {
		t.Fatalf("bundle header: %+v", b)
	}
	var k Kernel
	if !b.Decode("kernel", &k) || k.BootID != "ca118519-25d9-4680-ab99-23d078fac0ee" || k.Release != "6.1.0-28-amd64" {
		t.Errorf("kernel = %+v", k)
	}
	var u Units
	if !b.Decode("failed-units", &u) || len(u.Failed) != 1 || u.Named[0].Result != "exit-code" {
		t.Errorf("units = %+v", u)
	}
	var l []Linkage
	if !b.Decode("linkage", &l) || len(l) != 2 || l[0].Unit != "nginx.service" || l[0].Binary != "/usr/sbin/nginx" || !slices.Equal(l[0].Missing, []string{"libpcre2-8.so.0"}) ||
		l[1].Unit != "" || l[1].Binary != "/usr/bin/svc" || l[1].Missing != nil || l[1].Libraries["libsvc.so.1"] != "/lib/x86_64-linux-gnu/libsvc.so.1" && l[1].Libraries["libsvc.so.1"] != "/usr/lib/x86_64-linux-gnu/libsvc.so.1" {
		t.Errorf("linkage = %+v", l)
	}
	var r Resolver
	if !b.Decode("resolver", &r) || r.Conf.Nameservers[0] != "10.255.255.53" || r.Answers[1].Error == "" || r.Answers[0].Addrs[0] != "10.0.0.7" {
		t.Errorf("resolver = %+v", r)
	}
	var ifs []Interface
	if !b.Decode("interfaces", &ifs) || len(ifs) != 2 || ifs[0].Name != "eth0" || ifs[0].MTU != 1400 {
		t.Errorf("interfaces = %+v", ifs)
	}
	var fw Firewall
	if !b.Decode("firewall", &fw) || fw.Backend != "nf_tables" {
		t.Errorf("firewall = %+v", fw)
	}
	var conns map[string]int
	if !b.Decode("connections", &conns) || conns["TIME_WAIT"] != 4 {
		t.Errorf("connections = %v", conns)
	}
	var io []DiskIO
	if !b.Decode("io", &io) || len(io) != 1 {
		t.Errorf("io = %+v", io)
	}
	var tl []TLSResult
	if !b.Decode("tls", &tl) || tl[0].Endpoint != "api.example:443" || tl[0].VerifyError == "" {
		t.Errorf("tls = %+v", tl)
	}
	var kerr string
	if !b.Decode("kernel-errors", &kerr) || !strings.Contains(kerr, "EXT4-fs error") {
		t.Errorf("kernel-errors = %q", kerr)
	}
	// Absent tools: a section with an error, not a failed capture.
	if s := b.Section("time"); s == nil || s.Data != nil || !strings.Contains(s.Error, "not available") {
		t.Errorf("time without chronyc or timedatectl: %+v", s)
	}
	if _, err := json.Marshal(b); err != nil {
		t.Fatal(err)
	}
}

func TestCaptureBounds(t *testing.T) {
	huge := strings.Repeat("Dec 07 app[1]: a log line that repeats to fill the journal\n", 5000) + "the last line\n"
	h := testHost(t, map[string]string{"journalctl -u": huge, "systemctl --failed": "", "iptables": "BLOCK"})
	start := time.Now()
	b := Capture(t.Context(), h, Spec{Units: []string{"app.service"}, JournalLines: 100000,
		MaxSection: 4 << 10, MaxTotal: 16 << 10, CollectorTimeout: 200 * time.Millisecond, Deadline: time.Second})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("capture took %s with a 1s deadline", took)
	}
	var logs []UnitLog
	if !b.Decode("unit-logs", &logs) || !strings.HasSuffix(logs[0].Lines, "the last line") || len(logs[0].Lines) > 4<<10 {
		t.Fatalf("unit logs not cut to their tail: %d bytes", len(logs[0].Lines))
	}
	if s := b.Section("firewall"); !strings.Contains(s.Error, "timed out") {
		t.Fatalf("blocked collector: %+v", s)
	}
	total := 0
	for _, s := range b.Sections {
		if len(s.Data) > 4<<10 {
			t.Errorf("section %s: %d bytes over the 4 KiB bound", s.Name, len(s.Data))
		}
		total += len(s.Data)
	}
	if total > 16<<10 {
		t.Fatalf("sections total %d bytes over the 16 KiB bound", total)
	}
	// A text section over the bound keeps its tail and is marked.
	raw, cut := boundData(huge, 1024)
	var s string
	if json.Unmarshal(raw, &s) != nil || !cut || len(raw) > 1024 || !strings.HasSuffix(s, "the last line\n") {
		t.Fatalf("text bound: %d bytes, cut %v", len(raw), cut)
	}
	// The total bound leaves out what does not fit, marked.
	secs := []Section{{Name: "a", Data: make([]byte, 600)}, {Name: "b", Data: make([]byte, 600)}, {Name: "c", Data: make([]byte, 300)}}
	if !boundTotal(secs, 1000) || secs[1].Data != nil || !secs[1].Truncated || secs[2].Data == nil {
		t.Fatalf("total bound: %+v", secs)
	}
}

// linkedELF builds a real x86_64 ELF executable at root/path needing lib ("" for
// none) with the Go linker (//go:cgo_import_dynamic; no C compiler),
// and puts an empty file where its program interpreter is, so that only
// lib can be missing.
func linkedELF(t *testing.T, root, path, lib string) {
	t.Helper()
	path = filepath.Join(root, path)
	dir := t.TempDir()
	src := "package main\n\nimport _ \"unsafe\"\n\n"
	if lib != "" {
		src += "//go:cgo_import_dynamic _ _ \"" + lib + "\"\n"
	}
	src += "\nfunc main() {}\n"
	for name, text := range map[string]string{"go.mod": "module linked\n\ngo 1.22\n", "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", path, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			p.ReadAt(b, 0)
			interp := filepath.Join(root, string(bytes.TrimRight(b, "\x00")))
			if err := os.MkdirAll(filepath.Dir(interp), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(interp, nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkCaptureLocal captures this machine's bundle with the real
// collectors (the diskstats interval skipped: it is a fixed 1 s wait), so
// it measures what the collectors cost beyond that wait.
func BenchmarkCaptureLocal(b *testing.B) {
	h := LocalHost()
	h.Sleep = func(context.Context, time.Duration) error { return nil }
	var size int
	for b.Loop() {
		bd := Capture(b.Context(), h, Spec{Node: "bench", Reason: ReasonOnDemand})
		raw, _ := json.Marshal(bd)
		size = len(raw)
	}
	b.ReportMetric(float64(size), "bytes/bundle")
}
