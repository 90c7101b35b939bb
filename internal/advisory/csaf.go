package advisory

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// csafDoc is the part of a CSAF 2.0 document (docs.oasis-open.org/csaf,
// csaf_json_schema.json) drover reads.
type csafDoc struct {
	Document struct {
		Category          string `json:"category"`
		CSAFVersion       string `json:"csaf_version"`
		Title             string `json:"title"`
		AggregateSeverity *struct {
			Text string `json:"text"`
		} `json:"aggregate_severity"`
		References []struct {
			Category string `json:"category"`
			URL      string `json:"url"`
		} `json:"references"`
		Tracking struct {
			ID                 string   `json:"id"`
			InitialReleaseDate string   `json:"initial_release_date"`
			CurrentReleaseDate string   `json:"current_release_date"`
			Aliases            []string `json:"aliases"`
		} `json:"tracking"`
	} `json:"document"`
	ProductTree struct {
		Branches         []csafBranch  `json:"branches"`
		FullProductNames []csafProduct `json:"full_product_names"`
		Relationships    []struct {
			Category        string      `json:"category"`
			FullProductName csafProduct `json:"full_product_name"`
			ProductRef      string      `json:"product_reference"`
			RelatesTo       string      `json:"relates_to_product_reference"`
		} `json:"relationships"`
	} `json:"product_tree"`
	Vulnerabilities []struct {
		CVE string `json:"cve"`
		IDs []struct {
			SystemName string `json:"system_name"`
			Text       string `json:"text"`
		} `json:"ids"`
		ProductStatus struct {
			Fixed         []string `json:"fixed"`
			FirstFixed    []string `json:"first_fixed"`
			KnownAffected []string `json:"known_affected"`
		} `json:"product_status"`
		Remediations []struct {
			Category   string   `json:"category"`
			Details    string   `json:"details"`
			URL        string   `json:"url"`
			ProductIDs []string `json:"product_ids"`
			// FixedBuild is Microsoft's extension: the OS build
			// (10.0.20348.1970) the update brings.
			FixedBuild      string `json:"fixed_build"`
			RestartRequired *struct {
				Category string `json:"category"`
			} `json:"restart_required"`
		} `json:"remediations"`
		Scores []struct {
			CVSSV3 *struct {
				BaseScore    float64 `json:"baseScore"`
				VectorString string  `json:"vectorString"`
			} `json:"cvss_v3"`
		} `json:"scores"`
		Threats []struct {
			Category string `json:"category"`
			Details  string `json:"details"`
		} `json:"threats"`
	} `json:"vulnerabilities"`
}

type csafBranch struct {
	Category string       `json:"category"`
	Name     string       `json:"name"`
	Product  *csafProduct `json:"product"`
	Branches []csafBranch `json:"branches"`
}

type csafProduct struct {
	Name      string `json:"name"`
	ProductID string `json:"product_id"`
	Helper    *struct {
		CPE  string `json:"cpe"`
		PURL string `json:"purl"`
	} `json:"product_identification_helper"`
}

const maxBranchDepth = 32

type csafRel struct{ component, platform string }

type csafIndex struct {
	products map[string]csafProduct
	rels     map[string]csafRel
}

func (x *csafIndex) walk(bs []csafBranch, path string, depth int) error {
	if depth > maxBranchDepth {
		return fmt.Errorf("%s: branches nested deeper than %d", path, maxBranchDepth)
	}
	for i, b := range bs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if b.Product != nil {
			if err := x.add(*b.Product, p+".product"); err != nil {
				return err
			}
		}
		if err := x.walk(b.Branches, p+".branches", depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (x *csafIndex) add(p csafProduct, path string) error {
	if p.ProductID == "" {
		return fmt.Errorf("%s.product_id: required", path)
	}
	if len(x.products) >= 4*MaxAffected {
		return fmt.Errorf("%s: more than %d products", path, 4*MaxAffected)
	}
	x.products[p.ProductID] = p
	return nil
}

var (
	rhelCPE    = regexp.MustCompile(`^cpe:/[aoh]:redhat:(?:enterprise_linux|rhel_eus|rhel_aus|rhel_e4s|rhel_tus|rhel_els):([0-9]+)`)
	suseCPE    = regexp.MustCompile(`^cpe:/[aoh]:(?:suse|opensuse):(?:sles|sled|sles_sap|leap|suse_sles|sle-module[a-z0-9_-]*|sle_hpc)[^:]*:([0-9]+)(?::sp([0-9]+)|\.([0-9]+))?`)
	winProduct = regexp.MustCompile(`^Windows (?:Server )?(\d+|\w+)`)
	kbInText   = regexp.MustCompile(`(?i)\bKB?([0-9]{6,8})\b`)
	buildRe    = regexp.MustCompile(`^10\.0\.[0-9]+\.[0-9]+$`)
)

// platform reads the ecosystem of a platform product: a RHEL or SUSE
// CPE, or a Windows product with its fixed build.
func platformEcosystem(p csafProduct) string {
	cpe := ""
	if p.Helper != nil {
		cpe = p.Helper.CPE
	}
	if m := rhelCPE.FindStringSubmatch(cpe); m != nil {
		return "rhel:" + m[1]
	}
	if m := suseCPE.FindStringSubmatch(cpe); m != nil {
		rel := m[1]
		if m[2] != "" {
			rel += "." + m[2]
		} else if m[3] != "" {
			rel += "." + m[3]
		}
		return "suse:" + rel
	}
	return ""
}

// purlPackage reads pkg:rpm/redhat/openssl@3.0.7-17.el9_2?arch=x86_64&epoch=1
// as (openssl, 1:3.0.7-17.el9_2).
func purlPackage(purl string) (name, version string, ok bool) {
	rest, found := strings.CutPrefix(purl, "pkg:rpm/")
	if !found {
		return "", "", false
	}
	rest, query, _ := strings.Cut(rest, "?")
	_, nv, _ := strings.Cut(rest, "/")
	name, version, found = strings.Cut(nv, "@")
	if !found || name == "" || version == "" {
		return "", "", false
	}
	if n, err := url.PathUnescape(name); err == nil {
		name = n
	}
	if v, err := url.PathUnescape(version); err == nil {
		version = v
	}
	if q, err := url.ParseQuery(query); err == nil && q.Get("epoch") != "" && q.Get("epoch") != "0" {
		version = q.Get("epoch") + ":" + version
	}
	return name, version, true
}

// nevra reads a Red Hat product ID of a component
// ("openssl-1:3.0.7-17.el9_2.x86_64") as name and [epoch:]version-release.
var nevraRe = regexp.MustCompile(`^(.+)-(?:([0-9]+):)?([^-]+)-([^-]+?)(?:\.(x86_64|aarch64|ppc64le|s390x|noarch|i686|src))?$`)

func parseNEVRA(s string) (name, evr string, ok bool) {
	m := nevraRe.FindStringSubmatch(s)
	if m == nil {
		return "", "", false
	}
	evr = m[3] + "-" + m[4]
	if m[2] != "" && m[2] != "0" {
		evr = m[2] + ":" + evr
	}
	return m[1], evr, true
}

// parseCSAF reads one CSAF 2.0 document; path is its JSON path.
func parseCSAF(raw []byte, path string) (Advisory, error) {
	var d csafDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return Advisory{}, jsonErr(path, err)
	}
	at := func(p string) string { return join(path, p) }
	if d.Document.CSAFVersion != "2.0" {
		return Advisory{}, fmt.Errorf("%s: %q: drover reads CSAF 2.0", at("document.csaf_version"), clip(d.Document.CSAFVersion))
	}
	tr := d.Document.Tracking
	if tr.ID == "" {
		return Advisory{}, fmt.Errorf("%s: required", at("document.tracking.id"))
	}
	a := Advisory{ID: tr.ID, Source: "csaf", Summary: d.Document.Title, Aliases: tr.Aliases}
	var err error
	if a.Published, err = csafTime(tr.InitialReleaseDate); err != nil {
		return a, fmt.Errorf("%s: %w", at("document.tracking.initial_release_date"), err)
	}
	if a.Modified, err = csafTime(tr.CurrentReleaseDate); err != nil {
		return a, fmt.Errorf("%s: %w", at("document.tracking.current_release_date"), err)
	}
	for _, r := range d.Document.References {
		if r.Category == "self" && a.URL == "" && strings.HasPrefix(r.URL, "https://") && !strings.HasSuffix(r.URL, ".json") {
			a.URL = r.URL
		}
	}
	sev := ""
	if d.Document.AggregateSeverity != nil {
		sev = vendorSeverity(d.Document.AggregateSeverity.Text)
	}
	x := csafIndex{products: map[string]csafProduct{}, rels: map[string]csafRel{}}
	if err := x.walk(d.ProductTree.Branches, at("product_tree.branches"), 0); err != nil {
		return a, err
	}
	for i, p := range d.ProductTree.FullProductNames {
		if err := x.add(p, at(fmt.Sprintf("product_tree.full_product_names[%d]", i))); err != nil {
			return a, err
		}
	}
	for i, r := range d.ProductTree.Relationships {
		p := at(fmt.Sprintf("product_tree.relationships[%d]", i))
		if err := x.add(r.FullProductName, p+".full_product_name"); err != nil {
			return a, err
		}
		x.rels[r.FullProductName.ProductID] = csafRel{component: r.ProductRef, platform: r.RelatesTo}
	}
	if len(d.Vulnerabilities) > MaxAliases {
		return a, fmt.Errorf("%s: %d entries (at most %d)", at("vulnerabilities"), len(d.Vulnerabilities), MaxAliases)
	}
	for i, v := range d.Vulnerabilities {
		vp := at(fmt.Sprintf("vulnerabilities[%d]", i))
		if v.CVE != "" {
			a.Aliases = append(a.Aliases, v.CVE)
		}
		for j, s := range v.Scores {
			if s.CVSSV3 == nil || s.CVSSV3.VectorString == "" {
				continue
			}
			score, err := CVSS3BaseScore(s.CVSSV3.VectorString)
			if err != nil {
				return a, fmt.Errorf("%s.scores[%d].cvss_v3.vectorString: %w", vp, j, err)
			}
			if score > a.CVSSScore || a.CVSSVector == "" {
				a.CVSSScore, a.CVSSVector = max(score, a.CVSSScore), s.CVSSV3.VectorString
			}
		}
		for _, t := range v.Threats {
			if t.Category == "impact" || t.Category == "severity" {
				if w := vendorSeverity(t.Details); SeverityRank(w) > SeverityRank(sev) {
					sev = w
				}
			}
		}
		// Remediations per product: KB, fixed build, restart.
		type rem struct{ kb, build string }
		rems := map[string]rem{}
		for j, r := range v.Remediations {
			if r.Category != "vendor_fix" {
				continue
			}
			kb := ""
			if m := kbInText.FindStringSubmatch(r.Details); m != nil {
				kb = "KB" + m[1]
			} else if m := kbInText.FindStringSubmatch(r.URL); m != nil {
				kb = "KB" + m[1]
			}
			if r.FixedBuild != "" && !buildRe.MatchString(r.FixedBuild) {
				return a, fmt.Errorf("%s.remediations[%d].fixed_build: %q: want a Windows build like 10.0.20348.1970", vp, j, clip(r.FixedBuild))
			}
			if r.RestartRequired != nil && (r.RestartRequired.Category == "machine" || r.RestartRequired.Category == "system") {
				a.RebootRequired = true
			}
			for _, pid := range r.ProductIDs {
				rems[pid] = rem{kb: kb, build: r.FixedBuild}
			}
		}
		ids := append(append([]string{}, v.ProductStatus.Fixed...), v.ProductStatus.FirstFixed...)
		for j, pid := range ids {
			f, ok, err := x.fix(pid)
			if err != nil {
				return a, fmt.Errorf("%s.product_status.fixed[%d]: %w", vp, j, err)
			}
			if !ok {
				// Windows and macOS: the product itself, fixed by its
				// remediation's build.
				r := rems[pid]
				p := x.products[pid]
				if eco := osProductEcosystem(p.Name, r.build); eco != "" {
					f = Fix{Ecosystem: eco, Fixed: r.build, KB: r.kb, Product: p.Name}
					ok = true
				}
			}
			if !ok {
				continue // a product drover does not manage (a middleware, an application)
			}
			if err := f.validate(); err != nil {
				return a, fmt.Errorf("%s.product_status.fixed[%d] (%s): %w", vp, j, clip(pid), err)
			}
			if kernelPackage(f.Package) {
				a.RebootRequired = true
			}
			a.Affected = append(a.Affected, f)
		}
		for _, pid := range v.ProductStatus.KnownAffected {
			f, ok, err := x.fix(pid)
			if err == nil && ok {
				// known affected without a fix in this document
				f.Fixed = ""
				a.Affected = append(a.Affected, f)
				continue
			}
			r, hasRem := rems[pid]
			p := x.products[pid]
			if eco := osProductEcosystem(p.Name, r.build); eco != "" && hasRem && r.build != "" {
				// Microsoft lists products as known_affected and
				// remediates them with a KB and a fixed build.
				a.Affected = append(a.Affected, Fix{Ecosystem: eco, Fixed: r.build, KB: r.kb, Product: p.Name})
			}
		}
		if len(a.Affected) > MaxAffected {
			return a, fmt.Errorf("%s: more than %d fixes", at("vulnerabilities"), MaxAffected)
		}
	}
	for _, f := range a.Affected {
		if f.KB != "" {
			a.Aliases = append(a.Aliases, f.KB)
		}
	}
	err = a.finish(sev, path) // before a is read: finish changes it
	return a, err
}

// fix resolves a product ID of a package on a platform (a relationship
// "default_component_of") to a Fix; ok is false for a product that is
// not an rpm package on a RHEL or SUSE platform.
func (x *csafIndex) fix(pid string) (Fix, bool, error) {
	rel, ok := x.rels[pid]
	if !ok {
		return Fix{}, false, nil
	}
	plat, comp := x.products[rel.platform], x.products[rel.component]
	eco := platformEcosystem(plat)
	if eco == "" {
		return Fix{}, false, nil
	}
	var name, version string
	if comp.Helper != nil && comp.Helper.PURL != "" {
		name, version, ok = purlPackage(comp.Helper.PURL)
	}
	if !ok {
		name, version, ok = parseNEVRA(rel.component)
	}
	if !ok {
		return Fix{}, false, nil
	}
	return Fix{Ecosystem: eco, Package: name, Fixed: version, Product: plat.Name}, true, nil
}

// osProductEcosystem: a Windows product fixed by build 10.0.B.UBR is
// ecosystem windows:10.0.B.
func osProductEcosystem(name, build string) string {
	if winProduct.MatchString(name) && buildRe.MatchString(build) {
		return "windows:" + build[:strings.LastIndexByte(build, '.')]
	}
	return ""
}

func csafTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("required (RFC 3339 time)")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("%q: want an RFC 3339 time", clip(s))
	}
	return t, nil
}
