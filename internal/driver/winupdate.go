package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// WindowsUpdate installs and removes Windows updates by KB through the
// Windows Update Agent COM API, driven by PowerShell whose output is JSON.
// A pin is {Name: "KB5043050", Version: OS build "20348.2700"}; Version may
// be empty. A cumulative update is made for one Windows release, so a pin
// whose Version names a build applies only to nodes running that build
// (20348 is Server 2022, 17763 Server 2019): a plan lists one KB per
// release and each node installs its own; a node for which the plan has
// no KB fails its preflight rather than succeed with nothing installed.
// Installation searches "IsInstalled=0 and Type='Software'",
// downloads and installs the matching updates with UpdateInstaller (result
// codes 2 succeeded, 3 succeeded with errors, 4 failed, 5 aborted);
// rollback runs wusa.exe /uninstall /kb:N /quiet /norestart. A pending
// reboot is read from the registry (WindowsUpdate\Auto Update\
// RebootRequired, Component Based Servicing\RebootPending).
type WindowsUpdate struct{ r Runner }

var _ Driver = (*WindowsUpdate)(nil)

// NewWindowsUpdate returns the Windows Update driver.
func NewWindowsUpdate(r Runner) *WindowsUpdate { return &WindowsUpdate{r: r} }

// Name is "windows-update".
func (w *WindowsUpdate) Name() string { return "windows-update" }

func (w *WindowsUpdate) pins(a plan.Action) ([]plan.PackagePin, error) {
	if a.Package == nil {
		return nil, fmt.Errorf("windows-update: action %q is not a package action: %w", a.Name, ErrUnsupported)
	}
	pins := a.Package.Packages
	if f, ok := a.Package.Families["windows"]; ok {
		pins = f
	}
	if len(pins) == 0 {
		return nil, fmt.Errorf("windows-update: action %q pins no KBs", a.Name)
	}
	for _, p := range pins {
		if err := plan.WindowsKB.Check(p.Name); err != nil {
			return nil, fmt.Errorf("windows-update: invalid KB: %w", err)
		}
		if p.Version != "" {
			if err := plan.WindowsBuild.Check(p.Version); err != nil {
				return nil, fmt.Errorf("windows-update: %s: invalid build: %w", p.Name, err)
			}
		}
	}
	return pins, nil
}

// forBuild keeps the pins that apply to a node running build ("20348.2655",
// CurrentBuild.UBR): those naming no build and those naming the same
// CurrentBuild. None left is ErrUnavailable.
func forBuild(pins []plan.PackagePin, build string) ([]plan.PackagePin, error) {
	var keep []plan.PackagePin
	var other []string
	for _, p := range pins {
		if p.Version == "" || build == "" || releaseOf(p.Version) == releaseOf(build) {
			keep = append(keep, p)
			continue
		}
		other = append(other, p.Name+" ("+releaseOf(p.Version)+")")
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("windows-update: no KB of the plan is for this node's build %s: %s: %w", releaseOf(build), strings.Join(other, ", "), ErrUnavailable)
	}
	return keep, nil
}

// releaseOf is the CurrentBuild of a build, the number before the update
// build revision: 20348 of "10.0.20348.2700" and of "20348.2655".
func releaseOf(build string) string {
	parts := strings.Split(build, ".")
	if len(parts) < 2 {
		return build
	}
	return parts[len(parts)-2]
}

// kbEnv is the environment variable holding the KB numbers, digits only,
// comma-separated ("5043050,5044281").
const kbEnv = "DROVER_KBS"

// windowsUpdateCommand is the PowerShell command running script (the
// query or install script) for the KBs, plan.WindowsKB ids passed in
// DROVER_KBS as their numbers.
func windowsUpdateCommand(script string, kbs []string) (Command, error) {
	nums := make([]string, len(kbs))
	for i, kb := range kbs {
		if err := plan.WindowsKB.Check(kb); err != nil {
			return Command{}, err
		}
		nums[i] = strings.TrimPrefix(kb, "KB")
	}
	return powerShell(script, kbEnv+"="+strings.Join(nums, ",")), nil
}

// The scripts' first line names them in command lines and transcripts.
// They read the KB numbers from DROVER_KBS, never from their own text.
const psKBPrologue = `$ErrorActionPreference = 'Stop'
if (-not $env:DROVER_KBS) { throw 'DROVER_KBS is not set' }
$kbs = @($env:DROVER_KBS -split ',')
`

const wuQueryScript = "# drover wu-query\n" + psKBPrologue + `$s = New-Object -ComObject Microsoft.Update.Session
$searcher = $s.CreateUpdateSearcher()
$avail = @($searcher.Search("IsInstalled=0 and Type='Software'").Updates | ForEach-Object { $u = $_; $u.KBArticleIDs | Where-Object { $kbs -contains $_ } | ForEach-Object { [pscustomobject]@{ kb = 'KB' + $_; title = $u.Title; maxDownloadSize = [int64]$u.MaxDownloadSize; rebootBehavior = $u.InstallationBehavior.RebootBehavior } } })
$inst = @($searcher.Search("IsInstalled=1 and Type='Software'").Updates | ForEach-Object { $_.KBArticleIDs } | Where-Object { $kbs -contains $_ } | ForEach-Object { 'KB' + $_ })
$inst += @(Get-HotFix -ErrorAction SilentlyContinue | Where-Object { $kbs -contains $_.HotFixID.Substring(2) } | ForEach-Object { $_.HotFixID })
$cv = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
$reboot = (Test-Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired') -or (Test-Path 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending')
[pscustomobject]@{ available = $avail; installed = @($inst | Sort-Object -Unique); build = "$($cv.CurrentBuild).$($cv.UBR)"; rebootPending = $reboot } | ConvertTo-Json -Depth 4 -Compress`

const wuInstallScript = "# drover wu-install\n" + psKBPrologue + `$s = New-Object -ComObject Microsoft.Update.Session
$todo = New-Object -ComObject Microsoft.Update.UpdateColl
$s.CreateUpdateSearcher().Search("IsInstalled=0 and Type='Software'").Updates | Where-Object { @($_.KBArticleIDs | Where-Object { $kbs -contains $_ }).Count -gt 0 } | ForEach-Object { if (-not $_.EulaAccepted) { $_.AcceptEula() }; [void]$todo.Add($_) }
if ($todo.Count -eq 0) { [pscustomobject]@{ resultCode = 2; rebootRequired = $false; updates = @() } | ConvertTo-Json -Depth 4 -Compress; exit 0 }
$dl = $s.CreateUpdateDownloader(); $dl.Updates = $todo; [void]$dl.Download()
$inst = $s.CreateUpdateInstaller(); $inst.Updates = $todo
$r = $inst.Install()
$ups = for ($i = 0; $i -lt $todo.Count; $i++) { $ur = $r.GetUpdateResult($i); [pscustomobject]@{ kb = 'KB' + ($todo.Item($i).KBArticleIDs | Select-Object -First 1); title = $todo.Item($i).Title; resultCode = $ur.ResultCode; hresult = $ur.HResult } }
[pscustomobject]@{ resultCode = $r.ResultCode; rebootRequired = $r.RebootRequired; updates = @($ups) } | ConvertTo-Json -Depth 4 -Compress`

// wuQuery is the query script's JSON.
type wuQuery struct {
	Available []struct {
		KB              string `json:"kb"`
		Title           string `json:"title"`
		MaxDownloadSize int64  `json:"maxDownloadSize"`
	} `json:"available"`
	Installed     []string `json:"installed"`
	Build         string   `json:"build"`
	RebootPending bool     `json:"rebootPending"`
}

// wuInstallResult is the install script's JSON.
type wuInstallResult struct {
	ResultCode     int  `json:"resultCode"`
	RebootRequired bool `json:"rebootRequired"`
	Updates        []struct {
		KB         string `json:"kb"`
		Title      string `json:"title"`
		ResultCode int    `json:"resultCode"`
		HResult    int64  `json:"hresult"`
	} `json:"updates"`
}

// wuResult names WUA OperationResultCode values.
func wuResult(code int) string {
	switch code {
	case 0:
		return "not started"
	case 1:
		return "in progress"
	case 2:
		return "succeeded"
	case 3:
		return "succeeded with errors"
	case 4:
		return "failed"
	case 5:
		return "aborted"
	}
	return fmt.Sprintf("unknown result %d", code)
}

// powershell runs script for the KBs and decodes its JSON output into v.
func (w *WindowsUpdate) powershell(ctx context.Context, script string, pins []plan.PackagePin, v any) error {
	name := strings.TrimPrefix(firstLine(script), "# drover ") + " " + strings.Join(pinNames(pins), ",")
	c, err := windowsUpdateCommand(script, pinNames(pins))
	if err != nil {
		return fmt.Errorf("windows-update: %s: %w", name, err)
	}
	stdout, _, err := c.Run(ctx, w.r)
	if err != nil {
		return fmt.Errorf("windows-update: %s: %w", name, err)
	}
	// PowerShell 5 emits a single-element array as the element itself.
	if err := json.Unmarshal(stdout, v); err != nil {
		return fmt.Errorf("windows-update: %s: malformed JSON output %q: %w", name, firstLine(string(stdout)), err)
	}
	return nil
}

func (w *WindowsUpdate) query(ctx context.Context, pins []plan.PackagePin) (wuQuery, error) {
	var q wuQuery
	err := w.powershell(ctx, wuQueryScript, pins, &q)
	return q, err
}

// Preflight requires each KB installed or offered by Windows Update.
func (w *WindowsUpdate) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	pins, err := w.pins(a)
	if err != nil {
		return Change{}, err
	}
	q, err := w.query(ctx, pins)
	if err != nil {
		return Change{}, err
	}
	if pins, err = forBuild(pins, q.Build); err != nil {
		return Change{}, err
	}
	var items []ChangeItem
	for _, p := range pins {
		if containsString(q.Installed, p.Name) {
			continue
		}
		offered := false
		for _, u := range q.Available {
			offered = offered || u.KB == p.Name
		}
		if !offered {
			return Change{}, fmt.Errorf("windows-update: %s is neither installed nor offered by Windows Update: %w", p.Name, ErrUnavailable)
		}
		items = append(items, ChangeItem{Name: p.Name, From: "build " + q.Build, To: p.Version})
	}
	if len(items) == 0 {
		return Change{Summary: "all KBs already installed", None: true}, nil
	}
	return Change{Summary: fmt.Sprintf("would install %d updates", len(items)), Items: items}, nil
}

// Snapshot records which KBs were installed before (those absent are
// uninstalled by Rollback).
func (w *WindowsUpdate) Snapshot(ctx context.Context, a plan.Action) (Snapshot, error) {
	pins, err := w.pins(a)
	if err != nil {
		return Snapshot{}, err
	}
	q, err := w.query(ctx, pins)
	if err != nil {
		return Snapshot{}, err
	}
	raw, err := json.Marshal(map[string]any{"installed": q.Installed, "build": q.Build})
	if err != nil {
		return Snapshot{}, fmt.Errorf("windows-update: encode snapshot: %w", err)
	}
	return Snapshot{Driver: w.Name(), Summary: "build " + q.Build + ", installed: " + orNone(strings.Join(q.Installed, ", ")), Data: raw}, nil
}

// Apply installs the KBs not yet installed.
func (w *WindowsUpdate) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	pins, err := w.pins(a)
	if err != nil {
		return Outcome{}, err
	}
	q, err := w.query(ctx, pins)
	if err != nil {
		return Outcome{}, err
	}
	if pins, err = forBuild(pins, q.Build); err != nil {
		return Outcome{}, err
	}
	var todo []plan.PackagePin
	for _, p := range pins {
		if !containsString(q.Installed, p.Name) {
			todo = append(todo, p)
		}
	}
	if len(todo) == 0 {
		return Outcome{Summary: "all KBs already installed", RebootRequired: q.RebootPending}, nil
	}
	var r wuInstallResult
	if err := w.powershell(ctx, wuInstallScript, todo, &r); err != nil {
		return Outcome{}, err
	}
	var out Outcome
	var failed []string
	for _, u := range r.Updates {
		if u.ResultCode == 2 || u.ResultCode == 3 {
			out.Changed = append(out.Changed, ChangeItem{Name: u.KB, To: "installed"})
			continue
		}
		failed = append(failed, fmt.Sprintf("%s %s (0x%08X)", u.KB, wuResult(u.ResultCode), uint32(u.HResult)))
	}
	out.RebootRequired = r.RebootRequired
	if len(failed) > 0 || (r.ResultCode != 2 && r.ResultCode != 3) {
		return out, fmt.Errorf("windows-update: install %s: %s", wuResult(r.ResultCode), orNone(strings.Join(failed, "; ")))
	}
	out.Summary = fmt.Sprintf("installed %d updates (%s)", len(out.Changed), wuResult(r.ResultCode))
	return out, nil
}

// Verify checks every KB is installed and, when no reboot is pending and
// the pin names a build, that the OS runs that build.
func (w *WindowsUpdate) Verify(ctx context.Context, a plan.Action) error {
	pins, err := w.pins(a)
	if err != nil {
		return err
	}
	q, err := w.query(ctx, pins)
	if err != nil {
		return err
	}
	if pins, err = forBuild(pins, q.Build); err != nil {
		return err
	}
	for _, p := range pins {
		if !containsString(q.Installed, p.Name) {
			return fmt.Errorf("windows-update: verify: %s not installed", p.Name)
		}
		if p.Version != "" && !q.RebootPending && !sameBuild(q.Build, p.Version) {
			return fmt.Errorf("windows-update: verify: %s installed but the OS runs build %s, want %s", p.Name, q.Build, p.Version)
		}
	}
	return nil
}

// sameBuild reports whether the build the OS runs (CurrentBuild.UBR,
// "20348.3091") is the one a pin names, in that form or in the full
// form the agent reports as os.version and plans use ("10.0.20348.3091"):
// the last two numbers are compared.
func sameBuild(running, pin string) bool {
	last2 := func(v string) string {
		parts := strings.Split(v, ".")
		if len(parts) > 2 {
			parts = parts[len(parts)-2:]
		}
		return strings.Join(parts, ".")
	}
	return running == pin || last2(running) == last2(pin)
}

// Rollback uninstalls the KBs that were not installed at the snapshot
// with wusa.exe. wusa exit 3010 means success, reboot required; 2359303
// (0x00240007) means the update is not installed. An action with
// rollback: none is not rolled back (ErrUnsupported).
func (w *WindowsUpdate) Rollback(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	pins, err := w.pins(a)
	if err != nil {
		return Outcome{}, err
	}
	if a.Package.Rollback == plan.RollbackNone {
		return Outcome{}, fmt.Errorf("windows-update: action %q declares rollback: none: %w", a.Name, ErrUnsupported)
	}
	var before struct {
		Installed []string `json:"installed"`
		Build     string   `json:"build"`
	}
	if s.Driver != w.Name() {
		return Outcome{}, fmt.Errorf("windows-update: snapshot was taken by driver %q", s.Driver)
	}
	if err := json.Unmarshal(s.Data, &before); err != nil {
		return Outcome{}, fmt.Errorf("windows-update: decode snapshot: %w", err)
	}
	if pins, err = forBuild(pins, before.Build); err != nil {
		return Outcome{}, err
	}
	var out Outcome
	for _, p := range pins {
		if containsString(before.Installed, p.Name) {
			continue
		}
		_, _, err := w.r.Run(ctx, nil, "wusa.exe", "/uninstall", "/kb:"+strings.TrimPrefix(p.Name, "KB"), "/quiet", "/norestart")
		switch exitCode(err) {
		case -1:
			if err != nil {
				return out, fmt.Errorf("windows-update: uninstall %s: %w", p.Name, err)
			}
		case 0:
		case 3010:
			out.RebootRequired = true
		case 2359303:
			continue
		default:
			return out, fmt.Errorf("windows-update: uninstall %s: %w", p.Name, err)
		}
		out.Changed = append(out.Changed, ChangeItem{Name: p.Name, From: "installed", To: "uninstalled"})
	}
	out.Summary = fmt.Sprintf("uninstalled %d updates", len(out.Changed))
	return out, nil
}
