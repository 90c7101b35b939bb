package plan

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Ident is a kind of identifier that a plan hands to a tool on a node:
// package names and versions, systemd units, Windows services and KBs,
// macOS update labels, live patch ids, Kubernetes node names, script
// arguments. Plan validation and the drivers check values with the same
// Ident, so that a plan accepted by `drover plan validate` is not refused
// by its driver for its characters, and a value reaching a driver some
// other way (an API client, a snapshot) meets the same rules.
//
// Every kind is an allowlist grounded in the tool's own rules, never a
// list of forbidden characters: a character is refused unless the kind
// allows it. Values are passed to tools as whole argv elements (or, for
// PowerShell, in environment variables), never pasted into a shell or a
// script: the allowlists are a second line, which also keeps out values
// the tool itself would read as options ("-o..."), patterns ("nginx*",
// which systemctl and Get-Service expand) or other syntax (apt's
// "name-" removes, zypper's "!name" too).
type Ident int

// The kinds of identifiers; the comment of each states its rule.
const (
	// DebianPackage: Debian Policy §5.6.1, lower-case letters, digits,
	// '+', '-' and '.', at least two characters, starting with a letter
	// or digit; optionally followed by a multiarch qualifier ":ARCH"
	// (ARCH lower-case letters, digits and '-'). At most 255 characters.
	DebianPackage Ident = iota + 1
	// DebianVersion: Debian Policy §5.6.12, [EPOCH:]UPSTREAM[-REVISION]:
	// EPOCH digits; UPSTREAM letters, digits and ". + ~ -", starting with
	// a letter or digit; REVISION (after the last '-') letters, digits
	// and ". + ~". At most 255 characters.
	DebianVersion
	// RPMPackage: letters, digits and ". _ + -", starting with a letter
	// or digit (rpmbuild's Name, without the macro characters "%{}" that
	// no built package carries). At most 255 characters.
	RPMPackage
	// RPMVersion: [EPOCH:]VERSION[-RELEASE] as dnf and zypper take it:
	// EPOCH digits; VERSION and RELEASE letters, digits and ". _ + ~ ^",
	// VERSION starting with a letter or digit. At most 255 characters.
	RPMVersion
	// SystemdUnit: systemd.unit(5), ASCII letters, digits and ": _ . \ @ -",
	// not starting with '-' or '.', at most one '@' (template instances),
	// at most 255 characters including the type suffix (".service" is
	// what systemctl adds to a name without a known suffix). No glob
	// characters: systemctl would expand them to every matching unit.
	SystemdUnit
	// WindowsService: a service (key) name as the Service Control
	// Manager stores it: at most 256 characters, no '/' or '\'. drover
	// allows the printable ASCII subset real service names use: letters,
	// digits, space and "_ . - $ # @ + ( )" ("MSSQL$SQLEXPRESS",
	// "Intel(R) TPM Provisioning Service", "cbdhsvc_4a2b5"), not starting
	// with '-' or a space nor ending with a space. Get-Service and
	// Restart-Service read "* ? [ ]" in -Name as wildcards (and '`' as
	// their escape): allowing them would restart every matching service.
	WindowsService
	// WindowsKB: a Knowledge Base article id, "KB" and 6 to 8 digits.
	WindowsKB
	// WindowsBuild: an OS build, 2 to 4 dot-separated numbers
	// ("20348.2700", "10.0.20348.2700").
	WindowsBuild
	// MacOSUpdate: a softwareupdate label or title ("macOS Sonoma
	// 14.6.1-23G93", "Command Line Tools for Xcode-15.3"): ASCII letters,
	// digits, space and "_ . - + ( )", starting with a letter or digit,
	// not ending with a space. At most 255 characters.
	MacOSUpdate
	// MacOSVersion: a softwareupdate version, the characters of
	// MacOSUpdate.
	MacOSVersion
	// LivePatchID: a kpatch module name or a Canonical Livepatch fix
	// ("cve-2024-1086"): letters, digits, '_' and '-', starting with a
	// letter or digit, optionally ending in ".ko"; at most 55 characters
	// before ".ko" (the kernel's MODULE_NAME_LEN less its NUL).
	LivePatchID
	// KubernetesNode: a node name, an RFC 1123 DNS subdomain: lower-case
	// letters, digits, '-' and '.', labels starting and ending with a
	// letter or digit, at most 63 characters each and 253 in all.
	KubernetesNode
	// ScriptArg: one argument of a signed script, passed as one argv
	// element: any printable UTF-8 text without control characters (NUL
	// cannot be in an argument, CR and LF make lines of one), at most
	// 4096 bytes; it may be empty and may start with '-' (the script's
	// own options).
	ScriptArg
)

// String names the kind in messages: "Windows service name".
func (k Ident) String() string {
	switch k {
	case DebianPackage:
		return "Debian package name"
	case DebianVersion:
		return "Debian package version"
	case RPMPackage:
		return "RPM package name"
	case RPMVersion:
		return "RPM package version"
	case SystemdUnit:
		return "systemd unit name"
	case WindowsService:
		return "Windows service name"
	case WindowsKB:
		return "Windows KB id"
	case WindowsBuild:
		return "Windows build number"
	case MacOSUpdate:
		return "macOS update label"
	case MacOSVersion:
		return "macOS update version"
	case LivePatchID:
		return "live patch id"
	case KubernetesNode:
		return "Kubernetes node name"
	case ScriptArg:
		return "script argument"
	}
	return "identifier kind " + strconv.Itoa(int(k))
}

// a is the kind with its indefinite article: "a Debian package name",
// "an RPM package name".
func (k Ident) a() string {
	if k == RPMPackage || k == RPMVersion {
		return "an " + k.String()
	}
	return "a " + k.String()
}

// IdentError says why a value is not a valid identifier of its kind.
type IdentError struct {
	Kinds []Ident // the kinds checked; several for CheckAny
	Value string
	// Offset is the byte offset in Value of the first character not
	// allowed; -1 when the value as a whole is wrong (empty, too long,
	// badly formed).
	Offset int
	Msg    string // "character U+2019 not allowed in a Windows service name"
	// char: the character at Offset is not in the kind's set (rather
	// than allowed but misplaced, as a leading '-').
	char bool
}

// Error prints the value, shortened, then the problem: `"spooler’ ;
// Start-Process calc": character U+2019 not allowed in a Windows service
// name`.
func (e *IdentError) Error() string { return QuoteValue(e.Value) + ": " + e.Msg }

// QuoteValue quotes s for a message, escaping control characters and
// shortening it to its first 64 characters followed by "…".
func QuoteValue(s string) string {
	if utf8.RuneCountInString(s) > 64 {
		n := 0
		for i := range s {
			if n == 64 {
				s = s[:i] + "…"
				break
			}
			n++
		}
	}
	return strconv.Quote(s)
}

// Check returns nil when s is a valid identifier of kind k, else an
// *IdentError naming the first character not allowed or the rule broken.
func (k Ident) Check(s string) error {
	if s == "" && k == ScriptArg {
		return nil // an empty argument is one argv element like any other
	}
	if s == "" {
		return &IdentError{Kinds: []Ident{k}, Value: s, Offset: -1, Msg: k.a() + " must not be empty"}
	}
	if s[0] == '-' && k != ScriptArg {
		return &IdentError{Kinds: []Ident{k}, Value: s, Offset: 0, Msg: k.a() + " must not start with '-' (the tool would read it as an option)"}
	}
	if i, r, ok := firstNotAllowed(s, k.allows); !ok {
		return &IdentError{Kinds: []Ident{k}, Value: s, Offset: i, Msg: describeChar(s, i, r) + " not allowed in " + k.a(), char: true}
	}
	limit := 255
	switch k {
	case WindowsService:
		limit = 256
	case KubernetesNode:
		limit = 253
	case ScriptArg:
		limit = 4096
	case LivePatchID:
		limit = 55 + len(".ko")
	case SystemdUnit:
		if !hasUnitSuffix(s) {
			limit -= len(".service")
		}
	}
	if len(s) > limit {
		return &IdentError{Kinds: []Ident{k}, Value: s, Offset: -1, Msg: fmt.Sprintf("%s has at most %d characters, this one %d", k.a(), limit, len(s))}
	}
	if msg := k.form(s); msg != "" {
		return &IdentError{Kinds: []Ident{k}, Value: s, Offset: -1, Msg: msg}
	}
	return nil
}

// CheckAny returns nil when s is valid as at least one of kinds (a plan
// value whose tool is known only on the node, such as a service restart's
// service: a systemd unit or a Windows service). Otherwise it returns the
// error of the kind that accepted the longest prefix of s; a character no
// kind allows is reported once, naming every kind.
func CheckAny(s string, kinds ...Ident) error {
	var best *IdentError
	var charKinds []string
	sameChar := true
	for _, k := range kinds {
		err := k.Check(s)
		if err == nil {
			return nil
		}
		ie := err.(*IdentError)
		if !ie.char || best != nil && best.Offset != ie.Offset {
			sameChar = false
		}
		charKinds = append(charKinds, k.a())
		if best == nil || ie.Offset > best.Offset {
			best = ie
		}
	}
	if best == nil {
		return nil
	}
	out := *best
	out.Kinds = kinds
	if sameChar && len(kinds) > 1 {
		r, _ := utf8.DecodeRuneInString(s[out.Offset:])
		out.Msg = describeChar(s, out.Offset, r) + " not allowed in " + orList(charKinds)
	}
	return &out
}

func orList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// firstNotAllowed returns the offset and rune of the first character of s
// that allows refuses (utf8.RuneError for a byte that is not UTF-8).
func firstNotAllowed(s string, allows func(rune) bool) (int, rune, bool) {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i, r, false
			}
		}
		if !allows(r) {
			return i, r, false
		}
	}
	return 0, 0, true
}

// describeChar names the character at s[i] for a message: "character ';'
// (U+003B)", "character U+2019", "byte 0xFF (not UTF-8)".
func describeChar(s string, i int, r rune) string {
	if r == utf8.RuneError {
		if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
			return fmt.Sprintf("byte 0x%02X (not UTF-8)", s[i])
		}
	}
	if r > ' ' && r < 0x7f {
		return fmt.Sprintf("character %q (U+%04X)", r, r)
	}
	if r == ' ' {
		return "character ' ' (U+0020, space)"
	}
	return fmt.Sprintf("character U+%04X", r)
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}
func isLowerAlnum(r rune) bool { return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' }
func isDigit(r rune) bool      { return r >= '0' && r <= '9' }

// allows is the character set of each kind.
func (k Ident) allows(r rune) bool {
	switch k {
	case DebianPackage:
		return isLowerAlnum(r) || strings.ContainsRune("+-.:", r)
	case DebianVersion:
		return isAlnum(r) || strings.ContainsRune(".+~:-", r)
	case RPMPackage:
		return isAlnum(r) || strings.ContainsRune("._+-", r)
	case RPMVersion:
		return isAlnum(r) || strings.ContainsRune("._+~^:-", r)
	case SystemdUnit:
		return isAlnum(r) || strings.ContainsRune(`:_.\@-`, r)
	case WindowsService:
		return isAlnum(r) || strings.ContainsRune(" _.-$#@+()", r)
	case WindowsKB:
		return isDigit(r) || r == 'K' || r == 'B'
	case WindowsBuild:
		return isDigit(r) || r == '.'
	case MacOSUpdate, MacOSVersion:
		return isAlnum(r) || strings.ContainsRune(" _.-+()", r)
	case LivePatchID:
		return isAlnum(r) || strings.ContainsRune("_-.", r)
	case KubernetesNode:
		return isLowerAlnum(r) || r == '-' || r == '.'
	case ScriptArg:
		return r != utf8.RuneError && !unicode.IsControl(r) && r != '\u2028' && r != '\u2029'
	}
	return false
}

var unitSuffixes = []string{".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path", ".timer", ".slice", ".scope"}

func hasUnitSuffix(s string) bool {
	for _, x := range unitSuffixes {
		if strings.HasSuffix(s, x) && len(s) > len(x) {
			return true
		}
	}
	return false
}

// form checks the structure of a value made of allowed characters; ""
// when it holds.
func (k Ident) form(s string) string {
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	switch k {
	case DebianPackage:
		name, arch, qualified := strings.Cut(s, ":")
		switch {
		case len(name) < 2:
			return "a Debian package name has at least two characters"
		case !isLowerAlnum(rune(name[0])):
			return "a Debian package name starts with a lower-case letter or digit"
		case qualified && (arch == "" || !isLowerAlnum(rune(arch[0])) || strings.ContainsAny(arch, "+.:")):
			return "a Debian architecture qualifier is ':' and lower-case letters, digits and '-' (\"libc6:amd64\")"
		}
	case DebianVersion:
		rest := s
		if epoch, after, ok := strings.Cut(s, ":"); ok {
			if epoch == "" || strings.TrimFunc(epoch, isDigit) != "" {
				return "a Debian version's epoch (before ':') is digits"
			}
			rest = after
		}
		switch {
		case rest == "" || !isAlnum(rune(rest[0])):
			return "a Debian upstream version starts with a letter or digit"
		case strings.Contains(rest, ":"):
			return "a Debian version has at most one ':' (after the epoch)"
		case strings.HasSuffix(rest, "-"):
			return "a Debian revision (after the last '-') must not be empty"
		}
	case RPMPackage:
		if !isAlnum(first) {
			return "an RPM package name starts with a letter or digit"
		}
	case RPMVersion:
		rest := s
		if epoch, after, ok := strings.Cut(s, ":"); ok {
			if epoch == "" || strings.TrimFunc(epoch, isDigit) != "" {
				return "an RPM version's epoch (before ':') is digits"
			}
			rest = after
		}
		ver, rel, hasRel := strings.Cut(rest, "-")
		switch {
		case ver == "" || !isAlnum(rune(ver[0])):
			return "an RPM version starts with a letter or digit"
		case strings.Contains(rest, ":"):
			return "an RPM version has at most one ':' (after the epoch)"
		case hasRel && (rel == "" || strings.Contains(rel, "-")):
			return "an RPM version is VERSION-RELEASE with one '-' and a non-empty release"
		}
	case SystemdUnit:
		prefix, _, template := strings.Cut(s, "@")
		switch {
		case first == '.':
			return "a systemd unit name must not start with '.'"
		case strings.Count(s, "@") > 1:
			return "a systemd unit name has at most one '@'"
		case template && prefix == "":
			return "a systemd template unit name has a prefix before '@'"
		}
	case WindowsService:
		if first == ' ' || last == ' ' {
			return "a Windows service name must not start or end with a space"
		}
	case WindowsKB:
		digits, ok := strings.CutPrefix(s, "KB")
		if !ok || len(digits) < 6 || len(digits) > 8 || strings.TrimFunc(digits, isDigit) != "" {
			return "a Windows KB id is \"KB\" followed by 6 to 8 digits (KB5043050)"
		}
	case WindowsBuild:
		parts := strings.Split(s, ".")
		if len(parts) < 2 || len(parts) > 4 || badBuildParts(parts) {
			return "a Windows build number is 2 to 4 dot-separated numbers (20348.2700)"
		}
	case MacOSUpdate, MacOSVersion:
		switch {
		case !isAlnum(first):
			return k.a() + " starts with a letter or digit"
		case last == ' ':
			return k.a() + " must not end with a space"
		}
	case LivePatchID:
		base := strings.TrimSuffix(s, ".ko")
		switch {
		case base == "" || !isAlnum(rune(base[0])):
			return "a live patch id starts with a letter or digit"
		case strings.Contains(base, "."):
			return "a live patch id has no '.' but in a \".ko\" suffix"
		case len(base) > 55:
			return fmt.Sprintf("a live patch id has at most 55 characters before \".ko\", this one %d", len(base))
		}
	case KubernetesNode:
		for _, l := range strings.Split(s, ".") {
			if l == "" || len(l) > 63 || !isLowerAlnum(rune(l[0])) || !isLowerAlnum(rune(l[len(l)-1])) {
				return "a Kubernetes node name is dot-separated labels of at most 63 lower-case letters, digits and '-', each starting and ending with a letter or digit"
			}
		}
	}
	return ""
}

func badBuildParts(parts []string) bool {
	for _, p := range parts {
		if p == "" || len(p) > 6 {
			return true
		}
	}
	return false
}
