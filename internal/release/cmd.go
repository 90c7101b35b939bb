package release

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const usage = `Usage:
  release build --version V --bin DIR --out DIR --key FILE [--new-key]
  release verify --pub release.pub DIR

build packages the binaries in --bin (NAME-linux-ARCH, as
scripts/crossbuild.sh writes them) as .deb and .rpm into --out, copies
the other binaries there, and writes SHA256SUMS, manifest.json and its
ed25519 signature (manifest.json.sig) with the key in --key (default
$DROVER_RELEASE_KEY; --new-key makes one there if it is missing, for
test builds: a real release's key is made once and kept offline).

verify checks a release directory's signature with the release public
key and every artifact's SHA-256.
`

// Main is scripts/release's command line.
func Main(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("release "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	switch args[0] {
	case "build":
		var o Options
		var key string
		var newKey bool
		fs.StringVar(&o.Version, "version", "", "version of the packages")
		fs.StringVar(&o.BinDir, "bin", "", "directory of the cross-built binaries")
		fs.StringVar(&o.OutDir, "out", "dist", "output directory")
		fs.StringVar(&o.Root, "root", ".", "module root (reads deploy/)")
		fs.StringVar(&key, "key", getenv("DROVER_RELEASE_KEY"), "ed25519 signing key (PEM PKCS #8)")
		fs.BoolVar(&newKey, "new-key", false, "make the key if it does not exist")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if o.Version == "" || o.BinDir == "" || key == "" {
			fmt.Fprint(stderr, "release build: --version, --bin and --key (or $DROVER_RELEASE_KEY) are required\n")
			return 2
		}
		if err := build(o, key, newKey, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "release build: %v\n", err)
			return 1
		}
		return 0
	case "verify":
		var pubPath string
		fs.StringVar(&pubPath, "pub", "", "the release's public key (PEM), obtained apart from the release")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if pubPath == "" || fs.NArg() != 1 {
			fmt.Fprint(stderr, "release verify: want --pub FILE and one release directory\n")
			return 2
		}
		pub, err := LoadPublicKey(pubPath)
		if err != nil {
			fmt.Fprintf(stderr, "release verify: %v\n", err)
			return 1
		}
		m, err := Verify(fs.Arg(0), pub)
		if err != nil {
			fmt.Fprintf(stderr, "release %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "release %s: signature and %d artifacts verified\n", m.Version, len(m.Artifacts))
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}

func build(o Options, keyPath string, newKey bool, stdout, stderr io.Writer) error {
	key, made, err := keyOrNew(keyPath, newKey)
	if err != nil {
		return err
	}
	if made {
		fmt.Fprintf(stderr, "release: made a new signing key %s (a test key: a real release's key is kept offline)\n", keyPath)
	}
	pkgs, err := Build(o)
	if err != nil {
		return err
	}
	// The other platforms' binaries are released as they are.
	bins, err := filepath.Glob(filepath.Join(o.BinDir, "*"))
	if err != nil {
		return err
	}
	artifacts := pkgs
	for _, b := range bins {
		dst := filepath.Join(o.OutDir, filepath.Base(b))
		if err := copyFile(b, dst); err != nil {
			return err
		}
		artifacts = append(artifacts, dst)
	}
	if err := Seal(o.OutDir, o.Version, artifacts, key); err != nil {
		return err
	}
	for _, a := range artifacts {
		fi, err := os.Stat(a)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%10d  %s\n", fi.Size(), filepath.Base(a))
	}
	fmt.Fprintf(stdout, "release %s: %d artifacts, %s, %s signed (%s)\n", o.Version, len(artifacts), SumsFile, ManifestFile, SignatureFile)
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
