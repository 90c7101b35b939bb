package artifact

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// t0 is when the tests' repositories are created and first read.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is the injected clock of both the operator's Repo and the
// agent's Verifier.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// fixture is an operator's repository served over HTTP (as the server
// would: the published directory, read-only) and one agent's verifier
// pinned on the repository's first root.
type fixture struct {
	t     *testing.T
	clock *clock
	repo  *Repo
	srv   *httptest.Server
	v     *Verifier
	agent string // the verifier's directory
}

const helloScript = "#!/bin/sh\necho \"$DROVER_ARTIFACT ran\" >> \"$1\"\necho \"hello from $DROVER_ARTIFACT\"\n"

// newFixture creates a repository holding hello.sh, serves it and makes
// an agent verify hello.sh once, so the agent has a trusted state.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	c := &clock{t: t0}
	r := &Repo{Dir: filepath.Join(base, "repo"), KeysDir: filepath.Join(base, "keys"), Now: c.now}
	if err := r.Init(nil); err != nil {
		t.Fatalf("init: %v", err)
	}
	if _, err := r.Add("hello.sh", []byte(helloScript), nil); err != nil {
		t.Fatalf("add: %v", err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(r.Dir)))
	t.Cleanup(srv.Close)
	f := &fixture{t: t, clock: c, repo: r, srv: srv, agent: filepath.Join(base, "agent")}
	f.v = f.newVerifier(f.agent)
	f.mustVerify("hello.sh")
	return f
}

// newVerifier is an agent pinned on the repository's version 1 root.
func (f *fixture) newVerifier(dir string) *Verifier {
	f.t.Helper()
	root, err := os.ReadFile(f.repo.metaPath("1.root.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := NewVerifier(VerifierConfig{TrustedRoot: root, BaseURL: f.srv.URL, Dir: dir, Client: f.srv.Client(), Now: f.clock.now})
	if err != nil {
		f.t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func (f *fixture) mustVerify(name string) string {
	f.t.Helper()
	p, err := f.v.Verify(context.Background(), name)
	if err != nil {
		f.t.Fatalf("Verify(%s): %v", name, err)
	}
	return p
}

// trustedState is every file of the agent's verifier directory with its
// mode and sha256: the agent's whole trusted state.
func (f *fixture) trustedState() map[string]string {
	f.t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(f.agent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.agent, p)
		if d.IsDir() {
			st[rel+"/"] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st[rel] = fmt.Sprintf("%s %x", fi.Mode(), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// trustedVersion is the version of role in the agent's metadata cache.
func (f *fixture) trustedVersion(role string) int64 {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.agent, "metadata", role+".json"))
	if err != nil {
		f.t.Fatal(err)
	}
	var m struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		f.t.Fatal(err)
	}
	return m.Signed.Version
}

// refused runs Verify(name), requires it to fail with an error matching
// target (errors.As when target is a pointer to an error pointer,
// errors.Is otherwise) and the message want (srv.URL written URL), and
// the agent's trusted state unchanged.
func (f *fixture) refused(name string, target any, want string) error {
	f.t.Helper()
	before := f.trustedState()
	path, err := f.v.Verify(context.Background(), name)
	if err == nil {
		f.t.Fatalf("Verify(%s) = %s, want refused", name, path)
	}
	switch tg := target.(type) {
	case error:
		if !errors.Is(err, tg) {
			f.t.Errorf("error %v\n  is not %T", err, tg)
		}
	default:
		if !errors.As(err, target) {
			f.t.Errorf("error %v\n  is not a %T", err, target)
		}
	}
	if got := strings.ReplaceAll(err.Error(), f.srv.URL, "URL"); got != want {
		f.t.Errorf("error\n  got  %s\n  want %s", got, want)
	}
	if after := f.trustedState(); !maps.Equal(before, after) {
		f.t.Errorf("trusted state changed by a refused update:\n  before %v\n  after  %v", before, after)
	}
	return err
}

// served is the path of a published metadata file.
func (f *fixture) served(file string) string { return f.repo.metaPath(file) }

func (f *fixture) read(path string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) write(path string, b []byte) {
	f.t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// key reads a role's private key: the attacker compromised it.
func (f *fixture) key(role string) ed25519.PrivateKey {
	f.t.Helper()
	k, err := loadKey(f.repo.KeysDir, role)
	if err != nil {
		f.t.Fatal(err)
	}
	return k
}

// forge publishes as file to the metadata read from file from with
// mutate applied, signed by keys (none: unsigned), and returns its bytes.
func forge[T metadata.Roles](f *fixture, from, to string, mutate func(*metadata.Metadata[T]), keys ...ed25519.PrivateKey) []byte {
	f.t.Helper()
	m, err := (&metadata.Metadata[T]{}).FromBytes(f.read(f.served(from)))
	if err != nil {
		f.t.Fatalf("forge %s: %v", from, err)
	}
	mutate(m)
	m.ClearSignatures()
	for _, k := range keys {
		s, err := signature.LoadED25519Signer(k)
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err := m.Sign(s); err != nil {
			f.t.Fatal(err)
		}
	}
	b, err := m.ToBytes(true)
	if err != nil {
		f.t.Fatal(err)
	}
	f.write(f.served(to), b)
	return b
}

func versioned(v int64, role string) string { return strconv.FormatInt(v, 10) + "." + role + ".json" }
