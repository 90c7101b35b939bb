package facts

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
)

// WindowsOSQuery is the PowerShell the Windows collector runs for the OS
// facts; ParseWindowsOS reads its output.
// UBR, the update build revision, is not in Win32_OperatingSystem: it is
// read from the registry, where Windows Update writes it ("OS Build
// 20348.2700" in winver).
const WindowsOSQuery = `Get-CimInstance Win32_OperatingSystem | Select-Object Caption,Version,BuildNumber,OSArchitecture,LastBootUpTime,@{n='Model';e={(Get-CimInstance Win32_ComputerSystem).Model}},@{n='UBR';e={(Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' -ErrorAction SilentlyContinue).UBR}} | ConvertTo-Json -Compress`

// WindowsHotFixQuery lists installed updates; ParseHotFixes reads it.
const WindowsHotFixQuery = `Get-HotFix | Select-Object HotFixID,Description,InstalledOn | ConvertTo-Json -Compress`

// WindowsOS is what ParseWindowsOS found.
type WindowsOS struct {
	OS       fleet.OS
	Kernel   string // the running build with its update revision, 10.0.20348.2700 (Version alone when the UBR is missing)
	Build    string
	Arch     string
	Model    string
	LastBoot time.Time
	BootID   string // derived from LastBootUpTime: changes on every boot
}

// ParseWindowsOS reads the JSON of WindowsOSQuery. LastBootUpTime comes as
// "/Date(ms)/" (Windows PowerShell 5.1), as an object with a "value" of
// that form, or as an ISO 8601 string (PowerShell 7).
func ParseWindowsOS(b []byte) (WindowsOS, error) {
	var raw struct {
		Caption        string          `json:"Caption"`
		Version        string          `json:"Version"`
		BuildNumber    string          `json:"BuildNumber"`
		OSArchitecture string          `json:"OSArchitecture"`
		LastBootUpTime json.RawMessage `json:"LastBootUpTime"`
		Model          string          `json:"Model"`
		UBR            *int            `json:"UBR"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return WindowsOS{}, fmt.Errorf("Win32_OperatingSystem: %w", err)
	}
	w := WindowsOS{
		OS:     fleet.OS{Family: "windows", Name: strings.TrimSpace(strings.TrimPrefix(raw.Caption, "Microsoft ")), Version: raw.Version},
		Kernel: raw.Version, Build: raw.BuildNumber, Model: strings.TrimSpace(raw.Model),
	}
	// The kernel fact is what runs, and on Windows that changes with
	// every cumulative update: os.version stays the release (10.0.20348),
	// the kernel carries the update build revision that advisories name
	// (10.0.20348.2700) and that changes at the reboot that completes an
	// update, as a Linux kernel's release does.
	if raw.UBR != nil && *raw.UBR >= 0 && strings.Count(raw.Version, ".") == 2 {
		w.Kernel = raw.Version + "." + strconv.Itoa(*raw.UBR)
	}
	switch {
	case strings.Contains(raw.OSArchitecture, "ARM"):
		w.Arch = "arm64"
	case strings.Contains(raw.OSArchitecture, "64"):
		w.Arch = "amd64"
	case raw.OSArchitecture != "":
		w.Arch = "386"
	}
	if t, err := psDate(raw.LastBootUpTime); err == nil && !t.IsZero() {
		w.LastBoot = t
		w.BootID = "boot-" + strconv.FormatInt(t.Unix(), 10)
	}
	return w, nil
}

// psDate reads a date as ConvertTo-Json writes it.
func psDate(b json.RawMessage) (time.Time, error) {
	if len(b) == 0 || string(b) == "null" {
		return time.Time{}, nil
	}
	var obj struct {
		Value    string `json:"value"`
		DateTime string `json:"DateTime"`
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		if err := json.Unmarshal(b, &obj); err != nil {
			return time.Time{}, err
		}
		s = obj.Value
	}
	if ms, ok := strings.CutPrefix(s, "/Date("); ok {
		ms = strings.TrimSuffix(ms, ")/")
		if i := strings.IndexAny(ms, "+-"); i > 0 {
			ms = ms[:i]
		}
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return time.Time{}, err
		}
		return time.UnixMilli(n).UTC(), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// HotFix is one installed Windows update.
type HotFix struct {
	ID          string
	Description string
	InstalledOn time.Time
}

// ParseHotFixes reads the JSON of WindowsHotFixQuery: an array, or a
// single object when only one update is installed.
func ParseHotFixes(b []byte) ([]HotFix, error) {
	type raw struct {
		HotFixID    string          `json:"HotFixID"`
		Description string          `json:"Description"`
		InstalledOn json.RawMessage `json:"InstalledOn"`
	}
	var list []raw
	if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "{") {
		var one raw
		if err := json.Unmarshal(b, &one); err != nil {
			return nil, fmt.Errorf("Get-HotFix: %w", err)
		}
		list = []raw{one}
	} else if t != "" {
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, fmt.Errorf("Get-HotFix: %w", err)
		}
	}
	out := make([]HotFix, 0, len(list))
	for _, r := range list {
		h := HotFix{ID: r.HotFixID, Description: r.Description}
		h.InstalledOn, _ = psDate(r.InstalledOn)
		out = append(out, h)
	}
	return out, nil
}

// WindowsFacts assembles facts from the parsed outputs: hot fixes become
// packages (KB ID -> install date, or "installed").
func WindowsFacts(w WindowsOS, fixes []HotFix) fleet.Facts {
	f := fleet.Facts{OS: w.OS, Kernel: w.Kernel, Arch: w.Arch, BootID: w.BootID, Hardware: fleet.Hardware{Class: w.Model}}
	if len(fixes) > 0 {
		f.Packages = map[string]string{}
		for _, h := range fixes {
			v := "installed"
			if !h.InstalledOn.IsZero() {
				v = h.InstalledOn.Format("2006-01-02")
			}
			f.Packages[h.ID] = v
		}
	}
	return f
}
