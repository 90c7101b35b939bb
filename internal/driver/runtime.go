package driver

import (
	"context"
	"fmt"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// RuntimeOptions configures the container runtime driver.
type RuntimeOptions struct {
	// Packages maps a runtime (containerd, docker, cri-o) to its package
	// name on this node; defaults containerd, docker-ce, cri-o.
	Packages map[string]string
}

// ContainerRuntime upgrades containerd, docker or cri-o through the node's
// package driver, restarts the service and checks the runtime answers at
// the new version (ctr version, docker version, crictl version).
// ContainerRuntimeAction.Version is the package version to pin; the
// runtime must report its upstream part (1.7.20 for 1.7.20-1 or
// 5:27.1.1-1~debian.12~bookworm's 27.1.1). Rollback is the package
// driver's rollback followed by the same restart and check.
type ContainerRuntime struct {
	r    Runner
	pkgs Driver
	opts RuntimeOptions
}

var _ Driver = (*ContainerRuntime)(nil)

// NewContainerRuntime returns the driver; pkgs is the node family's package
// driver (NewApt, NewDNF, NewZypper).
func NewContainerRuntime(r Runner, pkgs Driver, opts RuntimeOptions) *ContainerRuntime {
	return &ContainerRuntime{r: r, pkgs: pkgs, opts: opts}
}

// Name is "container-runtime".
func (c *ContainerRuntime) Name() string { return "container-runtime" }

type runtimeSpec struct {
	pkg, unit string
	version   []string // command answering the server version
}

func (c *ContainerRuntime) spec(a plan.Action) (runtimeSpec, plan.Action, error) {
	ra := a.ContainerRuntime
	if ra == nil {
		return runtimeSpec{}, plan.Action{}, fmt.Errorf("container-runtime: action %q is not a container-runtime action: %w", a.Name, ErrUnsupported)
	}
	var s runtimeSpec
	switch ra.Runtime {
	case "containerd":
		s = runtimeSpec{pkg: "containerd", unit: "containerd", version: []string{"ctr", "version"}}
	case "docker":
		s = runtimeSpec{pkg: "docker-ce", unit: "docker", version: []string{"docker", "version", "--format", "{{.Server.Version}}"}}
	case "cri-o":
		s = runtimeSpec{pkg: "cri-o", unit: "crio", version: []string{"crictl", "version"}}
	default:
		return runtimeSpec{}, plan.Action{}, fmt.Errorf("container-runtime: unknown runtime %q: %w", ra.Runtime, ErrUnsupported)
	}
	if p := c.opts.Packages[ra.Runtime]; p != "" {
		s.pkg = p
	}
	pa := plan.Action{Name: a.Name, Package: &plan.PackageAction{
		Operation: plan.PackageInstall,
		Packages:  []plan.PackagePin{{Name: s.pkg, Version: ra.Version}},
	}}
	return s, pa, nil
}

// Preflight is the package driver's preflight of the pinned package.
func (c *ContainerRuntime) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	_, pa, err := c.spec(a)
	if err != nil {
		return Change{}, err
	}
	return c.pkgs.Preflight(ctx, pa)
}

// Snapshot is the package driver's snapshot of the runtime package.
func (c *ContainerRuntime) Snapshot(ctx context.Context, a plan.Action) (Snapshot, error) {
	_, pa, err := c.spec(a)
	if err != nil {
		return Snapshot{}, err
	}
	return c.pkgs.Snapshot(ctx, pa)
}

// Apply installs the pinned package, restarts the runtime when the package
// changed, and checks it answers at the pinned version.
func (c *ContainerRuntime) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	s, pa, err := c.spec(a)
	if err != nil {
		return Outcome{}, err
	}
	out, err := c.pkgs.Apply(ctx, pa)
	if err != nil {
		return Outcome{}, err
	}
	if len(out.Changed) > 0 {
		if err := c.restart(ctx, s); err != nil {
			return out, err
		}
	}
	v, err := c.serverVersion(ctx, s)
	if err != nil {
		return out, err
	}
	if !sameUpstream(a.ContainerRuntime.Version, v) {
		return out, fmt.Errorf("container-runtime: %s reports version %s after installing %s %s", a.ContainerRuntime.Runtime, v, s.pkg, a.ContainerRuntime.Version)
	}
	out.Summary += fmt.Sprintf("; %s answers, version %s", a.ContainerRuntime.Runtime, v)
	return out, nil
}

func (c *ContainerRuntime) restart(ctx context.Context, s runtimeSpec) error {
	if _, _, err := c.r.Run(ctx, nil, "systemctl", "restart", s.unit); err != nil {
		return fmt.Errorf("container-runtime: systemctl restart %s: %w", s.unit, err)
	}
	return nil
}

// serverVersion asks the running runtime its version.
func (c *ContainerRuntime) serverVersion(ctx context.Context, s runtimeSpec) (string, error) {
	stdout, _, err := c.r.Run(ctx, nil, s.version[0], s.version[1:]...)
	if err != nil {
		return "", fmt.Errorf("container-runtime: %s does not answer: %w", commandLine(s.version[0], s.version[1:]...), err)
	}
	v, err := parseRuntimeVersion(s.version[0], string(stdout))
	if err != nil {
		return "", fmt.Errorf("container-runtime: %s: %w", commandLine(s.version[0], s.version[1:]...), err)
	}
	return v, nil
}

// parseRuntimeVersion reads the server's version: "Version:" under
// "Server:" of ctr version, RuntimeVersion of crictl version, the single
// line of docker version --format.
func parseRuntimeVersion(tool, out string) (string, error) {
	switch tool {
	case "docker":
		v := strings.TrimSpace(out)
		if v == "" || strings.ContainsAny(v, " \n") {
			return "", fmt.Errorf("malformed docker version output %q", firstLine(out))
		}
		return v, nil
	case "crictl":
		for line := range strings.SplitSeq(out, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "RuntimeVersion:"); ok && strings.TrimSpace(v) != "" {
				return strings.TrimSpace(v), nil
			}
		}
		return "", fmt.Errorf("no RuntimeVersion in crictl version output %q", firstLine(out))
	}
	server := false
	for line := range strings.SplitSeq(out, "\n") {
		t := strings.TrimSpace(line)
		if t == "Server:" {
			server = true
		}
		if v, ok := strings.CutPrefix(t, "Version:"); ok && server && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no server Version in ctr version output %q", firstLine(out))
}

// sameUpstream reports whether a package version (epoch and revision
// allowed) carries the runtime's reported version.
func sameUpstream(pkgVersion, reported string) bool {
	reported = strings.TrimPrefix(reported, "v")
	up := pkgVersion
	if _, after, ok := strings.Cut(up, ":"); ok {
		up = after
	}
	if up == reported {
		return true
	}
	if i := strings.LastIndex(up, "-"); i > 0 && up[:i] == reported {
		return true
	}
	for _, sep := range []string{"-", "~", "+"} {
		if before, _, ok := strings.Cut(up, sep); ok && before == reported {
			return true
		}
	}
	return false
}

// Verify checks the package is at its pin and the runtime answers at it.
func (c *ContainerRuntime) Verify(ctx context.Context, a plan.Action) error {
	s, pa, err := c.spec(a)
	if err != nil {
		return err
	}
	if err := c.pkgs.Verify(ctx, pa); err != nil {
		return err
	}
	v, err := c.serverVersion(ctx, s)
	if err != nil {
		return err
	}
	if !sameUpstream(a.ContainerRuntime.Version, v) {
		return fmt.Errorf("container-runtime: verify: %s reports %s, want %s", a.ContainerRuntime.Runtime, v, a.ContainerRuntime.Version)
	}
	return nil
}

// Rollback downgrades the package to the snapshot, restarts the runtime
// and checks it answers.
func (c *ContainerRuntime) Rollback(ctx context.Context, a plan.Action, snap Snapshot) (Outcome, error) {
	s, pa, err := c.spec(a)
	if err != nil {
		return Outcome{}, err
	}
	out, err := c.pkgs.Rollback(ctx, pa, snap)
	if err != nil {
		return Outcome{}, err
	}
	if len(out.Changed) > 0 {
		if err := c.restart(ctx, s); err != nil {
			return out, err
		}
	}
	if _, err := c.serverVersion(ctx, s); err != nil {
		return out, err
	}
	return out, nil
}
