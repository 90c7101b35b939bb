package release

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager
)

// Formats and Arches are what a release packages.
var (
	Formats = []string{"deb", "rpm"}
	Arches  = []string{"amd64", "arm64"}
)

// Package is one of the packages a release builds.
type Package struct {
	Name        string // drover-agent or drover
	Binary      string // the program it installs as /usr/bin/Binary
	Description string
	Unit        string // deploy/systemd/UNIT
	Config      string // deploy/etc/CONFIG, installed in /etc/drover
	ConfigMode  os.FileMode
	Scripts     string // deploy/scripts/SCRIPTS-{postinst,prerm,postrm}.sh
}

// Packages are drover-agent and drover.
var Packages = []Package{
	{Name: "drover-agent", Binary: "drover-agent", Unit: "drover-agent.service", Config: "agent.yaml", ConfigMode: 0o600, Scripts: "agent",
		Description: "drover agent: executes the rolling-update and patch steps of a drover server on this node.\n" +
			"Runs as the systemd service drover-agent; configure it in /etc/drover/agent.yaml.\n" +
			"Its step journal, key and certificate live in /var/lib/drover (kept on upgrade and removal, deleted by purge)."},
	{Name: "drover", Binary: "drover", Unit: "drover.service", Config: "server.yaml", ConfigMode: 0o640, Scripts: "server",
		Description: "drover: rolling-update and patch orchestrator (server, CLI and dashboard).\n" +
			"Runs as the systemd service drover under its own user; configure it in /etc/drover/server.yaml.\n" +
			"Its data live in /var/lib/drover-server (kept on upgrade and removal, deleted by purge)."},
}

// Options say what to package and where.
type Options struct {
	Version string // the packages' version, e.g. 1.2.0 (a leading v is dropped)
	Root    string // the module root (deploy/ is read from it)
	BinDir  string // holds NAME-linux-ARCH for each package's binary and arch
	OutDir  string // where the packages are written
	// Only, Formats and Arches narrow what Build makes (nil: every
	// package, Formats, Arches); tests build only what they install.
	Only    []string
	Formats []string
	Arches  []string
	// MTime stamps every file of the packages (reproducible builds);
	// zero means SOURCE_DATE_EPOCH or now (nfpm's default).
	MTime time.Time
}

// Info is the nfpm description of p for format and arch.
func (o Options) Info(p Package, format, arch string) (*nfpm.Info, error) {
	deploy := filepath.Join(o.Root, "deploy")
	bin := filepath.Join(o.BinDir, p.Binary+"-linux-"+arch)
	for _, f := range []string{bin, filepath.Join(deploy, "systemd", p.Unit), filepath.Join(deploy, "etc", p.Config)} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("package %s %s/%s: %w", p.Name, format, arch, err)
		}
	}
	script := func(hook string) string { return filepath.Join(deploy, "scripts", p.Scripts+"-"+hook+".sh") }
	info := &nfpm.Info{
		Name: p.Name, Arch: arch, Platform: "linux", Version: strings.TrimPrefix(o.Version, "v"),
		Section: "admin", Priority: "optional", Maintainer: "drover maintainers <drover@drover.dev>",
		Description: p.Description, Vendor: "drover", Homepage: "https://github.com/drover-dev/drover",
		License: "Apache-2.0", MTime: o.MTime,
		Overridables: nfpm.Overridables{
			Contents: files.Contents{
				{Source: bin, Destination: "/usr/bin/" + p.Binary, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
				{Source: filepath.Join(deploy, "systemd", p.Unit), Destination: "/usr/lib/systemd/system/" + p.Unit,
					FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				// config|noreplace: a deb conffile; on rpm an edited file is
				// kept and the new default written beside it (.rpmnew).
				{Source: filepath.Join(deploy, "etc", p.Config), Destination: "/etc/drover/" + p.Config,
					Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: p.ConfigMode}},
			},
			Scripts: nfpm.Scripts{PostInstall: script("postinst"), PreRemove: script("prerm"), PostRemove: script("postrm")},
			Deb:     nfpm.Deb{Compression: "xz"},
			RPM:     nfpm.RPM{Compression: "xz", Summary: strings.SplitN(p.Description, "\n", 2)[0], Group: "System Environment/Daemons"},
		},
	}
	if p.Name == "drover" {
		info.Depends = []string{"passwd"} // useradd
		if format == "rpm" {
			info.Depends = []string{"shadow-utils"}
		}
	}
	return nfpm.WithDefaults(info), nil
}

// Build writes every package (Packages × Formats × Arches) into
// o.OutDir and returns their paths.
func Build(o Options) ([]string, error) {
	if o.Version == "" {
		return nil, errors.New("release: a version is required")
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	formats, arches := Formats, Arches
	if o.Formats != nil {
		formats = o.Formats
	}
	if o.Arches != nil {
		arches = o.Arches
	}
	var out []string
	for _, p := range Packages {
		if o.Only != nil && !slices.Contains(o.Only, p.Name) {
			continue
		}
		for _, format := range formats {
			for _, arch := range arches {
				path, err := o.build(p, format, arch)
				if err != nil {
					return out, err
				}
				out = append(out, path)
			}
		}
	}
	return out, nil
}

func (o Options) build(p Package, format, arch string) (path string, err error) {
	info, err := o.Info(p, format, arch)
	if err != nil {
		return "", err
	}
	packager, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	info.Target = filepath.Join(o.OutDir, packager.ConventionalFileName(info))
	f, err := os.Create(info.Target)
	if err != nil {
		return "", fmt.Errorf("package %s: %w", info.Target, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("package %s: %w", info.Target, cerr)
		}
		if err != nil {
			os.Remove(info.Target)
		}
	}()
	if err := packager.Package(info, f); err != nil {
		return "", fmt.Errorf("package %s %s/%s: %w", p.Name, format, arch, err)
	}
	return info.Target, nil
}
