package artifact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// VerifierConfig configures an agent's Verifier.
type VerifierConfig struct {
	// TrustedRoot is the root.json pinned on the node (distributed by the
	// operator out of band). Required. A newer root reached from it by
	// verified rotation and kept in the cache takes over from it.
	TrustedRoot []byte
	// BaseURL is the repository's base: metadata is read from
	// BaseURL/metadata/ and targets from BaseURL/targets/ (the server
	// serves them at SERVER/v1/artifacts). Required.
	BaseURL string
	// Dir is the verifier's own directory in the agent's state dir
	// (created 0700): the trusted metadata cache in Dir/metadata and
	// verified targets in Dir/targets. Required.
	Dir string
	// Client fetches metadata and targets; nil means a client with a
	// 10-minute timeout. Header is added to every request (the agent's
	// credentials).
	Client *http.Client
	Header http.Header
	// Now is the reference time for expiry; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Verifier is the agent's driver.Verifier for signed artifacts. It is
// safe for concurrent use (verifications run one at a time).
type Verifier struct {
	cfg    VerifierConfig
	pinned int64 // version of cfg.TrustedRoot
	log    *slog.Logger

	mu sync.Mutex // serializes Verify: the cache moves forward one update at a time
}

// Metadata limits (bytes): what an update may download at most per file.
const (
	maxRootBytes      = 512 << 10
	maxTimestampBytes = 16 << 10
	maxSnapshotBytes  = 2 << 20
	maxTargetsBytes   = 5 << 20
)

// NewVerifier checks cfg and the pinned root (its own signatures must
// meet its root threshold) and creates cfg.Dir.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	switch {
	case len(cfg.TrustedRoot) == 0:
		return nil, errors.New("artifact verifier: no trusted root")
	case cfg.BaseURL == "":
		return nil, errors.New("artifact verifier: no repository URL")
	case cfg.Dir == "":
		return nil, errors.New("artifact verifier: no directory")
	}
	tm, err := trustedmetadata.New(cfg.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("artifact verifier: pinned root: %w", err)
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "metadata"), filepath.Join(cfg.Dir, "targets")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("artifact verifier: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("artifact verifier: %w", err)
		}
	}
	// Staging copies left by a crash mid-update were never trusted.
	if stale, err := filepath.Glob(filepath.Join(cfg.Dir, ".update-*")); err == nil {
		for _, s := range stale {
			_ = os.RemoveAll(s)
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Minute}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	v := &Verifier{cfg: cfg, pinned: tm.Root.Signed.Version, log: cfg.Logger}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

func (v *Verifier) metaDir() string    { return filepath.Join(v.cfg.Dir, "metadata") }
func (v *Verifier) targetsDir() string { return filepath.Join(v.cfg.Dir, "targets") }

// trustedRoot is where this update's trust starts: the cached root if it
// is valid and at least as new as the pinned one, else the pinned root.
func (v *Verifier) trustedRoot() []byte {
	cached, err := os.ReadFile(filepath.Join(v.metaDir(), "root.json"))
	if err != nil {
		return v.cfg.TrustedRoot
	}
	tm, err := trustedmetadata.New(cached)
	if err != nil || tm.Root.Signed.Version < v.pinned {
		return v.cfg.TrustedRoot
	}
	return cached
}

// Verify refreshes the trusted metadata from the repository, downloads
// artifact (unless the verified copy kept from an earlier call still
// matches), checks its length and sha256 against the targets metadata,
// and returns the path of the verified copy: Dir/targets/NAME, mode 0700
// (scripts are executed), in a 0700 directory.
//
// Every refusal wraps go-tuf's error (match with errors.Is or errors.As:
// *metadata.ErrUnsignedMetadata, *metadata.ErrBadVersionNumber,
// *metadata.ErrExpiredMetadata, *metadata.ErrLengthOrHashMismatch, all
// *metadata.ErrRepository; *metadata.ErrDownload for transport) or
// ErrUnknownArtifact / ErrInvalidName, and leaves the trusted metadata
// cache unchanged: the update is made in a staging copy and committed
// only after the artifact verified.
func (v *Verifier) Verify(ctx context.Context, artifact string) (string, error) {
	if err := ValidName(artifact); err != nil {
		return "", err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	stage, err := os.MkdirTemp(v.cfg.Dir, ".update-")
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", artifact, err)
	}
	defer os.RemoveAll(stage)
	if err := v.copyMetadata(stage); err != nil {
		return "", fmt.Errorf("artifact %s: staging metadata: %w", artifact, err)
	}
	cfg, err := config.New(v.cfg.BaseURL+"/metadata", v.trustedRoot())
	if err != nil {
		return "", fmt.Errorf("artifact %s: %w", artifact, err)
	}
	cfg.RemoteTargetsURL = v.cfg.BaseURL + "/targets"
	cfg.LocalMetadataDir = stage
	cfg.LocalTargetsDir = filepath.Join(stage, "targets")
	cfg.RootMaxLength, cfg.TimestampMaxLength, cfg.SnapshotMaxLength, cfg.TargetsMaxLength =
		maxRootBytes, maxTimestampBytes, maxSnapshotBytes, maxTargetsBytes
	cfg.Fetcher = &fetcher{ctx: ctx, client: v.cfg.Client, header: v.cfg.Header}
	up, err := updater.New(cfg)
	if err != nil {
		return "", fmt.Errorf("artifact %s: trusted root: %w", artifact, err)
	}
	up.UnsafeSetRefTime(v.cfg.Now().UTC()) // the injected clock, not a bypass: every expiry is still checked
	if err := up.Refresh(); err != nil {
		return "", fmt.Errorf("artifact %s: signed metadata from %s: %w", artifact, v.cfg.BaseURL, err)
	}
	top := up.GetTopLevelTargets()
	tf, ok := top[artifact]
	if !ok {
		if d := up.GetTrustedMetadataSet().Targets[metadata.TARGETS].Signed.Delegations; d == nil {
			return "", fmt.Errorf("artifact %s: %w: not in the signed targets", artifact, ErrUnknownArtifact)
		}
		if tf, err = up.GetTargetInfo(artifact); err != nil {
			return "", fmt.Errorf("artifact %s: %w: %w", artifact, ErrUnknownArtifact, err)
		}
	}
	if _, ok := tf.Hashes["sha256"]; !ok {
		return "", fmt.Errorf("artifact %s: signed targets give no sha256: %w", artifact, &metadata.ErrLengthOrHashMismatch{Msg: "no sha256 hash"})
	}
	path := filepath.Join(v.targetsDir(), artifact)
	if cached, err := os.ReadFile(path); err != nil || tf.VerifyLengthHashes(cached) != nil {
		_, data, err := up.DownloadTarget(tf, filepath.Join(stage, "target"), "")
		if err != nil {
			return "", fmt.Errorf("artifact %s: target from %s: %w", artifact, v.cfg.BaseURL, err)
		}
		if err := writeAtomic(path, data, 0o700); err != nil {
			return "", fmt.Errorf("artifact %s: %w", artifact, err)
		}
	}
	if err := commitMetadata(stage, v.metaDir()); err != nil {
		return "", fmt.Errorf("artifact %s: commit trusted metadata: %w", artifact, err)
	}
	v.log.Info("artifact verified", "artifact", artifact, "path", path,
		"targets_version", up.GetTrustedMetadataSet().Targets[metadata.TARGETS].Signed.Version)
	return path, nil
}

// copyMetadata copies the trusted cache's metadata into stage. A cached
// file that does not even parse as its role's metadata is left out (and
// logged): go-tuf ignores cached metadata that fails verification but
// stops on a parse error, which would let one corrupt file block every
// update. Signatures and versions of what is copied are still checked by
// the update.
func (v *Verifier) copyMetadata(stage string) error {
	from := v.metaDir()
	ents, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := parses(e.Name(), b); err != nil {
			v.log.Warn("ignoring corrupt cached artifact metadata", "file", e.Name(), "err", err)
			continue
		}
		if err := os.WriteFile(filepath.Join(stage, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// parses checks that b is metadata of the role its cache file name says.
func parses(file string, b []byte) error {
	var err error
	switch strings.TrimSuffix(file, ".json") {
	case metadata.ROOT:
		_, err = metadata.Root().FromBytes(b)
	case metadata.TIMESTAMP:
		_, err = metadata.Timestamp().FromBytes(b)
	case metadata.SNAPSHOT:
		_, err = metadata.Snapshot().FromBytes(b)
	default:
		_, err = metadata.Targets().FromBytes(b)
	}
	return err
}

// commitMetadata moves the verified metadata of stage into the trusted
// cache, root first and timestamp last, each file atomically. Files whose
// bytes did not change are left alone.
func commitMetadata(stage, to string) error {
	ents, err := os.ReadDir(stage)
	if err != nil {
		return err
	}
	rank := func(name string) int {
		switch name {
		case "root.json":
			return 0
		case "timestamp.json":
			return 2
		}
		return 1
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	for r := 0; r < 3; r++ {
		for _, n := range names {
			if rank(n) != r {
				continue
			}
			b, err := os.ReadFile(filepath.Join(stage, n))
			if err != nil {
				return err
			}
			if old, err := os.ReadFile(filepath.Join(to, n)); err == nil && bytes.Equal(old, b) {
				continue
			}
			if err := writeAtomic(filepath.Join(to, n), b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// fetcher is go-tuf's Fetcher over the agent's HTTP client, bound to one
// Verify call's context.
type fetcher struct {
	ctx    context.Context
	client *http.Client
	header http.Header
}

// DownloadFile gets url, failing with *metadata.ErrDownloadHTTP on a
// status other than 200 (go-tuf reads 404 on N.root.json as "no newer
// root") and *metadata.ErrDownloadLengthMismatch past maxLength.
func (f *fetcher) DownloadFile(url string, maxLength int64, _ time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range f.header {
		req.Header[k] = vs
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: url}
	}
	if resp.ContentLength > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: length %d is larger than expected %d", url, resp.ContentLength, maxLength)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxLength+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if int64(len(data)) > maxLength {
		return nil, &metadata.ErrDownloadLengthMismatch{Msg: fmt.Sprintf("%s: more than the expected %d bytes", url, maxLength)}
	}
	return data, nil
}
