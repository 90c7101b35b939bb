package driver

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"unicode/utf16"

	"github.com/drover-dev/drover/internal/plan"
)

// BootLoader picks the kernel a node boots, through the boot loader's own
// tools. It is what a kernel rollback uses when the node already runs the
// new kernel: the kernel it ran before is set to boot, then the node
// reboots (the agent's job).
type BootLoader interface {
	// Name is "grub" or "systemd-boot".
	Name() string
	// Entry returns the boot entry that starts kernel release (uname -r),
	// in the form the loader's tools take; an error wrapping
	// ErrUnavailable when no entry boots it.
	Entry(ctx context.Context, release string) (string, error)
	// Set makes entry boot next (plan.KernelFallbackOneShot) or at every
	// boot (plan.KernelFallbackDefault), then reads the setting back: a
	// nil error means the loader's own state names entry. It returns what
	// it set, for evidence ("next_entry=...").
	Set(ctx context.Context, mode plan.KernelFallback, entry string) (string, error)
}

// releaseRE is what a kernel release (uname -r) may hold: no slash, no
// space, nothing a tool would read as an option.
var releaseRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]*$`)

func checkRelease(release string) error {
	if !releaseRE.MatchString(release) || len(release) > 200 {
		return fmt.Errorf("malformed kernel release %q", release)
	}
	return nil
}

// checkEntry refuses an entry a tool could read as an option or that
// would break the loader's environment block.
func checkEntry(entry string) error {
	if entry == "" || strings.HasPrefix(entry, "-") || strings.ContainsAny(entry, "\n\r\x00") || len(entry) > 1000 {
		return fmt.Errorf("malformed boot entry %q", entry)
	}
	return nil
}

// efiLoaderGUID is systemd-boot's vendor GUID for its EFI variables
// (LoaderInfo, LoaderEntryOneShot, LoaderEntryDefault).
const efiLoaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// efiVarDir is where Linux exposes EFI variables (efivarfs).
const efiVarDir = "/sys/firmware/efi/efivars"

// DetectBootLoader finds the boot loader that booted this node:
// systemd-boot when its LoaderInfo EFI variable says so (systemd-boot sets
// it at every boot; GRUB does not), else GRUB from its configuration,
// /boot/grub/grub.cfg (Debian, Ubuntu; tools grub-*) or
// /boot/grub2/grub.cfg (RHEL, SUSE; tools grub2-*). Neither found is an
// error wrapping ErrUnsupported. fs nil means the real files.
func DetectBootLoader(r Runner, fsys FileSystem) (BootLoader, error) {
	if fsys == nil {
		fsys = OSFileSystem{}
	}
	if raw, err := fsys.ReadFile(efiVarDir + "/LoaderInfo-" + efiLoaderGUID); err == nil {
		if info, err := decodeEFIString(raw); err == nil && strings.HasPrefix(info, "systemd-boot") {
			return &SystemdBoot{r: r, fs: fsys}, nil
		}
	}
	for _, g := range []struct{ tool, dir string }{{"grub", "/boot/grub"}, {"grub2", "/boot/grub2"}} {
		if _, err := fsys.ReadFile(g.dir + "/grub.cfg"); err == nil {
			return NewGRUB(r, fsys, g.tool, g.dir), nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("boot loader: %w", err)
		}
	}
	return nil, fmt.Errorf("boot loader: neither systemd-boot (EFI variable LoaderInfo) nor GRUB (/boot/grub/grub.cfg, /boot/grub2/grub.cfg) found: %w", ErrUnsupported)
}

// GRUB drives GRUB 2 through its own tools: grub-reboot (one-shot:
// next_entry in grubenv), grub-set-default (saved_entry), grub-editenv to
// read grubenv back. Entries come from grub.cfg: a menuentry's id
// ($menuentry_id_option 'gnulinux-6.1.0-26-amd64-advanced-UUID'), inside
// its submenus as GRUB's ">" path
// (gnulinux-advanced-UUID>gnulinux-6.1.0-26-amd64-advanced-UUID).
type GRUB struct {
	r    Runner
	fs   FileSystem
	tool string // "grub" or "grub2": the tools' prefix
	dir  string // the GRUB directory holding grub.cfg and grubenv
}

var _ BootLoader = (*GRUB)(nil)

// NewGRUB returns GRUB with tools named tool-reboot, tool-set-default and
// tool-editenv ("grub" on Debian, "grub2" on RHEL and SUSE) and its files
// in dir (/boot/grub or /boot/grub2).
func NewGRUB(r Runner, fsys FileSystem, tool, dir string) *GRUB {
	if fsys == nil {
		fsys = OSFileSystem{}
	}
	return &GRUB{r: r, fs: fsys, tool: tool, dir: dir}
}

// Name is "grub".
func (g *GRUB) Name() string { return "grub" }

func (g *GRUB) config() (string, error) {
	raw, err := g.fs.ReadFile(g.dir + "/grub.cfg")
	if err != nil {
		return "", fmt.Errorf("grub: %w", err)
	}
	return string(raw), nil
}

// Entry returns the ">" path of the first menuentry whose linux line
// loads vmlinuz-RELEASE, recovery entries last. A grub.cfg that reads
// BootLoaderSpec entries (blscfg: RHEL 8 and later, Fedora) has no
// menuentry of its kernels: the entry is then the id grubby --info
// prints for /boot/vmlinuz-RELEASE, which grub2-reboot takes.
func (g *GRUB) Entry(ctx context.Context, release string) (string, error) {
	if err := checkRelease(release); err != nil {
		return "", fmt.Errorf("grub: %w", err)
	}
	cfg, err := g.config()
	if err != nil {
		return "", err
	}
	entries := parseGRUBConfig(cfg)
	var recovery string
	for _, e := range entries {
		if path.Base(e.Linux) != "vmlinuz-"+release {
			continue
		}
		if !e.Recovery {
			return e.Path, nil
		}
		if recovery == "" {
			recovery = e.Path
		}
	}
	if recovery != "" {
		return recovery, nil
	}
	if blscfgRE.MatchString(cfg) {
		return g.blsEntry(ctx, release)
	}
	return "", fmt.Errorf("grub: no menu entry of %s/grub.cfg boots /boot/vmlinuz-%s (%d entries): %w", g.dir, release, len(entries), ErrUnavailable)
}

var blscfgRE = regexp.MustCompile(`(?m)^\s*blscfg\s*$`)

// blsEntry asks grubby for the BootLoaderSpec entry of a kernel.
func (g *GRUB) blsEntry(ctx context.Context, release string) (string, error) {
	arg := "--info=/boot/vmlinuz-" + release
	stdout, stderr, err := g.r.Run(ctx, nil, "grubby", arg)
	if err != nil {
		if exitCode(err) > 0 {
			return "", cmdError(ErrUnavailable, "grub: "+commandLine("grubby", arg), err, firstLine(string(stderr)))
		}
		return "", cmdError(nil, "grub: "+commandLine("grubby", arg), err, firstLine(string(stderr)))
	}
	for line := range strings.SplitSeq(string(stdout), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "id="); ok {
			id := strings.Trim(v, `"`)
			if err := checkEntry(id); err != nil {
				return "", fmt.Errorf("grub: grubby %s: %w", arg, err)
			}
			return id, nil
		}
	}
	return "", fmt.Errorf("grub: grubby %s printed no id (BootLoaderSpec entry) for kernel %s: %w", arg, release, ErrUnavailable)
}

// Set runs grub-reboot ENTRY (one-shot) or grub-set-default ENTRY, then
// reads grubenv back with grub-editenv. A default needs GRUB_DEFAULT=saved
// (grub.cfg then sets default="${saved_entry}"); without it GRUB ignores
// saved_entry, and Set refuses before changing anything.
func (g *GRUB) Set(ctx context.Context, mode plan.KernelFallback, entry string) (string, error) {
	if err := checkEntry(entry); err != nil {
		return "", fmt.Errorf("grub: %w", err)
	}
	cmd, key := g.tool+"-reboot", "next_entry"
	if mode == plan.KernelFallbackDefault {
		cfg, err := g.config()
		if err != nil {
			return "", err
		}
		if !strings.Contains(cfg, `"${saved_entry}"`) {
			return "", fmt.Errorf("grub: %s/grub.cfg does not boot the saved entry (GRUB_DEFAULT is not saved in /etc/default/grub), so %s-set-default would not change what boots: %w",
				g.dir, g.tool, ErrUnsupported)
		}
		cmd, key = g.tool+"-set-default", "saved_entry"
	}
	args := []string{"--boot-directory=" + path.Dir(g.dir), entry}
	if _, stderr, err := g.r.Run(ctx, nil, cmd, args...); err != nil {
		return "", cmdError(nil, "grub: "+commandLine(cmd, args...), err, firstLine(string(stderr)))
	}
	env, err := g.env(ctx)
	if err != nil {
		return "", err
	}
	if env[key] != entry {
		return "", fmt.Errorf("grub: %s ran but %s/grubenv has %s=%q, want %q", cmd, g.dir, key, env[key], entry)
	}
	return fmt.Sprintf("grub: %s=%s in %s/grubenv (%s)", key, entry, g.dir, cmd), nil
}

// env reads grubenv with grub-editenv FILE list.
func (g *GRUB) env(ctx context.Context) (map[string]string, error) {
	file := g.dir + "/grubenv"
	stdout, stderr, err := g.r.Run(ctx, nil, g.tool+"-editenv", file, "list")
	if err != nil {
		return nil, cmdError(nil, "grub: "+commandLine(g.tool+"-editenv", file, "list"), err, firstLine(string(stderr)))
	}
	env := map[string]string{}
	for line := range strings.SplitSeq(string(stdout), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, nil
}

// grubEntry is one menuentry of grub.cfg.
type grubEntry struct {
	Path     string // ids (titles where an entry has none) of its submenus and itself, joined by ">"
	Title    string
	Linux    string // the kernel its linux line loads
	Recovery bool
}

// parseGRUBConfig reads the menu entries of a grub.cfg as grub-mkconfig
// writes it: one "menuentry ... {" or "submenu ... {" per line, a "}"
// line closing it, the kernel on a "linux" line. Other blocks (functions)
// nest the same way and are skipped.
func parseGRUBConfig(cfg string) []grubEntry {
	type frame struct {
		kind  string // menuentry, submenu, other
		name  string
		entry *grubEntry
	}
	var stack []frame
	var out []*grubEntry
	for line := range strings.SplitSeq(cfg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == "}" {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		words := shellWords(line)
		if len(words) == 0 {
			continue
		}
		if strings.HasSuffix(line, "{") {
			f := frame{kind: "other"}
			if (words[0] == "menuentry" || words[0] == "submenu") && len(words) > 1 {
				f.kind, f.name = words[0], words[1]
				for i := 2; i+1 < len(words); i++ {
					if words[i] == "$menuentry_id_option" || words[i] == "--id" {
						f.name = words[i+1]
					}
				}
				if f.kind == "menuentry" {
					var parts []string
					for _, p := range stack {
						if p.kind == "submenu" {
							parts = append(parts, p.name)
						}
					}
					f.entry = &grubEntry{Path: strings.Join(append(parts, f.name), ">"), Title: words[1],
						Recovery: strings.Contains(words[1], "recovery mode")}
					out = append(out, f.entry)
				}
			}
			stack = append(stack, f)
			continue
		}
		if len(stack) == 0 || stack[len(stack)-1].entry == nil {
			continue
		}
		switch words[0] {
		case "linux", "linux16", "linuxefi":
			if len(words) > 1 {
				e := stack[len(stack)-1].entry
				e.Linux = words[1]
				for _, w := range words[2:] {
					if w == "single" {
						e.Recovery = true
					}
				}
			}
		}
	}
	entries := make([]grubEntry, len(out))
	for i, e := range out {
		entries[i] = *e
	}
	return entries
}

// shellWords splits a grub.cfg line into words as GRUB's shell-like
// syntax does for the forms grub-mkconfig writes: 'single quotes',
// "double quotes" and backslash escapes.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	in := false // inside a word
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			in = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			in = true
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				cur.WriteByte(line[i])
			}
		case c == '\\' && i+1 < len(line):
			in = true
			i++
			cur.WriteByte(line[i])
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			in = true
			cur.WriteByte(c)
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// SystemdBoot drives systemd-boot through bootctl: entries from bootctl
// list --json=short, the one-shot entry with bootctl set-oneshot and the
// default with bootctl set-default. Both setters write EFI variables
// (LoaderEntryOneShot, LoaderEntryDefault), which Set reads back from
// efivarfs.
type SystemdBoot struct {
	r  Runner
	fs FileSystem
	// ESP and Boot, when set, are passed as --esp-path and --boot-path
	// (bootctl finds them itself otherwise).
	ESP, Boot string
}

var _ BootLoader = (*SystemdBoot)(nil)

// NewSystemdBoot returns systemd-boot driven through bootctl; esp and boot
// may be empty (bootctl finds them).
func NewSystemdBoot(r Runner, fsys FileSystem, esp, boot string) *SystemdBoot {
	if fsys == nil {
		fsys = OSFileSystem{}
	}
	return &SystemdBoot{r: r, fs: fsys, ESP: esp, Boot: boot}
}

// Name is "systemd-boot".
func (s *SystemdBoot) Name() string { return "systemd-boot" }

func (s *SystemdBoot) paths() []string {
	var args []string
	if s.ESP != "" {
		args = append(args, "--esp-path="+s.ESP)
	}
	if s.Boot != "" {
		args = append(args, "--boot-path="+s.Boot)
	}
	return args
}

// bootctlEntry is one entry of bootctl list --json=short.
type bootctlEntry struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Version string `json:"version"`
	Linux   string `json:"linux"`
	Options string `json:"options"`
}

// entries lists the boot entries bootctl sees.
func (s *SystemdBoot) entries(ctx context.Context) ([]bootctlEntry, error) {
	args := append([]string{"list", "--json=short", "--no-pager"}, s.paths()...)
	stdout, stderr, err := s.r.Run(ctx, nil, "bootctl", args...)
	if err != nil {
		return nil, cmdError(nil, "systemd-boot: "+commandLine("bootctl", args...), err, firstLine(string(stderr)))
	}
	entries, err := parseBootctlList(stdout)
	if err != nil {
		return nil, fmt.Errorf("systemd-boot: bootctl list: %w", err)
	}
	return entries, nil
}

// parseBootctlList reads bootctl list --json=short: one JSON object per
// entry and line (systemd 252, Debian 12), or one array of them (later
// versions).
func parseBootctlList(out []byte) ([]bootctlEntry, error) {
	out = bytes.TrimSpace(out)
	var entries []bootctlEntry
	if bytes.HasPrefix(out, []byte("[")) {
		if err := json.Unmarshal(out, &entries); err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		return entries, nil
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var e bootctlEntry
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// Entry returns the id of the first entry whose version is release or
// whose linux line loads vmlinuz-RELEASE (or a file in a directory named
// RELEASE, as kernel-install lays them out); entries for the recovery
// ("single") last.
func (s *SystemdBoot) Entry(ctx context.Context, release string) (string, error) {
	if err := checkRelease(release); err != nil {
		return "", fmt.Errorf("systemd-boot: %w", err)
	}
	entries, err := s.entries(ctx)
	if err != nil {
		return "", err
	}
	var recovery string
	for _, e := range entries {
		if e.Version != release && path.Base(e.Linux) != "vmlinuz-"+release && path.Base(path.Dir(e.Linux)) != release {
			continue
		}
		if !strings.Contains(" "+e.Options+" ", " single ") {
			return e.ID, nil
		}
		if recovery == "" {
			recovery = e.ID
		}
	}
	if recovery != "" {
		return recovery, nil
	}
	return "", fmt.Errorf("systemd-boot: no boot entry boots kernel %s (%d entries): %w", release, len(entries), ErrUnavailable)
}

// Set runs bootctl set-oneshot ENTRY or bootctl set-default ENTRY and
// reads the EFI variable back.
func (s *SystemdBoot) Set(ctx context.Context, mode plan.KernelFallback, entry string) (string, error) {
	if err := checkEntry(entry); err != nil {
		return "", fmt.Errorf("systemd-boot: %w", err)
	}
	verb, variable := "set-oneshot", "LoaderEntryOneShot"
	if mode == plan.KernelFallbackDefault {
		verb, variable = "set-default", "LoaderEntryDefault"
	}
	args := append([]string{verb, entry}, s.paths()...)
	if _, stderr, err := s.r.Run(ctx, nil, "bootctl", args...); err != nil {
		return "", cmdError(nil, "systemd-boot: "+commandLine("bootctl", args...), err, firstLine(string(stderr)))
	}
	file := efiVarDir + "/" + variable + "-" + efiLoaderGUID
	raw, err := s.fs.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("systemd-boot: bootctl %s ran but %s cannot be read back: %w", verb, variable, err)
	}
	got, err := decodeEFIString(raw)
	if err != nil {
		return "", fmt.Errorf("systemd-boot: %s: %w", file, err)
	}
	if got != entry {
		return "", fmt.Errorf("systemd-boot: bootctl %s ran but %s is %q, want %q", verb, variable, got, entry)
	}
	return fmt.Sprintf("systemd-boot: EFI variable %s=%s (bootctl %s)", variable, entry, verb), nil
}

// decodeEFIString reads an efivarfs file holding a string: four bytes of
// attributes, then UTF-16LE ending in a NUL.
func decodeEFIString(raw []byte) (string, error) {
	if len(raw) < 4 || (len(raw)-4)%2 != 0 {
		return "", fmt.Errorf("malformed EFI variable (%d bytes)", len(raw))
	}
	u := make([]uint16, 0, (len(raw)-4)/2)
	for i := 4; i+1 < len(raw); i += 2 {
		c := binary.LittleEndian.Uint16(raw[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}
