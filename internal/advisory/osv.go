package advisory

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// osvDoc is the part of an OSV record (ossf.github.io/osv-schema,
// schema 1.x) drover reads; other fields are ignored.
type osvDoc struct {
	SchemaVersion string        `json:"schema_version"`
	ID            string        `json:"id"`
	Modified      string        `json:"modified"`
	Published     string        `json:"published"`
	Withdrawn     string        `json:"withdrawn"`
	Aliases       []string      `json:"aliases"`
	Related       []string      `json:"related"`
	Upstream      []string      `json:"upstream"`
	Summary       string        `json:"summary"`
	Details       string        `json:"details"`
	Severity      []osvSeverity `json:"severity"`
	Affected      []osvAffected `json:"affected"`
	References    []struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	} `json:"references"`
	DatabaseSpecific map[string]json.RawMessage `json:"database_specific"`
}

type osvSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

type osvAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		PURL      string `json:"purl"`
	} `json:"package"`
	Severity []osvSeverity `json:"severity"`
	Ranges   []struct {
		Type   string              `json:"type"`
		Events []map[string]string `json:"events"`
	} `json:"ranges"`
	DatabaseSpecific struct {
		// Ubuntu: the CVEs of the notice, with their ratings.
		CVEsMap struct {
			CVEs []struct {
				ID       string        `json:"id"`
				Severity []osvSeverity `json:"severity"`
			} `json:"cves"`
		} `json:"cves_map"`
	} `json:"database_specific"`
	EcosystemSpecific struct {
		Binaries []struct {
			Name    string `json:"binary_name"`
			Version string `json:"binary_version"`
		} `json:"binaries"`
	} `json:"ecosystem_specific"`
}

var (
	ubuntuRelease = regexp.MustCompile(`^[0-9]{2}\.[0-9]{2}$`)
	suseRelease   = regexp.MustCompile(`([0-9]+)(?:[ .-]SP([0-9]+)|\.([0-9]+))?$`)
	majorRelease  = regexp.MustCompile(`^[0-9]+`)
)

// osvEcosystem maps an OSV ecosystem ("Debian:12",
// "Ubuntu:Pro:18.04:LTS", "AlmaLinux:9", "Rocky Linux:9", "Red
// Hat:enterprise_linux:9::appstream", "SUSE:Linux Enterprise Server 15
// SP5", "openSUSE:Leap 15.5") to drover's; ok is false for ecosystems
// of language packages (npm, PyPI ...) and OSes drover does not
// manage, which are skipped. An OS ecosystem without a release is an
// error.
func osvEcosystem(eco string) (string, bool, error) {
	name, rest, _ := strings.Cut(eco, ":")
	switch name {
	case "Debian":
		if m := majorRelease.FindString(rest); m != "" && m == rest {
			return "debian:" + m, true, nil
		}
	case "Ubuntu":
		for _, p := range strings.Split(rest, ":") {
			if ubuntuRelease.MatchString(p) {
				return "ubuntu:" + p, true, nil
			}
		}
	case "AlmaLinux", "Rocky Linux", "Red Hat":
		fam := map[string]string{"AlmaLinux": "almalinux", "Rocky Linux": "rocky", "Red Hat": "rhel"}[name]
		if name == "Red Hat" { // Red Hat:enterprise_linux:9::appstream, Red Hat:rhel_eus:9.2::baseos
			_, rest, _ = strings.Cut(rest, ":")
		}
		if m := majorRelease.FindString(rest); m != "" {
			return fam + ":" + m, true, nil
		}
	case "SUSE", "openSUSE":
		if m := suseRelease.FindStringSubmatch(rest); m != nil {
			rel := m[1]
			if m[2] != "" {
				rel += "." + m[2]
			} else if m[3] != "" {
				rel += "." + m[3]
			}
			return "suse:" + rel, true, nil
		}
	default:
		return "", false, nil
	}
	return "", false, fmt.Errorf("ecosystem %q: no release drover can read", clip(eco))
}

// parseOSV reads one OSV record; path is its JSON path in the document.
func parseOSV(raw []byte, path string) (Advisory, error) {
	var d osvDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return Advisory{}, jsonErr(path, err)
	}
	at := func(p string) string { return join(path, p) }
	if d.ID == "" {
		return Advisory{}, fmt.Errorf("%s: an OSV record needs an id", at("id"))
	}
	a := Advisory{ID: d.ID, Source: "osv", Summary: d.Summary}
	if a.Summary == "" {
		a.Summary = firstLine(d.Details)
	}
	var err error
	if a.Modified, err = osvTime(d.Modified, true); err != nil {
		return a, fmt.Errorf("%s: %w", at("modified"), err)
	}
	if a.Published, err = osvTime(d.Published, false); err != nil {
		return a, fmt.Errorf("%s: %w", at("published"), err)
	}
	a.Aliases = append(append(append(a.Aliases, d.Aliases...), d.Upstream...), cveOnly(d.Related)...)
	for _, r := range d.Related {
		if strings.HasPrefix(r, "LSN-") { // Ubuntu Livepatch Security Notice
			a.LivePatches = append(a.LivePatches, r)
		}
	}
	for _, r := range d.References {
		if r.Type == "ADVISORY" && a.URL == "" {
			a.URL = r.URL
		}
	}
	sev := ""
	score := func(list []osvSeverity, p string) error {
		for i, s := range list {
			switch s.Type {
			case "CVSS_V3":
				v, err := CVSS3BaseScore(s.Score)
				if err != nil {
					return fmt.Errorf("%s: %w", join(p, fmt.Sprintf("severity[%d].score", i)), err)
				}
				if v > a.CVSSScore || a.CVSSVector == "" {
					a.CVSSScore, a.CVSSVector = max(v, a.CVSSScore), s.Score
				}
			case "Ubuntu":
				if w := vendorSeverity(s.Score); SeverityRank(w) > SeverityRank(sev) {
					sev = w
				}
			}
		}
		return nil
	}
	if err := score(d.Severity, path); err != nil {
		return a, err
	}
	if raw, ok := d.DatabaseSpecific["severity"]; ok { // Debian, AlmaLinux: "high"
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if w := vendorSeverity(s); SeverityRank(w) > SeverityRank(sev) {
				sev = w
			}
		}
	}
	if len(d.Affected) > MaxAffected {
		return a, fmt.Errorf("%s: %d entries (at most %d)", at("affected"), len(d.Affected), MaxAffected)
	}
	for i, af := range d.Affected {
		p := at(fmt.Sprintf("affected[%d]", i))
		if err := score(af.Severity, p); err != nil {
			return a, err
		}
		for j, c := range af.DatabaseSpecific.CVEsMap.CVEs {
			if strings.HasPrefix(c.ID, "CVE-") {
				a.Aliases = append(a.Aliases, c.ID)
			}
			if err := score(c.Severity, join(p, fmt.Sprintf("database_specific.cves_map.cves[%d]", j))); err != nil {
				return a, err
			}
		}
		eco, ok, err := osvEcosystem(af.Package.Ecosystem)
		if err != nil {
			return a, fmt.Errorf("%s.package: %w", p, err)
		}
		if !ok {
			continue
		}
		if af.Package.Name == "" {
			return a, fmt.Errorf("%s.package.name: required", p)
		}
		fixes := []Fix{}
		for j, r := range af.Ranges {
			if r.Type != "ECOSYSTEM" {
				continue
			}
			for k, ev := range r.Events {
				if v, ok := ev["fixed"]; ok {
					f := Fix{Ecosystem: eco, Package: af.Package.Name, Fixed: v}
					err := f.validate()
					if v == "" {
						err = errors.New("fixed: empty version")
					}
					if err != nil {
						return a, fmt.Errorf("%s: %w", join(p, fmt.Sprintf("ranges[%d].events[%d]", j, k)), err)
					}
					fixes = append(fixes, f)
				}
			}
		}
		if len(fixes) == 0 { // affected, no fix published
			fixes = append(fixes, Fix{Ecosystem: eco, Package: af.Package.Name})
		}
		for j, b := range af.EcosystemSpecific.Binaries { // Ubuntu: the binary packages nodes have installed
			f := Fix{Ecosystem: eco, Package: b.Name, Fixed: b.Version}
			err := f.validate()
			if b.Name == "" || b.Version == "" {
				err = errors.New("binary_name and binary_version are required")
			}
			if err != nil {
				return a, fmt.Errorf("%s: %w", join(p, fmt.Sprintf("ecosystem_specific.binaries[%d]", j)), err)
			}
			fixes = append(fixes, f)
		}
		for _, f := range fixes {
			if kernelPackage(f.Package) {
				a.RebootRequired = true
			}
		}
		a.Affected = append(a.Affected, fixes...)
		if len(a.Affected) > MaxAffected {
			return a, fmt.Errorf("%s: more than %d fixes", at("affected"), MaxAffected)
		}
	}
	err = a.finish(sev, path) // before a is read: finish changes it
	return a, err
}

func osvTime(s string, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, fmt.Errorf("required (RFC 3339 time)")
		}
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("%q: want an RFC 3339 time", clip(s))
	}
	return t, nil
}

func cveOnly(ids []string) []string {
	var out []string
	for _, id := range ids {
		if strings.HasPrefix(id, "CVE-") {
			out = append(out, id)
		}
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}

// join appends a JSON path step to a path ("" is the document).
func join(path, step string) string {
	switch {
	case path == "":
		return step
	case strings.HasPrefix(step, "["):
		return path + step
	}
	return path + "." + step
}

// under puts a validation error (which starts with the field's path)
// under the JSON path of its advisory.
func under(path string, err error) error {
	if path == "" {
		return err
	}
	return fmt.Errorf("%s.%w", path, err)
}
