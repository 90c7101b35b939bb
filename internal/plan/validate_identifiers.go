package plan

import (
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// identifiers checks every value of the plan that a driver or probe hands
// to a tool against the allowlist of its kind (see Ident), and reports
// the first character not allowed at its own line and column.
//
// Where the tool is known only on the node, a value must be valid for at
// least one of the tools it may reach: a service restart's service is a
// systemd unit or a Windows service; the package list shared by every os
// family names packages of one of the families without a list of their
// own; a kernel package is a Debian or an RPM package. The driver on the
// node then holds the value to its own tool's rule.
func (v *validator) identifiers() {
	for i := range v.p.Change.Actions {
		a := &v.p.Change.Actions[i]
		ap := joinIndex("change.actions", i)
		switch {
		case a.Package != nil:
			v.packageIdentifiers(ap+".package", a.Package)
		case a.Kernel != nil:
			v.ident(ap+".kernel.package", a.Kernel.Package, DebianPackage, RPMPackage)
			v.ident(ap+".kernel.version", a.Kernel.Version, DebianVersion, RPMVersion)
		case a.LivePatch != nil:
			v.ident(ap+".livepatch.id", a.LivePatch.ID, LivePatchID)
		case a.ServiceRestart != nil:
			v.ident(ap+".serviceRestart.service", a.ServiceRestart.Service, SystemdUnit, WindowsService)
		case a.ContainerRuntime != nil:
			v.ident(ap+".containerRuntime.version", a.ContainerRuntime.Version, DebianVersion, RPMVersion)
		case a.Script != nil:
			for j, arg := range a.Script.Args {
				v.ident(joinIndex(ap+".script.args", j), arg, ScriptArg)
			}
		}
	}
	for i, pr := range v.p.Gates.Node.Probes {
		switch pr.Kind {
		case ProbeSystemd:
			v.ident(joinIndex("gates.node.probes", i)+".unit", pr.Unit, SystemdUnit)
		case ProbeWindowsService:
			v.ident(joinIndex("gates.node.probes", i)+".unit", pr.Unit, WindowsService)
		}
	}
}

// familyIdents are the kinds of a package pin's name and version on each
// os family.
var familyIdents = map[string][2]Ident{
	"debian":  {DebianPackage, DebianVersion},
	"ubuntu":  {DebianPackage, DebianVersion},
	"rhel":    {RPMPackage, RPMVersion},
	"suse":    {RPMPackage, RPMVersion},
	"windows": {WindowsKB, WindowsBuild},
	"macos":   {MacOSUpdate, MacOSVersion},
}

func (v *validator) packageIdentifiers(path string, pa *PackageAction) {
	// The shared list serves the families without a list of their own.
	var names, versions []Ident
	for _, fam := range osFamilies {
		k := familyIdents[fam]
		if _, own := pa.Families[fam]; own || slices.Contains(names, k[0]) {
			continue
		}
		names, versions = append(names, k[0]), append(versions, k[1])
	}
	if len(names) == 0 {
		for _, fam := range osFamilies {
			if k := familyIdents[fam]; !slices.Contains(names, k[0]) {
				names, versions = append(names, k[0]), append(versions, k[1])
			}
		}
	}
	for i, p := range pa.Packages {
		pp := joinIndex(path+".packages", i)
		v.ident(pp+".name", p.Name, names...)
		v.ident(pp+".version", p.Version, versions...)
	}
	for _, fam := range sortedKeys(pa.Families) {
		k, ok := familyIdents[fam]
		if !ok {
			continue // an unknown family, already reported
		}
		for i, p := range pa.Families[fam] {
			pp := joinIndex(joinKey(path+".families", fam), i)
			v.ident(pp+".name", p.Name, k[0])
			v.ident(pp+".version", p.Version, k[1])
		}
	}
}

// ident reports a written value at path that is not valid as any of
// kinds. Blank values and values already reported (a version range, say)
// are left to the message that reported them.
func (v *validator) ident(path, value string, kinds ...Ident) {
	if !v.written(path) || strings.TrimSpace(value) == "" || v.reported(path) {
		return
	}
	err := CheckAny(value, kinds...)
	var ie *IdentError
	if !errors.As(err, &ie) {
		return
	}
	line, col := v.identPos(path, value, ie.Offset)
	v.d.errAt(line, col, path, "%s", ie.Error())
}

// reported reports whether an error was already recorded at path.
func (v *validator) reported(path string) bool {
	for _, e := range v.d.errs {
		if e.Path == path {
			return true
		}
	}
	return false
}

// identPos is the position in the file of byte off of the value at path:
// of the value itself when off is -1, or when the scalar is written with
// escapes that make offsets in the value differ from columns in the file.
func (v *validator) identPos(path, value string, off int) (int, int) {
	pos, _ := v.p.closest(path)
	n := v.d.nodes[path]
	if n == nil || off < 0 {
		return pos.Line, pos.Col
	}
	if n.Line >= 1 && n.Line <= len(v.d.lines) {
		src := v.d.lines[n.Line-1]
		if n.Style == yaml.DoubleQuotedStyle && strings.Contains(src, `\`) ||
			n.Style == yaml.SingleQuotedStyle && strings.Contains(value, "'") {
			return pos.Line, pos.Col
		}
	}
	before := value[:off]
	line := strings.Count(before, "\n") + 1
	col := utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return v.d.exprPos(n, value, line, col)
}
