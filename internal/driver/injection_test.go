package driver

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// Issue #14: plan values reached command lines through quoting checked
// by a blocklist. These tests and fuzz targets hold every command builder
// of every driver to the rule that replaced it: a value is refused by its
// plan.Ident allowlist (with a *plan.IdentError, before anything runs),
// or it reaches the tool verbatim as exactly one argv element (or, for
// PowerShell, one environment variable) while every other argument, the
// script text included, stays what it is for any other value.

// payloads are the values of the issue: PowerShell's typographic quotes
// (U+2018–U+201B), CR, LF, NUL, shell and PowerShell syntax, leading
// dashes, wildcards, very long strings.
func payloads() []string {
	return []string{
		"spooler’ ; Start-Process calc", "spooler‘ ; Start-Process calc", "spooler‚ ; Start-Process calc", "spooler‛ ; Start-Process calc",
		"spooler' ; Start-Process calc", "spooler\r; Start-Process calc", "spooler\n; Start-Process calc", "spooler\x00calc",
		"nginx;reboot", "nginx$(reboot)", "nginx`reboot`", "nginx && reboot", "--option=Dpkg::Pre-Invoke::=touch /tmp/x",
		"-oAPT::Get::AllowUnauthenticated=1", "--installroot=/tmp", "nginx*", "W3SVC?", "svc[ab]", "a/b", `a\b`,
		"KB5043050'; Start-Process calc; '", "KB5043050,1", "5043050", "nginx-", "!nginx", "@group", "../../etc/passwd",
		strings.Repeat("A", 70_000), "MSSQL$SQLEXPRESS", "nginx", "W3SVC", "KB5043050", "1.22.1-9+deb12u11",
	}
}

type recCall struct {
	Env  []string
	Name string
	Args []string
}

// recordRunner records every command and answers with answer (nil: exit
// status 1 for everything, so that a method stops after its first
// command).
type recordRunner struct {
	mu     sync.Mutex
	calls  []recCall
	answer func(name string, args []string) (string, error)
}

func (r *recordRunner) Run(_ context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, recCall{Env: slices.Clone(env), Name: name, Args: slices.Clone(args)})
	r.mu.Unlock()
	if r.answer == nil {
		return nil, nil, &ExitError{Code: 1, Stderr: "refused by the test"}
	}
	out, err := r.answer(name, args)
	return []byte(out), nil, err
}

// wantRefused fails unless err is (wraps) a *plan.IdentError.
func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	var ie *plan.IdentError
	if !errors.As(err, &ie) {
		t.Fatalf("%s: refused with %T %v, want a *plan.IdentError", what, err, err)
	}
}

// sameShape checks that got are the commands of want with the benign
// values replaced, and nothing else changed: an argument or environment
// entry of want equal to a key of subst must be subst's value in got;
// any other must be equal.
func sameShape(t *testing.T, want, got []recCall, subst map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d commands, want %d:\n got %q\nwant %q", len(got), len(want), got, want)
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Name != w.Name || len(g.Args) != len(w.Args) || len(g.Env) != len(w.Env) {
			t.Fatalf("command %d is %q, want the shape of %q", i, g, w)
		}
		for j := range w.Args {
			if v, ok := subst[w.Args[j]]; ok {
				if g.Args[j] != v {
					t.Fatalf("command %d argument %d is %q, want %q (verbatim)", i, j, g.Args[j], v)
				}
				if strings.HasPrefix(v, "-") {
					t.Fatalf("command %d argument %d: value %q would be read as an option", i, j, v)
				}
			} else if g.Args[j] != w.Args[j] {
				t.Fatalf("command %d argument %d changed with the value: %q, want %q", i, j, g.Args[j], w.Args[j])
			}
		}
		for j := range w.Env {
			if v, ok := subst[w.Env[j]]; ok {
				if g.Env[j] != v {
					t.Fatalf("command %d environment %d is %q, want %q", i, j, g.Env[j], v)
				}
			} else if g.Env[j] != w.Env[j] {
				t.Fatalf("command %d environment %d changed with the value: %q, want %q", i, j, g.Env[j], w.Env[j])
			}
		}
	}
}

// backendCalls calls every method of a package backend that builds a
// command from a package name or version, once each, and returns the
// commands.
func backendCalls(newDriver func(Runner) *PackageDriver, pin plan.PackagePin) []recCall {
	ctx := context.Background()
	r := &recordRunner{}
	b := newDriver(r).b
	_, _ = b.installed(ctx, pin.Name)
	_, _ = b.available(ctx, pin.Name)
	_, _ = b.downloadSize(ctx, pin)
	_ = b.install(ctx, []pkgChange{{Pin: pin, From: "absent"}})
	_ = b.install(ctx, []pkgChange{{Pin: pin, From: "99:99-99", Present: true}}) // a downgrade
	_ = b.remove(ctx, []string{pin.Name})
	if b.multiVersion() {
		_ = b.removeVersions(ctx, []plan.PackagePin{pin})
	}
	_, _ = b.held(ctx, []string{pin.Name})
	_ = b.hold(ctx, []plan.PackagePin{pin})
	_ = b.unhold(ctx, []string{pin.Name})
	return r.calls
}

// checkPackageArgv is the property of FuzzAptArgs, FuzzDNFArgs and
// FuzzZypperArgs: the driver refuses the pin, or every backend command
// has the pin's name, or spec(name, version), verbatim as one argument.
func checkPackageArgv(t *testing.T, newDriver func(Runner) *PackageDriver, name, version string, spec func(n, v string) string) {
	pin := plan.PackagePin{Name: name, Version: version}
	a := plan.Action{Name: "fuzz", Package: &plan.PackageAction{Operation: plan.PackageInstall, Packages: []plan.PackagePin{pin}}}
	r := &recordRunner{}
	if _, err := newDriver(r).Apply(context.Background(), a); err != nil && newDriver(nil).checkPin(pin) != nil {
		wantRefused(t, "pin "+plan.QuoteValue(name)+"="+plan.QuoteValue(version), err)
		if len(r.calls) > 0 {
			t.Fatalf("refused pin ran %q", r.calls)
		}
		return
	}
	benign := plan.PackagePin{Name: "zzbenign", Version: "9.9~zz"}
	sameShape(t, backendCalls(newDriver, benign), backendCalls(newDriver, pin), map[string]string{
		benign.Name: name, spec(benign.Name, benign.Version): spec(name, version),
	})
}

func nameEqVersion(n, v string) string   { return n + "=" + v }
func nameDashVersion(n, v string) string { return n + "-" + v }

func FuzzAptArgs(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p, "1.0-1")
		f.Add("nginx", p)
	}
	f.Fuzz(func(t *testing.T, name, version string) {
		checkPackageArgv(t, func(r Runner) *PackageDriver { return NewApt(r, AptOptions{FS: fakeFS{}}) }, name, version, nameEqVersion)
		if err := plan.DebianPackage.Check(name); err == nil && plan.DebianVersion.Check(version) == nil {
			// apt splits NAME=VERSION at its first '=': neither holds one.
			if n, v, _ := strings.Cut(nameEqVersion(name, version), "="); n != name || v != version {
				t.Fatalf("apt would read %q=%q as %q=%q", name, version, n, v)
			}
		}
	})
}

func FuzzDNFArgs(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p, "1.0-1.el9")
		f.Add("kernel-core", p)
	}
	f.Fuzz(func(t *testing.T, name, version string) {
		checkPackageArgv(t, func(r Runner) *PackageDriver { return NewDNF(r, DNFOptions{}) }, name, version, nameDashVersion)
	})
}

func FuzzZypperArgs(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p, "1.0-1.1")
		f.Add("kernel-default", p)
	}
	f.Fuzz(func(t *testing.T, name, version string) {
		checkPackageArgv(t, func(r Runner) *PackageDriver { return NewZypper(r, ZypperOptions{}) }, name, version, nameEqVersion)
	})
}

// serviceCalls runs every method of the service driver for a service.
func serviceCalls(windows bool, service string) ([]recCall, error) {
	ctx := context.Background()
	r := &recordRunner{answer: func(string, []string) (string, error) { return "", nil }}
	d := NewService(r, windows)
	a := plan.Action{Name: "fuzz", ServiceRestart: &plan.ServiceRestartAction{Service: service}}
	_, err := d.Preflight(ctx, a)
	_, _ = d.Apply(ctx, a)
	_ = d.Verify(ctx, a)
	_, _ = d.Rollback(ctx, a, Snapshot{})
	return r.calls, err
}

func FuzzSystemctlCommand(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, unit string) {
		got, err := serviceCalls(false, unit)
		if plan.SystemdUnit.Check(unit) != nil {
			wantRefused(t, "unit "+plan.QuoteValue(unit), err)
			if len(got) > 0 {
				t.Fatalf("refused unit ran %q", got)
			}
			if _, err := SystemctlCommand(unit, "is-active"); err == nil {
				t.Fatal("the probes' builder accepts what the driver refuses")
			}
			return
		}
		want, _ := serviceCalls(false, "zzbenign.service")
		sameShape(t, want, got, map[string]string{"zzbenign.service": unit})
		c, err := SystemctlCommand(unit, "is-active")
		if err != nil || !slices.Equal(c.Args, []string{"is-active", unit}) || c.Env != nil {
			t.Fatalf("probe command %q %v", c, err)
		}
	})
}

func FuzzWindowsServiceCommand(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := serviceCalls(true, name)
		if plan.WindowsService.Check(name) != nil {
			wantRefused(t, "service "+plan.QuoteValue(name), err)
			if len(got) > 0 {
				t.Fatalf("refused service ran %q", got)
			}
			return
		}
		want, _ := serviceCalls(true, "zzbenign")
		sameShape(t, want, got, map[string]string{"DROVER_SERVICE=zzbenign": "DROVER_SERVICE=" + name})
		for _, op := range []ServiceOp{ServiceExists, ServiceStatus, ServiceRestart} {
			c, err := WindowsServiceCommand(op, name)
			if err != nil || len(c.Env) != 1 || c.Env[0] != "DROVER_SERVICE="+name {
				t.Fatalf("%s: %q %v", op, c, err)
			}
		}
	})
}

// winUpdateCalls runs every method of the Windows Update driver for a KB.
func winUpdateCalls(kb string) ([]recCall, error) {
	ctx := context.Background()
	r := &recordRunner{answer: func(name string, _ []string) (string, error) {
		if name == "wusa.exe" {
			return "", nil
		}
		return `{"available":[],"installed":[],"build":"20348.2655","rebootPending":false}`, nil
	}}
	d := NewWindowsUpdate(r)
	a := plan.Action{Name: "fuzz", Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: kb, Version: "20348.2700"}}}}
	_, err := d.Preflight(ctx, a)
	_, _ = d.Snapshot(ctx, a)
	_, _ = d.Apply(ctx, a)
	_ = d.Verify(ctx, a)
	snap, _ := json.Marshal(map[string]any{"installed": []string{}})
	_, _ = d.Rollback(ctx, a, Snapshot{Driver: "windows-update", Data: snap})
	return r.calls, err
}

func FuzzWindowsUpdateCommand(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, kb string) {
		got, err := winUpdateCalls(kb)
		if plan.WindowsKB.Check(kb) != nil {
			wantRefused(t, "KB "+plan.QuoteValue(kb), err)
			if len(got) > 0 {
				t.Fatalf("refused KB ran %q", got)
			}
			return
		}
		want, _ := winUpdateCalls("KB1234567")
		n := strings.TrimPrefix(kb, "KB")
		sameShape(t, want, got, map[string]string{"DROVER_KBS=1234567": "DROVER_KBS=" + n, "/kb:1234567": "/kb:" + n})
	})
}

// The scripts are constants: no value is ever formatted into them.
func TestPowerShellScriptsFixed(t *testing.T) {
	for _, script := range []string{psServiceExists, psServiceStatus, psServiceRestart, wuQueryScript, wuInstallScript} {
		if strings.Contains(script, "%[") || strings.Contains(script, "%s") {
			t.Errorf("script %q has a format verb", firstLine(script))
		}
	}
	c, err := WindowsServiceCommand(ServiceRestart, "MSSQL$SQLEXPRESS")
	want := []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", psServiceRestart}
	if err != nil || c.Name != "powershell.exe" || !slices.Equal(c.Args, want) || !slices.Equal(c.Env, []string{"DROVER_SERVICE=MSSQL$SQLEXPRESS"}) {
		t.Fatalf("got %q %v", c, err)
	}
	if !strings.Contains(psServiceRestart, "Restart-Service -Name $name") || !strings.Contains(psServicePrologue, "$name = $env:DROVER_SERVICE") {
		t.Fatalf("the restart script does not read the name from DROVER_SERVICE:\n%s", psServiceRestart)
	}
	c, err = windowsUpdateCommand(wuQueryScript, []string{"KB5043050", "KB5044281"})
	if err != nil || c.Args[len(c.Args)-1] != wuQueryScript || !slices.Equal(c.Env, []string{"DROVER_KBS=5043050,5044281"}) {
		t.Fatalf("got %q %v", c, err)
	}
	if _, err := WindowsServiceCommand(ServiceRestart, "spooler’ ; Start-Process calc"); err == nil ||
		err.Error() != `"spooler’ ; Start-Process calc": character U+2019 not allowed in a Windows service name` {
		t.Fatalf("got %v", err)
	}
}

func TestServiceDriverCommands(t *testing.T) {
	got, err := serviceCalls(false, "nginx")
	want := []recCall{
		{Name: "systemctl", Args: []string{"show", "--property=LoadState", "--value", "nginx"}},
		{Name: "systemctl", Args: []string{"restart", "nginx"}},
		{Name: "systemctl", Args: []string{"is-active", "nginx"}},
		{Name: "systemctl", Args: []string{"restart", "nginx"}},
	}
	if err != nil {
		t.Fatal(err)
	}
	sameShape(t, want, got, nil)
	got, err = serviceCalls(true, "W3SVC")
	env := []string{"DROVER_SERVICE=W3SVC"}
	ps := func(script string) recCall {
		return recCall{Env: env, Name: "powershell.exe", Args: powerShell(script).Args}
	}
	if err != nil {
		t.Fatal(err)
	}
	sameShape(t, []recCall{ps(psServiceExists), ps(psServiceRestart), ps(psServiceStatus), ps(psServiceRestart)}, got, nil)
	for _, bad := range []string{"spooler’ ; Start-Process calc", "spooler\r; Start-Process calc", "W3SVC*"} {
		got, err := serviceCalls(true, bad)
		wantRefused(t, bad, err)
		if len(got) > 0 {
			t.Fatalf("%q ran %q", bad, got)
		}
	}
}

// softwareUpdateCalls applies a pin named name, offered by
// softwareupdate --list under label.
func softwareUpdateCalls(name, label string) ([]recCall, error) {
	r := &recordRunner{answer: func(cmd string, args []string) (string, error) {
		switch {
		case cmd == "sw_vers":
			return "13.0\n", nil
		case slices.Equal(args, []string{"--list"}):
			return "Software Update Tool\n\nFinding available software\nSoftware Update found the following new or updated software:\n* Label: " + label +
				"\n\tTitle: " + name + ", Version: 1.0, Size: 1024KiB, Recommended: YES, Action: restart,\n", nil
		}
		return "", nil
	}}
	a := plan.Action{Name: "fuzz", Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: name, Version: "1.0"}}}}
	_, err := NewSoftwareUpdate(r).Apply(context.Background(), a)
	return r.calls, err
}

func FuzzSoftwareUpdateArgs(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p, "Safari17.6VenturaAuto-17.6")
		f.Add("Safari", p)
	}
	f.Fuzz(func(t *testing.T, name, label string) {
		calls, err := softwareUpdateCalls(name, label)
		if plan.MacOSUpdate.Check(name) != nil {
			wantRefused(t, "update "+plan.QuoteValue(name), err)
			if len(calls) > 0 {
				t.Fatalf("refused update ran %q", calls)
			}
			return
		}
		for _, c := range calls {
			if c.Name != "softwareupdate" || c.Args[0] != "--install" {
				continue
			}
			if len(c.Args) != 2 || plan.MacOSUpdate.Check(c.Args[1]) != nil {
				t.Fatalf("installs %q", c.Args)
			}
		}
	})
}

// livePatchCalls rolls back a kpatch patch id that kpatch lists as
// loaded, recording the commands and the files read.
func livePatchCalls(id string) ([]recCall, []string, error) {
	r := &recordRunner{answer: func(cmd string, args []string) (string, error) {
		if slices.Equal(args, []string{"list"}) {
			return "Loaded patch modules:\n" + kpatchModule(id) + " [enabled]\n\nInstalled patch modules:\n", nil
		}
		return "", nil
	}}
	var read []string
	fs := readRecorder(func(name string) { read = append(read, name) })
	d := NewLivePatch(r, nil, fs)
	a := plan.Action{Name: "fuzz", LivePatch: &plan.LivePatchAction{ID: id}}
	_ = d.Verify(context.Background(), a)
	_, err := d.Rollback(context.Background(), a, Snapshot{Driver: "livepatch", Data: []byte(`{"applied":false}`)})
	return r.calls, read, err
}

type readRecorder func(name string)

func (f readRecorder) ReadFile(name string) ([]byte, error) {
	f(name)
	return []byte("1\n"), nil
}

func FuzzLivePatchArgs(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, id string) {
		calls, read, err := livePatchCalls(id)
		if plan.LivePatchID.Check(id) != nil {
			wantRefused(t, "patch "+plan.QuoteValue(id), err)
			if len(calls)+len(read) > 0 {
				t.Fatalf("refused id ran %q, read %q", calls, read)
			}
			return
		}
		mod := kpatchModule(id)
		for _, c := range calls {
			if c.Name == "kpatch" && c.Args[0] == "unload" && !slices.Equal(c.Args, []string{"unload", mod}) {
				t.Fatalf("unloads %q", c.Args)
			}
		}
		for _, p := range read {
			if p != "/sys/kernel/livepatch/"+mod+"/enabled" || strings.Contains(mod, "/") || mod == ".." {
				t.Fatalf("reads %q", p)
			}
		}
	})
}

func FuzzScriptArgs(f *testing.F) {
	for _, p := range payloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		for _, path := range []string{"/var/lib/drover/artifacts/rotate.sh", `C:\drover\artifacts\rotate.cmd`} {
			c, err := scriptCommand(path, "rotate", []string{"--fast", arg})
			if err != nil {
				wantRefused(t, "argument "+plan.QuoteValue(arg), err)
				continue
			}
			if c.Name != path || !slices.Equal(c.Args, []string{"--fast", arg}) || !slices.Equal(c.Env, []string{"DROVER_ARTIFACT=rotate"}) {
				t.Fatalf("got %q", c)
			}
			if strings.HasSuffix(path, ".cmd") && strings.ContainsAny(arg, `"%!&|<>^`) {
				t.Fatalf("batch file gets %q", arg)
			}
		}
	})
}

// The Kubernetes driver talks to the API, not to a command line, but its
// node name goes into paths and field selectors: it is checked first
// (a nil API would panic if reached).
func TestKubernetesNodeName(t *testing.T) {
	a := plan.Action{Name: "drain", KubernetesNode: &plan.KubernetesNodeAction{Drain: true}}
	for _, name := range []string{"n1/../../namespaces", "n1,metadata.name!=x", "N1", "-n1"} {
		_, err := NewKubernetesNode(nil, KubernetesOptions{NodeName: name}).Preflight(context.Background(), a)
		wantRefused(t, name, err)
	}
	_, err := NewKubernetesNode(nil, KubernetesOptions{Hostname: func() (string, error) { return "web_1.example.com", nil }}).Preflight(context.Background(), a)
	wantRefused(t, "host name web_1", err)
}
