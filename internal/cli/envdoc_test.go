package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMEEnvVars: every environment variable the programs read (or
// set for the scripts they run) is in README.md's table, so that the
// README cannot fall behind the code. It greps the Go source of cmd/ and
// internal/ (tests aside) for DROVER_* names and for the names read with
// Getenv, getenv or LookupEnv.
func TestREADMEEnvVars(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	drover := regexp.MustCompile(`\bDROVER_[A-Z][A-Z0-9_]*`)
	read := regexp.MustCompile(`(?:Getenv|getenv|LookupEnv)\(\s*"([A-Za-z_][A-Za-z0-9_]*)"`)
	where := map[string]string{}
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			names := drover.FindAllString(string(src), -1)
			for _, m := range read.FindAllStringSubmatch(string(src), -1) {
				names = append(names, m[1])
			}
			for _, n := range names {
				if where[n] == "" {
					where[n] = path
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(where) < 10 {
		t.Fatalf("found only %d variables in the source: the grep is broken", len(where))
	}
	var missing []string
	for n, path := range where {
		if !strings.Contains(string(readme), "`"+n+"`") {
			missing = append(missing, n+" (read in "+path+")")
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("README.md's environment variables table lacks:\n  %s", strings.Join(missing, "\n  "))
	}
}
