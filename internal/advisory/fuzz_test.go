package advisory

import "testing"

// FuzzParse: any bytes give advisories that validate, or an error and
// no advisories; parsing is deterministic.
//
// The seeds are small on purpose: the fuzzer minimizes every input
// that finds new coverage, and minimizing one of the 6 KB fixtures
// under testdata takes longer than CI's 10 s, so they are not seeds.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"document":{"csaf_version":"2.0","aggregate_severity":{"text":"Important"},"tracking":{"id":"RHSA-2024:2447","initial_release_date":"2024-04-30T10:03:00Z","current_release_date":"2024-04-30T10:03:00Z"}},` +
		`"product_tree":{"branches":[{"branches":[{"product":{"name":"R","product_id":"P","product_identification_helper":{"cpe":"cpe:/o:redhat:enterprise_linux:9::baseos"}}},` +
		`{"product":{"name":"o","product_id":"C","product_identification_helper":{"purl":"pkg:rpm/redhat/openssl@3.0.7-27.el9?epoch=1"}}}]}],` +
		`"relationships":[{"full_product_name":{"product_id":"P:C"},"product_reference":"C","relates_to_product_reference":"P"}]},` +
		`"vulnerabilities":[{"cve":"CVE-2024-0727","product_status":{"fixed":["P:C"],"known_affected":["W"]},"remediations":[{"category":"vendor_fix","details":"KB5030216","product_ids":["W"],"fixed_build":"10.0.20348.1970","restart_required":{"category":"machine"}}],` +
		`"scores":[{"cvss_v3":{"vectorString":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}}],"threats":[{"category":"impact","details":"Low"}]}]}`))
	f.Add([]byte(`[{"id":"USN-6477-1","modified":"2026-04-27T14:11:31Z","published":"2023-11-14T09:44:00Z","related":["CVE-2023-4016","LSN-0098-1"],` +
		`"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:N/I:N/A:L"}],"affected":[{"package":{"ecosystem":"Ubuntu:22.04:LTS","name":"procps"},` +
		`"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2:3.3.17-6ubuntu2.1"}]}],"ecosystem_specific":{"binaries":[{"binary_name":"procps","binary_version":"2:3.3.17-6ubuntu2.1"}]}}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return // the size limit has its own test; big inputs only slow the search
		}
		as, err := Parse("fuzz.json", data)
		if err != nil {
			if as != nil {
				t.Fatal("advisories with an error")
			}
			return
		}
		for i := range as {
			if err := as[i].Validate(); err != nil {
				t.Fatalf("parsed advisory does not validate: %v", err)
			}
		}
		again, err := Parse("fuzz.json", data)
		if err != nil || len(again) != len(as) {
			t.Fatalf("second parse differs: %v", err)
		}
	})
}

func FuzzCVSS3(f *testing.F) {
	f.Add("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := CVSS3BaseScore(v)
		if err == nil && (s < 0 || s > 10) {
			t.Fatalf("score %v of %q", s, v)
		}
	})
}
