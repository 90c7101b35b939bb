package artifact

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// Default validity of each role's metadata from the moment it is signed.
// The timestamp must be re-signed (`drover artifact sign --role
// timestamp`) before it expires, or agents refuse every artifact: that is
// what bounds a freeze attack.
const (
	DefaultRootExpiry      = 365 * 24 * time.Hour
	DefaultTargetsExpiry   = 90 * 24 * time.Hour
	DefaultSnapshotExpiry  = 7 * 24 * time.Hour
	DefaultTimestampExpiry = 24 * time.Hour
)

// Expiry overrides the validity of roles' metadata; a role missing from
// it (or nil) gets its default.
type Expiry map[string]time.Duration

func (e Expiry) of(role string) time.Duration {
	if d, ok := e[role]; ok && d > 0 {
		return d
	}
	switch role {
	case metadata.ROOT:
		return DefaultRootExpiry
	case metadata.TARGETS:
		return DefaultTargetsExpiry
	case metadata.SNAPSHOT:
		return DefaultSnapshotExpiry
	}
	return DefaultTimestampExpiry
}

// ValidRole reports whether role is a top-level TUF role.
func ValidRole(role string) error {
	if !slices.Contains(roles[:], role) {
		return fmt.Errorf("role %q: want root, targets, snapshot or timestamp", role)
	}
	return nil
}

// ErrInvalidName is wrapped when an artifact name is not a bare file
// name of letters, digits and . _ + - (the same rule on the operator's
// machine, the server and the agent).
var ErrInvalidName = errors.New("invalid artifact name")

// ValidName checks an artifact (TUF target) name.
func ValidName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w %q: want 1-128 letters, digits, '.', '_', '+' or '-', not starting with '.' or '-'", ErrInvalidName, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+-", c)) {
			return fmt.Errorf("%w %q: character %q not allowed", ErrInvalidName, name, c)
		}
	}
	return nil
}

// Repo is a TUF repository on the operator's machine. Dir holds what is
// published (metadata/ and targets/: copy it to the server's
// artifactsDir); KeysDir holds the private keys and is never published.
type Repo struct {
	Dir     string
	KeysDir string
	// Now is the signing clock (expiry is Now plus the role's validity);
	// nil means time.Now.
	Now func() time.Time
}

func (r *Repo) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Repo) metaPath(name string) string { return filepath.Join(r.Dir, "metadata", name) }

// TargetPath is where target t is published: targets/SHA256.NAME.
func (r *Repo) TargetPath(t *metadata.TargetFiles) string {
	return filepath.Join(r.Dir, "targets", hex.EncodeToString(t.Hashes["sha256"])+"."+t.Path)
}

// state is the repository's current metadata.
type state struct {
	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]
	raw       map[string][]byte // role -> bytes as published
}

// Init creates the four role keys in KeysDir and version 1 of every
// role's metadata in Dir. It refuses a directory that has a repository
// already, and never overwrites a key.
func (r *Repo) Init(exp Expiry) error {
	if _, err := os.Stat(r.metaPath("root.json")); err == nil {
		return fmt.Errorf("%s already holds a repository (metadata/root.json exists)", r.Dir)
	}
	for _, role := range roles {
		if _, err := os.Stat(keyFile(r.KeysDir, role)); err == nil {
			return fmt.Errorf("%s already holds a %s key: refusing to overwrite keys", r.KeysDir, role)
		}
	}
	for _, d := range []string{"metadata", "targets"} {
		if err := os.MkdirAll(filepath.Join(r.Dir, d), 0o755); err != nil {
			return fmt.Errorf("repository: %w", err)
		}
	}
	now := r.now()
	st := &state{root: metadata.Root(now.Add(exp.of(metadata.ROOT))), targets: metadata.Targets(),
		snapshot: metadata.Snapshot(), timestamp: metadata.Timestamp(), raw: map[string][]byte{}}
	st.root.Signed.ConsistentSnapshot = true
	for _, role := range roles {
		priv, err := generateKey(r.KeysDir, role)
		if err != nil {
			return err
		}
		k, err := publicKey(priv)
		if err != nil {
			return err
		}
		if err := st.root.Signed.AddKey(k, role); err != nil {
			return fmt.Errorf("root: add %s key: %w", role, err)
		}
	}
	// Version 1 of each: the sign* helpers bump, so start from 0.
	st.root.Signed.Version, st.targets.Signed.Version, st.snapshot.Signed.Version, st.timestamp.Signed.Version = 0, 0, 0, 0
	return r.resign(st, metadata.ROOT, exp, true)
}

// load reads and checks the repository's current metadata: the latest
// root, then timestamp.json and the snapshot and targets versions it
// names. The signatures and the version chain are checked as an agent
// would (expiry is not: an expired role is what `sign` repairs).
func (r *Repo) load() (*state, error) {
	st := &state{raw: map[string][]byte{}}
	read := func(role, file string) ([]byte, error) {
		b, err := os.ReadFile(r.metaPath(file))
		if errors.Is(err, fs.ErrNotExist) && role == metadata.ROOT {
			return nil, fmt.Errorf("%s holds no repository (no metadata/root.json): run drover artifact init: %w", r.Dir, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%s metadata: %w", role, err)
		}
		st.raw[role] = b
		return b, nil
	}
	b, err := read(metadata.ROOT, "root.json")
	if err != nil {
		return nil, err
	}
	tm, err := trustedmetadata.New(b)
	if err != nil {
		return nil, fmt.Errorf("root metadata: %w", err)
	}
	tm.RefTime = time.Time{} // offline check: signatures and versions, not expiry
	if b, err = read(metadata.TIMESTAMP, "timestamp.json"); err != nil {
		return nil, err
	}
	if _, err := tm.UpdateTimestamp(b); err != nil {
		return nil, fmt.Errorf("timestamp metadata: %w", err)
	}
	snapVer := tm.Timestamp.Signed.Meta["snapshot.json"].Version
	if b, err = read(metadata.SNAPSHOT, strconv.FormatInt(snapVer, 10)+".snapshot.json"); err != nil {
		return nil, err
	}
	if _, err := tm.UpdateSnapshot(b, false); err != nil {
		return nil, fmt.Errorf("snapshot metadata: %w", err)
	}
	tgtVer := tm.Snapshot.Signed.Meta["targets.json"].Version
	if b, err = read(metadata.TARGETS, strconv.FormatInt(tgtVer, 10)+".targets.json"); err != nil {
		return nil, err
	}
	if _, err := tm.UpdateTargets(b); err != nil {
		return nil, fmt.Errorf("targets metadata: %w", err)
	}
	st.root, st.timestamp, st.snapshot, st.targets = tm.Root, tm.Timestamp, tm.Snapshot, tm.Targets[metadata.TARGETS]
	return st, nil
}

// resign signs a new version of role and of every role whose metadata
// describes it (targets -> snapshot -> timestamp), loading only the keys
// it needs. root is re-signed alone unless all is set (Init).
func (r *Repo) resign(st *state, role string, exp Expiry, all bool) error {
	now := r.now()
	chain := map[string][]string{
		metadata.ROOT:      {metadata.ROOT},
		metadata.TARGETS:   {metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP},
		metadata.SNAPSHOT:  {metadata.SNAPSHOT, metadata.TIMESTAMP},
		metadata.TIMESTAMP: {metadata.TIMESTAMP},
	}[role]
	if all {
		chain = roles[:]
	}
	for _, role := range chain {
		priv, err := loadKey(r.KeysDir, role)
		if err != nil {
			return err
		}
		var raw []byte
		switch role {
		case metadata.ROOT:
			st.root.Signed.Version++
			st.root.Signed.Expires = now.Add(exp.of(role))
			raw, err = signBytes(st.root, priv)
		case metadata.TARGETS:
			st.targets.Signed.Version++
			st.targets.Signed.Expires = now.Add(exp.of(role))
			raw, err = signBytes(st.targets, priv)
		case metadata.SNAPSHOT:
			st.snapshot.Signed.Version++
			st.snapshot.Signed.Expires = now.Add(exp.of(role))
			st.snapshot.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": metaFile(st.targets.Signed.Version, st.raw[metadata.TARGETS])}
			raw, err = signBytes(st.snapshot, priv)
		case metadata.TIMESTAMP:
			st.timestamp.Signed.Version++
			st.timestamp.Signed.Expires = now.Add(exp.of(role))
			st.timestamp.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(st.snapshot.Signed.Version, st.raw[metadata.SNAPSHOT])}
			raw, err = signBytes(st.timestamp, priv)
		}
		if err != nil {
			return fmt.Errorf("sign %s: %w", role, err)
		}
		st.raw[role] = raw
		if err := r.write(role, st, raw); err != nil {
			return err
		}
	}
	return nil
}

// write publishes one role's new metadata. Versioned files are written
// before timestamp.json, which alone makes a new repository state
// visible to clients.
func (r *Repo) write(role string, st *state, raw []byte) error {
	var files []string
	switch role {
	case metadata.ROOT:
		files = []string{strconv.FormatInt(st.root.Signed.Version, 10) + ".root.json", "root.json"}
	case metadata.TARGETS:
		files = []string{strconv.FormatInt(st.targets.Signed.Version, 10) + ".targets.json"}
	case metadata.SNAPSHOT:
		files = []string{strconv.FormatInt(st.snapshot.Signed.Version, 10) + ".snapshot.json"}
	case metadata.TIMESTAMP:
		files = []string{"timestamp.json"}
	}
	for _, f := range files {
		if err := writeAtomic(r.metaPath(f), raw, 0o644); err != nil {
			return fmt.Errorf("publish %s: %w", f, err)
		}
	}
	return nil
}

func signBytes[T metadata.Roles](m *metadata.Metadata[T], priv ed25519.PrivateKey) ([]byte, error) {
	if err := sign(m, priv); err != nil {
		return nil, err
	}
	return m.ToBytes(true)
}

// metaFile describes published metadata by version, length and sha256:
// a client then accepts only those exact bytes (mix-and-match).
func metaFile(version int64, raw []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(raw)
	return &metadata.MetaFiles{Version: version, Length: int64(len(raw)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

// Add publishes data as target name (replacing a target of that name)
// and signs new targets, snapshot and timestamp metadata.
func (r *Repo) Add(name string, data []byte, exp Expiry) (*metadata.TargetFiles, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	tf, err := metadata.TargetFile().FromBytes(name, data, "sha256")
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Join(r.Dir, "targets"), 0o755); err != nil {
		return nil, fmt.Errorf("repository: %w", err)
	}
	// The target before the metadata that names it.
	if err := writeAtomic(r.TargetPath(tf), data, 0o644); err != nil {
		return nil, fmt.Errorf("publish target %s: %w", name, err)
	}
	st.targets.Signed.Targets[name] = tf
	return tf, r.resign(st, metadata.TARGETS, exp, false)
}

// ErrUnknownArtifact is wrapped when a name is not a target of the
// repository (or of the agent's trusted metadata).
var ErrUnknownArtifact = errors.New("unknown artifact")

// Remove withdraws target name: once agents see the new metadata they
// refuse it. Its file stays under targets/ for clients still reading the
// previous snapshot.
func (r *Repo) Remove(name string, exp Expiry) error {
	st, err := r.load()
	if err != nil {
		return err
	}
	if _, ok := st.targets.Signed.Targets[name]; !ok {
		return fmt.Errorf("%w %q in %s", ErrUnknownArtifact, name, r.Dir)
	}
	delete(st.targets.Signed.Targets, name)
	return r.resign(st, metadata.TARGETS, exp, false)
}

// Sign signs a new version of role with a fresh expiry, and of the roles
// that describe it (targets: snapshot and timestamp; snapshot:
// timestamp). Only those roles' keys are needed, so the timestamp can be
// re-signed daily with the timestamp key alone.
func (r *Repo) Sign(role string, exp Expiry) error {
	if err := ValidRole(role); err != nil {
		return err
	}
	st, err := r.load()
	if err != nil {
		return err
	}
	return r.resign(st, role, exp, false)
}

// RoleInfo is one role's current metadata.
type RoleInfo struct {
	Role    string
	Version int64
	Expires time.Time
}

// Target is one published artifact.
type Target struct {
	Name   string
	Length int64
	SHA256 string
}

// Listing is what a repository publishes.
type Listing struct {
	Roles   []RoleInfo // root, targets, snapshot, timestamp
	Targets []Target   // by name
}

// List reads the repository, checking signatures and versions as an
// agent would. Expired roles are listed (with their expiry): Expired
// reports them.
func (r *Repo) List() (Listing, error) {
	st, err := r.load()
	if err != nil {
		return Listing{}, err
	}
	l := Listing{Roles: []RoleInfo{
		{metadata.ROOT, st.root.Signed.Version, st.root.Signed.Expires},
		{metadata.TARGETS, st.targets.Signed.Version, st.targets.Signed.Expires},
		{metadata.SNAPSHOT, st.snapshot.Signed.Version, st.snapshot.Signed.Expires},
		{metadata.TIMESTAMP, st.timestamp.Signed.Version, st.timestamp.Signed.Expires},
	}}
	for name, t := range st.targets.Signed.Targets {
		l.Targets = append(l.Targets, Target{Name: name, Length: t.Length, SHA256: hex.EncodeToString(t.Hashes["sha256"])})
	}
	slices.SortFunc(l.Targets, func(a, b Target) int { return strings.Compare(a.Name, b.Name) })
	return l, nil
}

// Expired lists the roles of l expired at now: agents refuse every
// artifact until they are re-signed.
func (l Listing) Expired(now time.Time) []string {
	var out []string
	for _, ri := range l.Roles {
		if !now.Before(ri.Expires) {
			out = append(out, ri.Role)
		}
	}
	return out
}

// writeAtomic writes data to path through a temporary file and a rename,
// so readers see the old bytes or the new ones.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
