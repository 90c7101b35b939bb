package evidence

import (
	"os"
	"slices"
	"testing"
	"time"
)

// The testdata files are outputs captured from the drover-fleet:bookworm
// container (docker run --rm drover-fleet:bookworm cat ...), and
// tcp.txt from the build host's /proc/net/tcp.
func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseProcNetRoute(t *testing.T) {
	rs, err := ParseProcNetRoute(testdata(t, "route.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{{Iface: "eth0", Destination: "0.0.0.0/0", Gateway: "172.17.0.1"}, {Iface: "eth0", Destination: "172.17.0.0/16"}}
	if !slices.Equal(rs, want) {
		t.Fatalf("routes = %+v, want %+v", rs, want)
	}
	if _, err := ParseProcNetRoute([]byte("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\neth0\tZZ\t0\t0\t0\t0\t0\t0\t0\t0\t0\n")); err == nil {
		t.Fatal("bad address: want an error")
	}
}

func TestDiskIOBetween(t *testing.T) {
	b := testdata(t, "diskstats.txt")
	i := slices.Index(lines(b), "---")
	ls := lines(b)
	a, z := ParseDiskstats([]byte(join(ls[:i]))), ParseDiskstats([]byte(join(ls[i+1:])))
	if _, ok := a["loop0"]; ok {
		t.Fatal("loop devices must be left out")
	}
	io := DiskIOBetween(a, z, time.Second)
	if len(io) != 1 || io[0].Device != "vda" {
		t.Fatalf("io = %+v, want vda only", io)
	}
	// vda: 3 reads (0 ms), 184 writes (18 ms), io ms 20112 → 20112 (0 %).
	want := DiskIO{Device: "vda", ReadsPerSec: 3, WritesPerSec: 184, ReadLatencyMs: 0, WriteLatencyMs: 0.1}
	if io[0] != want {
		t.Fatalf("vda = %+v, want %+v", io[0], want)
	}
	busy := DiskIOBetween(map[string]DiskStat{"sda": {Reads: 10, ReadMs: 100, IOMs: 1000}},
		map[string]DiskStat{"sda": {Reads: 20, ReadMs: 600, IOMs: 1500}}, time.Second)
	if busy[0].ReadLatencyMs != 50 || busy[0].Utilisation != 50 {
		t.Fatalf("sda = %+v, want 50 ms per read, 50 %%", busy[0])
	}
}

func join(ls []string) string {
	s := ""
	for _, l := range ls {
		s += l + "\n"
	}
	return s
}

func TestParseProcNetTCP(t *testing.T) {
	c := map[string]int{}
	ParseProcNetTCP(testdata(t, "tcp.txt"), c)
	ParseProcNetTCP(testdata(t, "tcp6.txt"), c)
	if c["LISTEN"] != 1 || c["TIME_WAIT"] != 4 || len(c) != 2 {
		t.Fatalf("counts = %v, want LISTEN 1 TIME_WAIT 4", c)
	}
}

func TestParseResolvConf(t *testing.T) {
	r := ParseResolvConf([]byte("# generated\nnameserver 10.255.255.53\nnameserver ::1\nsearch corp.example svc.local\noptions ndots:5 timeout:1\n"))
	if !slices.Equal(r.Nameservers, []string{"10.255.255.53", "::1"}) || !slices.Equal(r.Search, []string{"corp.example", "svc.local"}) ||
		!slices.Equal(r.Options, []string{"ndots:5", "timeout:1"}) {
		t.Fatalf("resolv.conf = %+v", r)
	}
}

func TestParseIptablesVersion(t *testing.T) {
	for in, want := range map[string]string{"iptables v1.8.9 (nf_tables)\n": "nf_tables", "iptables v1.8.9 (legacy)\n": "legacy", "iptables v1.6.1\n": "legacy"} {
		fw, err := ParseIptablesVersion([]byte(in))
		if err != nil || fw.Backend != want {
			t.Errorf("%q: %+v %v, want %s", in, fw, err, want)
		}
	}
	if _, err := ParseIptablesVersion([]byte("nft v1.0.6\n")); err == nil {
		t.Error("not iptables: want an error")
	}
}

func TestParseChronyTracking(t *testing.T) {
	out := `Reference ID    : C0A80001 (192.168.0.1)
Stratum         : 3
Ref time (UTC)  : Mon Dec 07 17:00:00 2026
System time     : 0.000125000 seconds slow of NTP time
Last offset     : -0.000011 seconds
Leap status     : Normal
`
	ts, err := ParseChronyTracking([]byte(out))
	if err != nil || !ts.Synchronized || ts.Offset != -0.000125 || ts.Stratum != 3 || ts.Server != "C0A80001 (192.168.0.1)" {
		t.Fatalf("%+v %v", ts, err)
	}
	if _, err := ParseChronyTracking([]byte("506 Cannot talk to daemon\n")); err == nil {
		t.Fatal("no tracking: want an error")
	}
	td := ParseTimedatectlShow([]byte("Timezone=UTC\nNTP=yes\nNTPSynchronized=no\n"))
	if td.Synchronized || td.NTP != "yes" {
		t.Fatalf("timedatectl: %+v", td)
	}
}

func TestParseSystemctl(t *testing.T) {
	f := ParseSystemctlFailed([]byte("nginx.service loaded failed failed A high performance web server\n● x.service loaded failed failed X\n"))
	if len(f) != 2 || f[0].Unit != "nginx.service" || f[0].Active != "failed" || f[1].Unit != "x.service" {
		t.Fatalf("failed = %+v", f)
	}
}

func TestParseBootID(t *testing.T) {
	if id, err := ParseBootID([]byte("ca118519-25d9-4680-ab99-23d078fac0ee\n")); err != nil || id != "ca118519-25d9-4680-ab99-23d078fac0ee" {
		t.Fatal(id, err)
	}
	if _, err := ParseBootID([]byte("nope")); err == nil {
		t.Fatal("want an error")
	}
}
