package advisory

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) Advisory {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	as, err := Parse(name, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 {
		t.Fatalf("%s: %d advisories, want 1", name, len(as))
	}
	return as[0]
}

func fixes(a Advisory) string {
	var b strings.Builder
	for _, f := range a.Affected {
		b.WriteString(f.Ecosystem + " " + f.Package + " " + f.Fixed + " " + f.KB + "\n")
	}
	return b.String()
}

func TestParseUbuntuUSN(t *testing.T) {
	a := parseFile(t, "osv-usn-6477-1.json")
	if a.ID != "USN-6477-1" || a.Source != "osv" || a.Summary != "procps vulnerability" {
		t.Fatalf("%+v", a)
	}
	if a.Severity != SeverityLow || a.CVSSScore != 2.5 || a.CVSSVector != "CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:N/I:N/A:L" {
		// The Ubuntu rating wins over the score; the score is the highest.
		t.Errorf("severity %s score %v vector %s", a.Severity, a.CVSSScore, a.CVSSVector)
	}
	if strings.Join(a.Aliases, ",") != "CVE-2023-4016,UBUNTU-CVE-2023-4016" {
		t.Errorf("aliases %v", a.Aliases)
	}
	want := `ubuntu:16.04 libprocps4 2:3.3.10-4ubuntu2.5+esm1 
ubuntu:16.04 procps 2:3.3.10-4ubuntu2.5+esm1 
ubuntu:20.04 libprocps8 2:3.3.16-1ubuntu2.4 
ubuntu:20.04 procps 2:3.3.16-1ubuntu2.4 
ubuntu:22.04 libprocps8 2:3.3.17-6ubuntu2.1 
ubuntu:22.04 procps 2:3.3.17-6ubuntu2.1 
`
	if got := fixes(a); got != want {
		t.Errorf("fixes:\n%s\nwant:\n%s", got, want)
	}
	if a.Published.Format("2006-01-02") != "2023-11-14" || a.Modified.Format("2006-01-02") != "2026-04-27" {
		t.Errorf("dates %v %v", a.Published, a.Modified)
	}
	if a.RebootRequired || a.URL != "https://ubuntu.com/security/notices/USN-6477-1" {
		t.Errorf("reboot %v url %s", a.RebootRequired, a.URL)
	}
}

func TestParseDebianDSA(t *testing.T) {
	a := parseFile(t, "osv-dsa-5532-1.json")
	if a.ID != "DSA-5532-1" || strings.Join(a.Aliases, ",") != "CVE-2023-5363" {
		t.Fatalf("%+v", a)
	}
	// No vendor rating: from the CVSS score (7.5, NVD's for CVE-2023-5363).
	if a.CVSSScore != 7.5 || a.Severity != SeverityHigh {
		t.Errorf("score %v severity %s", a.CVSSScore, a.Severity)
	}
	// The PyPI entry is not an OS package and is skipped.
	if got := fixes(a); got != "debian:12 openssl 3.0.11-1~deb12u2 \n" {
		t.Errorf("fixes %q", got)
	}
}

func TestParseRedHatCSAF(t *testing.T) {
	a := parseFile(t, "csaf-rhsa-2024_2447.json")
	if a.ID != "RHSA-2024:2447" || a.Source != "csaf" || a.Severity != SeverityLow {
		t.Fatalf("%+v", a)
	}
	if strings.Join(a.Aliases, ",") != "CVE-2023-5678,CVE-2024-0727" {
		t.Errorf("aliases %v", a.Aliases)
	}
	if a.CVSSScore != 5.3 {
		t.Errorf("score %v", a.CVSSScore)
	}
	want := "rhel:9 openssl 1:3.0.7-27.el9 \nrhel:9 openssl-libs 1:3.0.7-27.el9 \n"
	if got := fixes(a); got != want {
		t.Errorf("fixes:\n%s\nwant:\n%s", got, want)
	}
	if a.URL != "https://access.redhat.com/errata/RHSA-2024:2447" {
		t.Errorf("url %s", a.URL)
	}
}

func TestParseMicrosoftCSAF(t *testing.T) {
	a := parseFile(t, "csaf-msrc-cve-2023-38148.json")
	if a.ID != "msrc_CVE-2023-38148" || a.Severity != SeverityHigh || a.CVSSScore != 8.8 || !a.RebootRequired {
		t.Fatalf("%+v", a)
	}
	if strings.Join(a.Aliases, ",") != "CVE-2023-38148,KB5030216" {
		t.Errorf("aliases %v", a.Aliases)
	}
	if got := fixes(a); got != "windows:10.0.20348  10.0.20348.1970 KB5030216\n" {
		t.Errorf("fixes %q", got)
	}
}

// TestParseBundle: an array of documents of both formats; an ID twice
// keeps its newest modified.
func TestParseBundle(t *testing.T) {
	var docs []json.RawMessage
	for _, f := range []string{"osv-usn-6477-1.json", "osv-dsa-5532-1.json", "csaf-rhsa-2024_2447.json", "csaf-msrc-cve-2023-38148.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	newer := strings.Replace(string(docs[1]), `"modified": "2023-10-25T14:01:56Z"`, `"modified": "2024-01-01T00:00:00Z"`, 1)
	docs = append(docs, json.RawMessage(newer))
	bundle, _ := json.Marshal(docs)
	as, err := Parse("bundle.json", bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 4 || as[1].ID != "DSA-5532-1" || as[1].Modified.Year() != 2024 {
		t.Fatalf("%d advisories; %+v", len(as), as[1])
	}
}

// TestParseErrors: bad or hostile documents are refused with the file
// and the JSON path of the problem.
func TestParseErrors(t *testing.T) {
	dsa, err := os.ReadFile("testdata/osv-dsa-5532-1.json")
	if err != nil {
		t.Fatal(err)
	}
	rh, err := os.ReadFile("testdata/csaf-rhsa-2024_2447.json")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(doc []byte, old, new string) string {
		if !strings.Contains(string(doc), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(string(doc), old, new, 1)
	}
	deep := `{"document":{"csaf_version":"2.0","tracking":{"id":"X-1","initial_release_date":"2024-01-01T00:00:00Z","current_release_date":"2024-01-01T00:00:00Z"}},"product_tree":{"branches":` +
		strings.Repeat(`[{"name":"b","branches":`, 40) + "[]" + strings.Repeat("}]", 40) + `}}`
	for _, c := range []struct{ name, doc, want string }{
		{"empty", "  ", "f.json: empty document"},
		{"scalar", "42", "f.json: not a JSON object or array"},
		{"syntax", `{"id": "X",`, "f.json: document: invalid JSON"},
		{"neither", `{"hello": 1}`, "f.json: document: neither an OSV record"},
		{"no modified", edit(dsa, `"modified": "2023-10-25T14:01:56Z",`, `"modified": "",`), "f.json: modified: required"},
		{"bad time", edit(dsa, `"published": "2023-10-24T00:00:00Z"`, `"published": "yesterday"`), `f.json: published: "yesterday": want an RFC 3339 time`},
		{"bad version", edit(dsa, `"fixed": "3.0.11-1~deb12u2"`, `"fixed": "3.0 11"`), "f.json: affected[0].ranges[0].events[1]: fixed: version \"3.0 11\" has a space"},
		{"wrong type", edit(dsa, `"aliases": []`, `"aliases": "CVE-1"`), "f.json: aliases: want an array where JSON has string"},
		{"bad id", edit(dsa, `"id": "DSA-5532-1"`, `"id": "DSA 5532"`), `f.json: id "DSA 5532"`},
		{"no release", edit(dsa, `"ecosystem": "Debian:12"`, `"ecosystem": "Debian"`), `f.json: affected[0].package: ecosystem "Debian": no release`},
		{"bad cvss", edit(dsa, `"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"`, `"CVSS:3.1/AV:X"`), "f.json: severity[0].score: CVSS vector"},
		{"csaf version", edit(rh, `"csaf_version": "2.0"`, `"csaf_version": "1.2"`), `f.json: document.csaf_version: "1.2": drover reads CSAF 2.0`},
		{"csaf no id", edit(rh, `"id": "RHSA-2024:2447"`, `"id": ""`), "f.json: document.tracking.id: required"},
		{"csaf product id", edit(rh, `"product_id": "BaseOS-9.4.0.GA", `, ``), "f.json: product_tree.branches[0].branches[0].branches[0].product.product_id: required"},
		{"csaf deep", deep, "branches nested deeper than 32"},
		{"bundle item", "[" + string(dsa) + `, {"id": "X-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "a b"}}]}]`, `f.json: [1].affected[0]: package "a b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			as, err := Parse("f.json", []byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %d advisories, %v; want an error containing %q", len(as), err, c.want)
			}
			if as != nil {
				t.Fatal("a refused document returned advisories")
			}
		})
	}
	big := make([]byte, MaxDocument+1)
	if _, err := Parse("big.json", big); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("oversized: %v", err)
	}
}

// TestCVSS3: the specification's examples and NVD's scores of real CVEs.
func TestCVSS3(t *testing.T) {
	for _, c := range []struct {
		v    string
		want float64
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10},  // CVE-2021-44228
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 7.5}, // CVE-2023-5363
		{"CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.8}, // CVE-2023-38148
		{"CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:N/I:N/A:L", 2.5}, // CVE-2023-4016
		{"CVSS:3.0/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 5.4}, // a stored XSS
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0},
	} {
		got, err := CVSS3BaseScore(c.v)
		if err != nil || got != c.want {
			t.Errorf("CVSS3BaseScore(%s) = %v, %v; want %v", c.v, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "CVSS:2.0/AV:N", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:X/C:H/I:H/A:H", "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"} {
		if _, err := CVSS3BaseScore(bad); err == nil {
			t.Errorf("CVSS3BaseScore(%q) accepted", bad)
		}
	}
}

func TestParseNEVRA(t *testing.T) {
	for _, c := range []struct{ in, name, evr string }{
		{"openssl-1:3.0.7-27.el9.x86_64", "openssl", "1:3.0.7-27.el9"},
		{"kernel-5.14.0-427.13.1.el9_4.x86_64", "kernel", "5.14.0-427.13.1.el9_4"},
		{"nghttp2-0:1.43.0-5.el9_3.1.src", "nghttp2", "1.43.0-5.el9_3.1"},
	} {
		n, v, ok := parseNEVRA(c.in)
		if !ok || n != c.name || v != c.evr {
			t.Errorf("parseNEVRA(%q) = %q, %q, %v", c.in, n, v, ok)
		}
	}
}

// TestOSVEcosystems: the ecosystem names of the OSV databases drover
// reads, as osv.dev lists them.
func TestOSVEcosystems(t *testing.T) {
	for in, want := range map[string]string{
		"Debian:12":                             "debian:12",
		"Ubuntu:22.04:LTS":                      "ubuntu:22.04",
		"Ubuntu:Pro:16.04:LTS":                  "ubuntu:16.04",
		"Ubuntu:24.10":                          "ubuntu:24.10",
		"AlmaLinux:9":                           "almalinux:9",
		"Rocky Linux:8":                         "rocky:8",
		"Red Hat:enterprise_linux:9::appstream": "rhel:9",
		"Red Hat:rhel_eus:9.2::baseos":          "rhel:9",
		"SUSE:Linux Enterprise Server 15 SP5":   "suse:15.5",
		"SUSE:Linux Enterprise Server 12":       "suse:12",
		"openSUSE:Leap 15.5":                    "suse:15.5",
		"PyPI":                                  "",
		"npm":                                   "",
	} {
		got, ok, err := osvEcosystem(in)
		if err != nil || got != want || ok != (want != "") {
			t.Errorf("osvEcosystem(%q) = %q, %v, %v; want %q", in, got, ok, err, want)
		}
	}
	for _, bad := range []string{"Debian", "Ubuntu:Pro", "AlmaLinux", "SUSE:Linux Enterprise"} {
		if _, _, err := osvEcosystem(bad); err == nil {
			t.Errorf("osvEcosystem(%q) accepted an OS without a release", bad)
		}
	}
}

// TestParseSUSECSAF: the SUSE layout (a platform with a CPE of
// sles:15:sp5, a package with a pkg:rpm/suse purl). The document is
// made up in SUSE's shape (ID and CVE choice included); the openssl-3
// version is the one drover's generated SLES 15 SP5 nodes carry.
func TestParseSUSECSAF(t *testing.T) {
	doc := `{"document": {"csaf_version": "2.0", "category": "csaf_security_advisory", "title": "Security update for openssl-3",
	  "aggregate_severity": {"text": "moderate"},
	  "tracking": {"id": "SUSE-SU-TEST:0001-1", "initial_release_date": "2024-06-01T00:00:00Z", "current_release_date": "2024-06-02T00:00:00Z"}},
	 "product_tree": {"branches": [{"category": "vendor", "name": "SUSE", "branches": [
	   {"category": "product_name", "name": "SUSE Linux Enterprise Server 15 SP5", "product": {"name": "SUSE Linux Enterprise Server 15 SP5", "product_id": "SUSE Linux Enterprise Server 15 SP5", "product_identification_helper": {"cpe": "cpe:/o:suse:sles:15:sp5"}}},
	   {"category": "product_version", "name": "openssl-3-3.0.8-150500.5.45.1", "product": {"name": "openssl-3-3.0.8-150500.5.45.1", "product_id": "openssl-3-3.0.8-150500.5.45.1", "product_identification_helper": {"purl": "pkg:rpm/suse/openssl-3@3.0.8-150500.5.45.1?arch=x86_64&distro=sles-15.5"}}}]}],
	  "relationships": [{"category": "default_component_of", "full_product_name": {"name": "openssl-3 on SLES 15 SP5", "product_id": "SUSE Linux Enterprise Server 15 SP5:openssl-3-3.0.8-150500.5.45.1"},
	    "product_reference": "openssl-3-3.0.8-150500.5.45.1", "relates_to_product_reference": "SUSE Linux Enterprise Server 15 SP5"}]},
	 "vulnerabilities": [{"cve": "CVE-2024-4741", "product_status": {"recommended": ["SUSE Linux Enterprise Server 15 SP5:openssl-3-3.0.8-150500.5.45.1"], "fixed": ["SUSE Linux Enterprise Server 15 SP5:openssl-3-3.0.8-150500.5.45.1"]}}]}`
	as, err := Parse("suse.json", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	a := as[0]
	if a.Severity != SeverityMedium || fixes(a) != "suse:15.5 openssl-3 3.0.8-150500.5.45.1 \n" || a.Aliases[0] != "CVE-2024-4741" {
		t.Fatalf("%+v", a)
	}
}
