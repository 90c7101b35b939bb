package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAuditSummary(t *testing.T) {
	long := strings.Repeat("é", 80)
	for _, c := range []struct {
		detail string
		width  int
		want   string
	}{
		{``, 100, "-"},
		{`{"reason":"change freeze","by":"bob"}`, 100, "reason=change freeze by=bob"},
		{"{\n  \"reason\": \"two\\nlines\",\n  \"nodes\": 4,\n  \"waves\": [\"canary\", \"rest\"]\n}", 100, `reason=two lines nodes=4 waves=["canary","rest"]`},
		{`{"reason":"` + long + `"}`, 100, "reason=" + strings.Repeat("é", 59) + "…"},
		{`{"a":"0123456789","b":"0123456789"}`, 20, "a=0123456789 b=0123…"},
		{`["x", 1]`, 100, `["x",1]`},
		{`"plain"`, 100, `"plain"`},
	} {
		got := auditSummary(json.RawMessage(c.detail), c.width)
		if got != c.want {
			t.Errorf("auditSummary(%q, %d) = %q, want %q", c.detail, c.width, got, c.want)
		}
		if !utf8.ValidString(got) || strings.ContainsAny(got, "\n\t") || utf8.RuneCountInString(got) > c.width {
			t.Errorf("auditSummary(%q, %d) = %q: not one valid line within the width", c.detail, c.width, got)
		}
	}
}

func TestCell(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "-"},
		{"bob", "bob"},
		{"a\tb\nc", "a b c"},
		{"日本語のノード名です", "日本語の…"},
	} {
		if got := cell(c.in, 5); got != c.want {
			t.Errorf("cell(%q, 5) = %q, want %q", c.in, got, c.want)
		}
	}
}
