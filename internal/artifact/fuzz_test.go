package artifact

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// memRepo serves a repository from memory (no sockets): path -> bytes.
type memRepo map[string][]byte

func (m memRepo) RoundTrip(r *http.Request) (*http.Response, error) {
	b, ok := m[r.URL.Path]
	if !ok {
		return &http.Response{StatusCode: http.StatusNotFound, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: r}, nil
}

// FuzzTimestamp feeds arbitrary bytes as timestamp.json, served by the
// repository or found in the agent's cache, through the verifier. It must
// never panic, and never verify an artifact on a timestamp the timestamp
// key did not sign.
func FuzzTimestamp(f *testing.F) {
	base := f.TempDir()
	c := &clock{t: t0}
	r := &Repo{Dir: filepath.Join(base, "repo"), KeysDir: filepath.Join(base, "keys"), Now: c.now}
	if err := r.Init(nil); err != nil {
		f.Fatal(err)
	}
	if _, err := r.Add("hello.sh", []byte(helloScript), nil); err != nil {
		f.Fatal(err)
	}
	files := memRepo{}
	for _, sub := range []string{"metadata", "targets"} {
		ents, err := os.ReadDir(filepath.Join(r.Dir, sub))
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(r.Dir, sub, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			files["/"+sub+"/"+e.Name()] = b
		}
	}
	root := files["/metadata/1.root.json"]
	valid := files["/metadata/timestamp.json"]
	trusted, err := (&metadata.Metadata[metadata.RootType]{}).FromBytes(root)
	if err != nil {
		f.Fatal(err)
	}
	// signed reports whether b is a timestamp the timestamp key signed.
	signed := func(b []byte) bool {
		ts, err := (&metadata.Metadata[metadata.TimestampType]{}).FromBytes(b)
		return err == nil && trusted.VerifyDelegate(metadata.TIMESTAMP, ts) == nil
	}

	// Seeds: near misses of the valid timestamp, never the valid one.
	unsigned := bytes.Replace(valid, []byte(`"sig": "`), []byte(`"sig": "00`), 1)
	bumped := bytes.Replace(valid, []byte(`"version": 2`), []byte(`"version": 3`), 1)
	for _, seed := range [][]byte{nil, []byte("{}"), []byte("null"), []byte(`{"signed":{"_type":"timestamp"},"signatures":[]}`),
		unsigned, bumped, valid[:len(valid)/2], root, files["/metadata/2.snapshot.json"],
		bytes.Replace(valid, []byte(`"_type": "timestamp"`), []byte(`"_type": "root"`), 1)} {
		f.Add(seed, false)
		f.Add(seed, true)
	}

	f.Fuzz(func(t *testing.T, data []byte, cached bool) {
		serve := memRepo{}
		for k, v := range files {
			serve[k] = v
		}
		dir := t.TempDir()
		if cached {
			// Garbage in the agent's cache, a valid repository on the
			// server.
			if err := os.MkdirAll(filepath.Join(dir, "metadata"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "metadata", "timestamp.json"), data, 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			serve["/metadata/timestamp.json"] = data
		}
		v, err := NewVerifier(VerifierConfig{TrustedRoot: root, BaseURL: "http://repo.invalid", Dir: dir,
			Client: &http.Client{Transport: serve}, Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), "hello.sh")
		switch {
		case !cached && err == nil && !signed(data):
			t.Fatalf("verified through an unsigned timestamp %q", data)
		case cached && err != nil && !signed(data):
			// An unsigned cache entry is ignored: the signed server
			// timestamp still verifies.
			t.Fatalf("garbage in the cache blocked a valid update: %v", err)
		}
	})
}
