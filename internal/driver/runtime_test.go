package driver

import (
	"context"
	"slices"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// The containerd package upgrade replays the recorded apt transcript shape
// (dpkg-query, apt-get install) around the runtime's restart and version.
const containerdTranscript = `containerd 1.6.20~ds1-1+b1 -> 1.6.20~ds1-1+deb12u1 through apt, then
restart and ctr version (containerd 1.6.20 as Debian bookworm ships it).

-- $ dpkg-query -W '-f=${db:Status-Status} ${Version}\n' containerd --
installed 1.6.20~ds1-1+b1
-- $ dpkg-query -W '-f=${db:Status-Status} ${Version}\n' containerd --
installed 1.6.20~ds1-1+deb12u1
-- $ apt-mark showhold containerd --
-- $ apt-get install -y --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold containerd=1.6.20~ds1-1+deb12u1 --
Setting up containerd (1.6.20~ds1-1+deb12u1) ...
-- $ needrestart -b --
-- exit --
notfound
-- $ systemctl restart containerd --
-- $ ctr version --
Client:
  Version:  1.6.20~ds1
  Revision: 1.6.20~ds1-1+deb12u1
  Go version: go1.19.8

Server:
  Version:  1.6.20~ds1
  Revision: 1.6.20~ds1-1+deb12u1
  UUID: 0b7c6d0e-8f52-4d5a-b0b5-5e3c1c0f9a11
`

func TestContainerRuntime(t *testing.T) {
	ctx := context.Background()
	r := replayFromText(t, containerdTranscript)
	d := NewContainerRuntime(r, NewApt(r, AptOptions{FS: fakeFS{}}), RuntimeOptions{})
	a := plan.Action{ContainerRuntime: &plan.ContainerRuntimeAction{Runtime: "containerd", Version: "1.6.20~ds1-1+deb12u1"}}
	out, err := d.Apply(ctx, a)
	if err != nil || len(out.Changed) != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	if got := r.ran("systemctl"); !slices.Equal(got, []string{"systemctl restart containerd"}) {
		t.Fatalf("ran %q", got)
	}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestParseRuntimeVersion(t *testing.T) {
	for _, tc := range []struct{ tool, out, want string }{
		{"docker", "27.1.1\n", "27.1.1"},
		{"crictl", "Version:  0.1.0\nRuntimeName:  cri-o\nRuntimeVersion:  1.30.4\nRuntimeApiVersion:  v1\n", "1.30.4"},
		{"ctr", "Client:\n  Version:  v1.7.20\n\nServer:\n  Version:  v1.7.20\n", "v1.7.20"},
	} {
		if got, err := parseRuntimeVersion(tc.tool, tc.out); err != nil || got != tc.want {
			t.Errorf("%s: %q %v", tc.tool, got, err)
		}
	}
	for _, tc := range []struct {
		pkg, reported string
		want          bool
	}{
		{"5:27.1.1-1~debian.12~bookworm", "27.1.1", true},
		{"1.7.20-1", "v1.7.20", true},
		{"1.30.4-150500.1.1", "1.30.4", true},
		{"1.7.20-1", "1.7.19", false},
	} {
		if got := sameUpstream(tc.pkg, tc.reported); got != tc.want {
			t.Errorf("sameUpstream(%q, %q) = %v", tc.pkg, tc.reported, got)
		}
	}
}

func FuzzParseRuntimeVersion(f *testing.F) {
	f.Add("Server:\n Version: 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, tool := range []string{"ctr", "docker", "crictl"} {
			_, _ = parseRuntimeVersion(tool, s)
		}
		_ = sameUpstream(s, s)
	})
}
