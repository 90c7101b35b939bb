package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/api"
)

func newAuditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the audit log", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(newAuditListCmd(e), newAuditVerifyCmd(e)) // audit.go
	return cmd
}

// newAuditListCmd is `drover audit list`: the newest entries first, one
// line each (-o json or yaml: the entries in full).
func newAuditListCmd(e *env) *cobra.Command {
	var r remote
	var q api.AuditQuery
	cmd := &cobra.Command{Use: "list", Short: "List audit entries, newest first, one line each (-o json: in full)", Args: noArgs,
		Long: `List audit entries, newest first: the newest --limit entries that match
--rollout, --after and --before, one line each (time, actor, action, object,
a summary of the detail, long fields cut with "…"). -o json and -o yaml
print the entries in full. When older entries match too, the command says
which --before shows the next page.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.Limit < 1 || q.Limit > 5000 {
				return usagef("--limit %d: want 1..5000", q.Limit)
			}
			if q.After < 0 || q.Before < 0 {
				return usagef("--after and --before: want sequence numbers (0 or more)")
			}
			c, err := r.client(e)
			if err != nil {
				return err
			}
			q.Newest = true
			out, err := c.QueryAudit(cmd.Context(), q)
			if err != nil {
				return apiErr(err)
			}
			if err := r.show(e, out, func(w io.Writer) {
				fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tOBJECT\tSUMMARY")
				for _, a := range out.Entries {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Seq, a.At.UTC().Format("2006-01-02 15:04:05Z"),
						cell(a.Actor, 24), cell(a.Action, 32), cell(a.Object, 40), auditSummary(a.Detail, 100))
				}
			}); err != nil {
				return err
			}
			if out.Before > 0 && r.output == string(formatTable) {
				fmt.Fprintf(e.stderr, "older entries: drover audit list --before %d\n", out.Before)
			}
			return nil
		}}
	cmd.Flags().StringVar(&q.Rollout, "rollout", "", "only this rollout's entries")
	cmd.Flags().Int64Var(&q.After, "after", 0, "only entries after this sequence number")
	cmd.Flags().Int64Var(&q.Before, "before", 0, "only entries before this sequence number (the next page)")
	cmd.Flags().IntVar(&q.Limit, "limit", 500, "at most this many entries, the newest")
	r.flags(cmd, e, true)
	return cmd
}

// cell is s on one line for a table cell: control characters (newlines,
// tabs) as spaces, runs of spaces as one, at most width runes, cut on a rune
// boundary with "…"; "-" when empty.
func cell(s string, width int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if s == "" {
		return "-"
	}
	return truncRunes(s, width)
}

// truncRunes cuts s to at most width runes, the last one "…" when cut.
func truncRunes(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	n := 0
	for i := range s {
		if n == width-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// auditSummary is an entry's detail in one line of at most width runes:
// an object's fields as key=value in their order (strings unquoted,
// nested values as compact JSON, each value cut at 60 runes), anything
// else as compact JSON.
func auditSummary(detail json.RawMessage, width int) string {
	if len(bytes.TrimSpace(detail)) == 0 {
		return "-"
	}
	var fields []string
	dec := json.NewDecoder(bytes.NewReader(detail))
	dec.UseNumber()
	if t, err := dec.Token(); err == nil && t == json.Delim('{') {
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				break
			}
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				break
			}
			fields = append(fields, fmt.Sprintf("%v=%s", k, truncRunes(cell(jsonValueText(v), 1<<30), 60)))
		}
		return cell(strings.Join(fields, " "), width)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, detail); err != nil {
		return cell(string(detail), width)
	}
	return cell(buf.String(), width)
}

// jsonValueText is a JSON value as text: a string's contents, anything
// else compact.
func jsonValueText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var buf bytes.Buffer
	if json.Compact(&buf, v) != nil {
		return string(v)
	}
	return buf.String()
}
