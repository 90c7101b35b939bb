package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// readmeCommands returns the usages of the README's command list (the
// first code block under "## Commands"): each line up to its
// description (after a run of 3 spaces), with its continuation lines.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "\n## Commands\n")
	if !ok {
		t.Fatal(`README.md has no "## Commands" section`)
	}
	_, block, ok := strings.Cut(after, "```\n")
	if ok {
		block, _, ok = strings.Cut(block, "```")
	}
	if !ok {
		t.Fatal(`README.md: no code block under "## Commands"`)
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		switch {
		case strings.HasPrefix(l, "drover "):
			if i := strings.Index(l, "   "); i > 0 {
				l = l[:i]
			}
			lines = append(lines, l)
		case strings.TrimSpace(l) != "" && len(lines) > 0:
			lines[len(lines)-1] += " " + strings.TrimSpace(l)
		}
	}
	return lines
}

// commandWord is a word the README's usages use for subcommands only
// (arguments are upper case: ID, FILE...).
var commandWord = regexp.MustCompile(`^[a-z][a-z-]*(\|[a-z][a-z-]*)*$`)

var flagRE = regexp.MustCompile(`(?:^|[\s\[|])(--[a-z][a-z0-9-]*)`)

// sub returns c's subcommand called name (or by an alias), or nil.
func sub(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name || s.HasAlias(name) {
			return s
		}
	}
	return nil
}

// TestReadmeCommands reads the README's command list as a newcomer does
// and checks every command it shows exists (each alternative of
// `a|b|c`, and of `x | y` at the same level) and takes every flag it
// shows: a command or flag renamed or removed without the README fails
// here.
func TestReadmeCommands(t *testing.T) {
	lines := readmeCommands(t)
	if len(lines) < 20 {
		t.Fatalf("the README's command list has %d commands; parsed wrong?", len(lines))
	}
	root := newRoot(&env{getenv: func(string) string { return "" }})
	for _, line := range lines {
		segments := strings.Split(strings.TrimPrefix(line, "drover "), " | ")
		var parent *cobra.Command
		var cmds []*cobra.Command
		for si, seg := range segments {
			words := strings.Fields(seg)
			if si == 0 {
				parent, cmds = root, []*cobra.Command{root}
			}
			for len(words) > 0 {
				var next []*cobra.Command
				for _, alt := range strings.Split(words[0], "|") {
					from := cmds[0]
					if si > 0 && len(next) == 0 && sub(from, alt) == nil && parent != nil {
						from = parent // `list | get ID`: a sibling
					}
					if s := sub(from, alt); s != nil {
						next = append(next, s)
					}
				}
				if len(next) == 0 {
					break
				}
				parent, cmds, words = next[0].Parent(), next, words[1:]
			}
			if len(cmds) == 1 && cmds[0] == root || len(words) > 0 && commandWord.MatchString(words[0]) {
				t.Errorf("README: %q: no command %q here", line, seg)
				continue
			}
			for _, m := range flagRE.FindAllStringSubmatch(strings.Join(words, " "), -1) {
				flag := strings.TrimPrefix(m[1], "--")
				found := false
				for _, c := range cmds {
					found = found || c.Flags().Lookup(flag) != nil || c.InheritedFlags().Lookup(flag) != nil ||
						c.DisableFlagParsing && strings.Contains(helpOf(t, c), "--"+flag)
				}
				if !found {
					t.Errorf("README: %q: %s takes no --%s", line, cmds[0].CommandPath(), flag)
				}
			}
		}
	}
}

// helpOf runs `drover PATH --help` for a command that parses its own
// flags (drover agent) and returns what it prints.
func helpOf(t *testing.T, c *cobra.Command) string {
	t.Helper()
	path := strings.Fields(c.CommandPath())[1:]
	_, out, errs := run(t, append(path, "--help")...)
	return out + errs
}
