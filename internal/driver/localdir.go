package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DirVerifier trusts artifacts that an administrator placed in one local
// directory: an artifact name resolves to a regular file directly in Dir
// that no one but its owner may write. It is weaker than signed metadata
// (it trusts whoever can write Dir) and exists for closed test and bench
// fleets; production agents verify artifacts against signed metadata.
type DirVerifier struct {
	Dir string
}

// Verify resolves artifact inside Dir, refusing paths, links out of Dir,
// and files others may write.
func (v DirVerifier) Verify(_ context.Context, artifact string) (string, error) {
	if artifact == "" || strings.ContainsAny(artifact, `/\`) || artifact == "." || artifact == ".." {
		return "", fmt.Errorf("artifact %q: want a bare file name in the trusted directory", artifact)
	}
	dir, err := filepath.Abs(v.Dir)
	if err != nil {
		return "", fmt.Errorf("trusted directory: %w", err)
	}
	path := filepath.Join(dir, artifact)
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("artifact %q: %w", artifact, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("artifact %q: %w", artifact, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("artifact %q: not a regular file", artifact)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("artifact %q: %s is writable by group or others (%v)", artifact, real, fi.Mode().Perm())
	}
	return real, nil
}
