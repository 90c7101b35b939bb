package engine

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPure fails the build if the engine does I/O, logs or reads the
// clock: its decisions must depend on Input alone.
func TestPure(t *testing.T) {
	forbidden := map[string]bool{"os": true, "net": true, "net/http": true, "database/sql": true,
		"log": true, "log/slog": true, "io/ioutil": true, "os/exec": true, "syscall": true}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if forbidden[path] {
				t.Errorf("%s imports %q: the engine must not do I/O or log", f, path)
			}
		}
		for _, bad := range []string{"time.Now(", "time.Since(", "time.Until(", "time.Sleep(", "time.After(", "time.Tick("} {
			if strings.Contains(string(src), bad) {
				t.Errorf("%s calls %s...): the engine reads time only from Input.Now", f, strings.TrimSuffix(bad, "("))
			}
		}
		checked++
	}
	if checked < 4 {
		t.Fatalf("checked only %d files; is the test running in the engine directory?", checked)
	}
}
