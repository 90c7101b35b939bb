package plan

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// injectionPayloads are the values of drover issue #14 that reached
// command lines: PowerShell's typographic quotes (U+2018–U+201B), CR, LF,
// NUL, shell and PowerShell syntax, leading dashes, very long strings.
func injectionPayloads() []string {
	return []string{
		"spooler’ ; Start-Process calc", "spooler‘; Start-Process calc", "spooler‚ ; calc", "spooler‛ ; calc",
		"spooler' ; Start-Process calc", "spooler\r; Start-Process calc", "nginx\nreboot", "nginx\x00",
		"nginx;reboot", "nginx$(reboot)", "nginx`reboot`", "--option=Dpkg::Pre-Invoke::=touch /tmp/x",
		"-oAPT::Get::AllowUnauthenticated=1", "nginx*", "W3SVC?", "svc[ab]", "a/b", `a\b`, "KB5043050,KB1",
		"\xff\xfe", strings.Repeat("a", 100_000), "nginx\u2028x", "\u200bnginx",
	}
}

func TestIdentValid(t *testing.T) {
	for k, vals := range map[Ident][]string{
		DebianPackage:  {"nginx-common", "libc6", "libc6:amd64", "g++", "libstdc++6", "linux-image-6.1.0-25-amd64", "python3.11"},
		DebianVersion:  {"1.22.1-9+deb12u11", "1:2.38.1-5+deb12u1~bpo11+1", "5:27.1.1-1~debian.12~bookworm", "3.0.16-1", "2.0", "6.1.112-1"},
		RPMPackage:     {"kernel-core", "NetworkManager-wifi", "libstdc++", "python3-dnf-plugin-versionlock", "openssl-libs"},
		RPMVersion:     {"5.14.0-427.13.1.el9_4", "1:3.0.7-27.el9", "2.4.57-11.el9_4.1", "1.0^20240101git1a2b3c4-1", "1.0~rc1-1"},
		SystemdUnit:    {"nginx", "nginx.service", "getty@tty1.service", `systemd-fsck@dev-disk-by\x2duuid-1234.service`, "docker.socket", "crio"},
		WindowsService: {"W3SVC", "Spooler", "MSSQL$SQLEXPRESS", "Intel(R) TPM Provisioning Service", "cbdhsvc_4a2b5", "NVDisplay.ContainerLocalSystem", "postgresql-x64-16"},
		WindowsKB:      {"KB5043050", "KB890830", "KB12345678"},
		WindowsBuild:   {"20348.2700", "10.0.20348.2966"},
		MacOSUpdate:    {"macOS Sonoma 14.6.1-23G93", "Command Line Tools for Xcode-15.3", "Safari17.6VenturaAuto-17.6", "MRTConfigData_10_15-1.93"},
		MacOSVersion:   {"14.6.1", "17.6"},
		LivePatchID:    {"livepatch_cve_2024_1086", "kpatch-5_14_0-1.ko", "cve-2024-1086"},
		KubernetesNode: {"node-1", "ip-10-0-0-1.eu-west-1.compute.internal"},
		ScriptArg:      {"--fast", "-n", "two words", "spooler’", "$(not a shell)", ""},
	} {
		for _, s := range vals {
			if s == "" {
				continue
			}
			if err := k.Check(s); err != nil {
				t.Errorf("%s %q: %v", k, s, err)
			}
		}
	}
}

func TestIdentInvalid(t *testing.T) {
	for _, tc := range []struct {
		k    Ident
		s    string
		want string
	}{
		{WindowsService, "spooler’ ; Start-Process calc", `"spooler’ ; Start-Process calc": character U+2019 not allowed in a Windows service name`},
		{WindowsService, "spooler\r", "character U+000D not allowed in a Windows service name"},
		{WindowsService, "svc*", "character '*' (U+002A) not allowed"},
		{WindowsService, "a/b", "character '/' (U+002F) not allowed"},
		{WindowsService, "Spooler ", "must not start or end with a space"},
		{WindowsService, strings.Repeat("a", 257), "a Windows service name has at most 256 characters, this one 257"},
		{SystemdUnit, "nginx*", "character '*' (U+002A) not allowed in a systemd unit name"},
		{SystemdUnit, "-.mount", "must not start with '-'"},
		{SystemdUnit, "a@b@c.service", "at most one '@'"},
		{SystemdUnit, strings.Repeat("a", 248), "at most 247 characters"},
		{SystemdUnit, strings.Repeat("a", 248) + ".service", "at most 255 characters, this one 256"},
		{DebianPackage, "Nginx", "character 'N' (U+004E) not allowed in a Debian package name"},
		{DebianPackage, "a", "at least two characters"},
		{DebianPackage, "libc6:", "architecture qualifier"},
		{DebianPackage, "-oAPT::x", "must not start with '-'"},
		{DebianVersion, "1.0-", "revision"},
		{DebianVersion, "x:1.0", "epoch"},
		{DebianVersion, "1.0 || 2.0", "character ' ' (U+0020, space)"},
		{RPMVersion, "1.0-1-2", "one '-'"},
		{RPMVersion, "1.0*", "character '*'"},
		{RPMPackage, "@group", "character '@'"},
		{WindowsKB, "KB12345", `"KB" followed by 6 to 8 digits`},
		{WindowsKB, "kb5043050", "character 'k'"},
		{WindowsBuild, "20348", "2 to 4 dot-separated numbers"},
		{MacOSUpdate, "macOS ; rm -rf /", "character ';'"},
		{LivePatchID, "../../etc/x", "character '/'"},
		{LivePatchID, "a.b.ko", "no '.' but in a \".ko\" suffix"},
		{KubernetesNode, "Node-1", "character 'N'"},
		{KubernetesNode, "node-.x", "dot-separated labels"},
		{ScriptArg, "a\x00b", "character U+0000 not allowed in a script argument"},
		{ScriptArg, "a\xffb", "byte 0xFF (not UTF-8)"},
		{RPMPackage, "", "must not be empty"},
	} {
		err := tc.k.Check(tc.s)
		var ie *IdentError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %q: got %v, want %q", tc.k, tc.s, err, tc.want)
		}
	}
}

func TestCheckAny(t *testing.T) {
	if err := CheckAny("MSSQL$SQLEXPRESS", SystemdUnit, WindowsService); err != nil {
		t.Errorf("a Windows service name: %v", err)
	}
	if err := CheckAny(`getty@tty1.service`, SystemdUnit, WindowsService); err != nil {
		t.Errorf("a systemd unit: %v", err)
	}
	err := CheckAny("spooler’ ; calc", SystemdUnit, WindowsService)
	want := `"spooler’ ; calc": character U+2019 not allowed in a systemd unit name or a Windows service name`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	// Allowed by both, but not in front: not a character problem.
	err = CheckAny("-n", SystemdUnit, WindowsService)
	if err == nil || err.Error() != `"-n": a systemd unit name must not start with '-' (the tool would read it as an option)` {
		t.Errorf("got %v", err)
	}
	// Refused by both, at different places: the kind that got further.
	err = CheckAny("My Service;", SystemdUnit, WindowsService)
	if err == nil || !strings.Contains(err.Error(), "character ';' (U+003B) not allowed in a Windows service name") {
		t.Errorf("got %v", err)
	}
}

// FuzzIdentCheck checks every kind against arbitrary values: a value
// accepted holds only characters its kind allows, none of the issue's
// payload characters, and fits the length limit; a value refused is
// refused with an *IdentError whose offset names a character of the
// value.
func FuzzIdentCheck(f *testing.F) {
	for _, p := range injectionPayloads() {
		f.Add(p)
	}
	f.Add("nginx-common")
	f.Add("MSSQL$SQLEXPRESS")
	f.Fuzz(func(t *testing.T, s string) {
		for k := DebianPackage; k <= ScriptArg; k++ {
			err := k.Check(s)
			if err == nil {
				if !utf8.ValidString(s) || len(s) > 4096 {
					t.Fatalf("%s accepted %q", k, s)
				}
				forbidden := "‘’‚‛'\"`;&|<>*?[]{}\r\n\x00/=,!%"
				if k != WindowsService {
					forbidden += "$"
				}
				if k != RPMVersion { // '^' sorts before anything in RPM versions (1.0^20200101git)
					forbidden += "^"
				}
				if k != ScriptArg && strings.ContainsAny(s, forbidden) {
					t.Fatalf("%s accepted %q", k, s)
				}
				if k != ScriptArg && s[0] == '-' {
					t.Fatalf("%s accepted %q, which starts with '-'", k, s)
				}
				if k == ScriptArg && strings.ContainsAny(s, "\r\n\x00") {
					t.Fatalf("%s accepted %q", k, s)
				}
				continue
			}
			var ie *IdentError
			if !errors.As(err, &ie) || ie.Value != s {
				t.Fatalf("%s %q: error %T %v", k, s, err, err)
			}
			if ie.Offset >= len(s) || ie.Offset > 0 && !utf8.RuneStart(s[ie.Offset]) && utf8.ValidString(s) {
				t.Fatalf("%s %q: offset %d", k, s, ie.Offset)
			}
			if ie.Offset >= 0 {
				r, _ := utf8.DecodeRuneInString(s[ie.Offset:])
				if ie.Offset > 0 && k.allows(r) && r != utf8.RuneError {
					t.Fatalf("%s %q: offset %d names %q, which the kind allows", k, s, ie.Offset, r)
				}
			}
		}
	})
}
