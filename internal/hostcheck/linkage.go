package hostcheck

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	pathpkg "path"
	"slices"
	"strings"
)

// Linkage is how a binary's shared libraries resolve on a host, as the
// dynamic loader would resolve them when the binary next starts.
type Linkage struct {
	// Binary is the path read (for a script: its interpreter's, see
	// Script).
	Binary string `json:"binary"`
	// Script is the script's path when the path named was a script
	// ("#!"): its interpreter is the binary whose linkage counts.
	Script string `json:"script,omitempty"`
	// Interpreter is the ELF's program interpreter (PT_INTERP, the
	// dynamic loader); "" for a static binary.
	Interpreter string `json:"interpreter,omitempty"`
	Static      bool   `json:"static,omitempty"`
	// Libraries maps each shared library loaded (by DT_NEEDED name,
	// transitively) to the path it resolves to.
	Libraries map[string]string `json:"libraries,omitempty"`
	// Missing lists what does not resolve, in load order.
	Missing []MissingLib `json:"missing,omitempty"`
}

// MissingLib is a shared library (or the program interpreter) that does
// not resolve, and the object that needs it.
type MissingLib struct {
	Name     string `json:"name"`
	NeededBy string `json:"neededBy"`
}

// String is "libpcre2-8.so.0 (needed by
// /lib/x86_64-linux-gnu/libselinux.so.1)".
func (m MissingLib) String() string {
	return m.Name + " (needed by " + m.NeededBy + ")"
}

// Problem is the linkage's failure (nil when everything resolves):
// "libsmartcols.so.1 not found", every missing library named.
func (l *Linkage) Problem() error {
	if len(l.Missing) == 0 {
		return nil
	}
	var parts []string
	for _, m := range l.Missing {
		s := m.Name + " not found"
		if m.NeededBy != l.Binary {
			s += " (needed by " + m.NeededBy + ")"
		}
		parts = append(parts, s)
	}
	return errors.New(strings.Join(parts, ", "))
}

// ErrNotELF marks a path that is neither an ELF binary nor a script.
var ErrNotELF = errors.New("not an ELF binary")

// ResolveLinkage reads binary (an absolute path) from fsys, the host's
// file system from /, and resolves its shared libraries as glibc's
// dynamic loader does, without running anything (neither the binary nor
// ldd, which runs the loader): the DT_NEEDED entries of the binary and,
// transitively, of every library found, each searched in the loading
// object's DT_RPATH and its loaders' (when it has no DT_RUNPATH), its
// DT_RUNPATH ($ORIGIN, $LIB and $PLATFORM expanded), the directories of
// /etc/ld.so.conf (and its includes), then the default directories
// (/lib/<multiarch triplet>, /usr/lib/<triplet>, /lib64 and /usr/lib64
// for 64-bit objects, /lib, /usr/lib). A candidate of another ELF class
// or machine is skipped, as the loader skips it. The program
// interpreter (PT_INTERP) must exist too. LD_LIBRARY_PATH is not read:
// it is the service's environment, not the agent's. The ld.so.cache is
// not read either: it is built from the same directories, and a library
// removed since the cache was built does not load (a directory only
// the cache knows, from `ldconfig DIR`, is not searched here). Nor are
// the glibc-hwcaps subdirectories: a library installed only there
// reads as missing.
//
// A script ("#!") is resolved through its interpreter. The error is for
// a binary that cannot be read or is not ELF; what does not resolve is
// in Missing.
func ResolveLinkage(fsys fs.FS, binary string) (*Linkage, error) {
	l := &Linkage{Binary: binary}
	f, err := openELF(fsys, binary)
	if errors.Is(err, ErrNotELF) {
		interp, ok := shebang(fsys, binary)
		if !ok {
			return l, err
		}
		l.Script, l.Binary = binary, interp
		f, err = openELF(fsys, interp)
	}
	if err != nil {
		return l, err
	}
	defer f.Close()
	r := resolver{fsys: fsys, class: f.Class, machine: f.Machine, found: map[string]string{}}
	r.confDirs = ldSoConf(fsys)
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(p.Open(), 4096))
		if err == nil {
			l.Interpreter = string(bytes.TrimRight(b, "\x00"))
		}
	}
	needed, _ := f.DynString(elf.DT_NEEDED)
	if l.Interpreter == "" && len(needed) == 0 {
		l.Static = true
		return l, nil
	}
	if l.Interpreter != "" {
		if _, err := fs.Stat(fsys, rel(l.Interpreter)); err != nil {
			l.Missing = append(l.Missing, MissingLib{Name: l.Interpreter, NeededBy: l.Binary})
		}
	}
	type object struct {
		path   string
		f      *elfObject
		rpaths []string // DT_RPATH of its loaders, nearest first (those with DT_RUNPATH give none)
	}
	queue := []object{{path: l.Binary, f: f}}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		needed, _ := o.f.DynString(elf.DT_NEEDED)
		rpath, _ := o.f.DynString(elf.DT_RPATH)
		runpath, _ := o.f.DynString(elf.DT_RUNPATH)
		origin := pathpkg.Dir(o.path)
		var dirs []string
		if len(runpath) == 0 {
			// DT_RPATH of the object, then of its loaders; ignored when
			// the object has DT_RUNPATH.
			dirs = append(dirs, r.expand(rpath, origin)...)
			dirs = append(dirs, o.rpaths...)
		}
		dirs = append(dirs, r.expand(runpath, origin)...)
		dirs = append(dirs, r.confDirs...)
		dirs = append(dirs, r.defaultDirs()...)
		childRpaths := o.rpaths
		if len(runpath) == 0 {
			childRpaths = slices.Concat(r.expand(rpath, origin), o.rpaths)
		}
		for _, name := range needed {
			if _, done := r.found[name]; done {
				continue // loaded once, by its name
			}
			p, lf := r.search(name, dirs)
			if lf == nil {
				r.found[name] = ""
				l.Missing = append(l.Missing, MissingLib{Name: name, NeededBy: o.path})
				continue
			}
			r.found[name] = p
			queue = append(queue, object{path: p, f: lf, rpaths: childRpaths})
		}
		if o.f != f {
			o.f.Close()
		}
	}
	for name, p := range r.found {
		if p != "" {
			if l.Libraries == nil {
				l.Libraries = map[string]string{}
			}
			l.Libraries[name] = p
		}
	}
	return l, nil
}

type resolver struct {
	fsys     fs.FS
	class    elf.Class
	machine  elf.Machine
	confDirs []string
	found    map[string]string // DT_NEEDED name -> path ("" when missing)
}

// search returns the first candidate for name in dirs of the binary's
// class and machine, opened (nil when none).
func (r *resolver) search(name string, dirs []string) (string, *elfObject) {
	if strings.Contains(name, "/") {
		// A path: used as it is (relative ones from / here; the loader
		// takes them from the working directory, which is the service's).
		p := pathpkg.Join("/", name)
		if f, err := openELF(r.fsys, p); err == nil {
			if f.Class == r.class && f.Machine == r.machine {
				return p, f
			}
			f.Close()
		}
		return "", nil
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		if seen[d] {
			continue
		}
		seen[d] = true
		p := pathpkg.Join(d, name)
		f, err := openELF(r.fsys, p)
		if err != nil {
			continue
		}
		if f.Class == r.class && f.Machine == r.machine {
			return p, f
		}
		f.Close()
	}
	return "", nil
}

// triplet is Debian's multiarch tuple for the ELF's machine.
func (r *resolver) triplet() string {
	switch r.machine {
	case elf.EM_X86_64:
		return "x86_64-linux-gnu"
	case elf.EM_386:
		return "i386-linux-gnu"
	case elf.EM_AARCH64:
		return "aarch64-linux-gnu"
	case elf.EM_ARM:
		return "arm-linux-gnueabihf"
	case elf.EM_PPC64:
		return "powerpc64le-linux-gnu"
	case elf.EM_S390:
		return "s390x-linux-gnu"
	case elf.EM_RISCV:
		return "riscv64-linux-gnu"
	}
	return ""
}

// platform is what the loader substitutes for $PLATFORM.
func (r *resolver) platform() string {
	switch r.machine {
	case elf.EM_X86_64:
		return "x86_64"
	case elf.EM_386:
		return "i686"
	case elf.EM_AARCH64:
		return "aarch64"
	}
	return strings.TrimSuffix(strings.SplitN(r.triplet(), "-", 2)[0], "le")
}

func (r *resolver) defaultDirs() []string {
	var ds []string
	if t := r.triplet(); t != "" {
		ds = append(ds, "/lib/"+t, "/usr/lib/"+t)
	}
	if r.class == elf.ELFCLASS64 {
		ds = append(ds, "/lib64", "/usr/lib64")
	}
	return append(ds, "/lib", "/usr/lib")
}

// expand splits DT_RPATH or DT_RUNPATH values into directories, with
// $ORIGIN (the object's directory), $PLATFORM and $LIB (each libdir the
// loader may have been built with) substituted.
func (r *resolver) expand(values []string, origin string) []string {
	var libs []string
	if t := r.triplet(); t != "" {
		libs = append(libs, "lib/"+t)
	}
	if r.class == elf.ELFCLASS64 {
		libs = append(libs, "lib64")
	}
	libs = append(libs, "lib")
	var out []string
	for _, v := range values {
		for _, d := range strings.Split(v, ":") {
			if d == "" {
				continue
			}
			for _, o := range []string{"$ORIGIN", "${ORIGIN}"} {
				d = strings.ReplaceAll(d, o, origin)
			}
			for _, p := range []string{"$PLATFORM", "${PLATFORM}"} {
				d = strings.ReplaceAll(d, p, r.platform())
			}
			if strings.Contains(d, "$LIB") || strings.Contains(d, "${LIB}") {
				for _, lib := range libs {
					out = append(out, pathpkg.Clean(strings.NewReplacer("${LIB}", lib, "$LIB", lib).Replace(d)))
				}
				continue
			}
			if pathpkg.IsAbs(d) {
				out = append(out, pathpkg.Clean(d))
			}
		}
	}
	return out
}

// ldSoConf returns the directories /etc/ld.so.conf lists, its includes
// (globs, relative to /etc) followed in order ("hwcap" lines ignored).
func ldSoConf(fsys fs.FS) []string {
	var dirs []string
	seen := map[string]bool{}
	var read func(file string, depth int)
	read = func(file string, depth int) {
		if depth > 8 || seen[file] {
			return
		}
		seen[file] = true
		b, err := fs.ReadFile(fsys, rel(file))
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			line, _, _ = strings.Cut(line, "#")
			fields := strings.FieldsFunc(line, func(c rune) bool { return c == ' ' || c == '\t' || c == ':' || c == ',' })
			if len(fields) == 0 || fields[0] == "hwcap" {
				continue
			}
			if fields[0] == "include" {
				for _, g := range fields[1:] {
					if !pathpkg.IsAbs(g) {
						g = pathpkg.Join(pathpkg.Dir(file), g)
					}
					matches, _ := fs.Glob(fsys, rel(g))
					slices.Sort(matches)
					for _, m := range matches {
						read("/"+m, depth+1)
					}
				}
				continue
			}
			for _, d := range fields {
				if pathpkg.IsAbs(d) {
					dirs = append(dirs, pathpkg.Clean(d))
				}
			}
		}
	}
	read("/etc/ld.so.conf", 0)
	return dirs
}

// rel turns an absolute path into an fs.FS name.
func rel(p string) string {
	p = strings.TrimPrefix(pathpkg.Clean(p), "/")
	if p == "" {
		return "."
	}
	return p
}

// elfObject is an open ELF file and the file it reads.
type elfObject struct {
	*elf.File
	file fs.File
}

func (o *elfObject) Close() error {
	o.File.Close()
	return o.file.Close()
}

// openELF opens path from fsys as an ELF file; ErrNotELF when it is not
// one.
func openELF(fsys fs.FS, path string) (*elfObject, error) {
	// Only regular files are opened: a FIFO or a device named as a
	// binary would block or never end.
	if st, err := fs.Stat(fsys, rel(path)); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, ErrNotELF)
	}
	file, err := fsys.Open(rel(path))
	if err != nil {
		return nil, err
	}
	ra, ok := file.(io.ReaderAt)
	if !ok {
		b, err := io.ReadAll(io.LimitReader(file, 256<<20))
		if err != nil {
			file.Close()
			return nil, err
		}
		ra = bytes.NewReader(b)
	}
	f, err := elf.NewFile(ra)
	if err != nil {
		file.Close()
		var fe *elf.FormatError
		if errors.As(err, &fe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: %w", path, ErrNotELF)
		}
		return nil, err
	}
	return &elfObject{File: f, file: file}, nil
}

// shebang returns the interpreter of a script ("#!/usr/bin/python3 -u"
// gives /usr/bin/python3).
func shebang(fsys fs.FS, path string) (string, bool) {
	if st, err := fs.Stat(fsys, rel(path)); err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	file, err := fsys.Open(rel(path))
	if err != nil {
		return "", false
	}
	defer file.Close()
	b := make([]byte, 256)
	n, _ := io.ReadFull(file, b)
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	rest, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return "", false
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || !pathpkg.IsAbs(fields[0]) {
		return "", false
	}
	return fields[0], true
}
