package advisory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Parse reads one document: an OSV record, a CSAF 2.0 document, or a
// JSON array of either (a bundle). name (a file name or URL) starts
// every error, followed by the JSON path of the problem:
// "dsa.json: affected[2].ranges[0].events[1]: fixed: empty version".
// Any error refuses the whole document. Advisories are returned in the
// document's order; an ID that appears twice keeps its newest Modified.
func Parse(name string, data []byte) ([]Advisory, error) {
	out, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func parse(data []byte) ([]Advisory, error) {
	if len(data) > MaxDocument {
		return nil, fmt.Errorf("document of %d bytes (at most %d)", len(data), MaxDocument)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("empty document")
	}
	switch data[0] {
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, jsonErr("", err)
		}
		if len(list) > MaxAdvisories {
			return nil, fmt.Errorf("%d advisories in one document (at most %d)", len(list), MaxAdvisories)
		}
		out := make([]Advisory, 0, len(list))
		seen := make(map[string]int, len(list))
		for i, raw := range list {
			a, err := parseOne(raw, fmt.Sprintf("[%d]", i))
			if err != nil {
				return nil, err
			}
			if j, dup := seen[a.ID]; dup {
				if a.Modified.After(out[j].Modified) {
					out[j] = a
				}
				continue
			}
			seen[a.ID] = len(out)
			out = append(out, a)
		}
		return out, nil
	case '{':
		a, err := parseOne(data, "")
		if err != nil {
			return nil, err
		}
		return []Advisory{a}, nil
	}
	return nil, errors.New("not a JSON object or array")
}

func parseOne(raw []byte, path string) (Advisory, error) {
	var probe struct {
		Document    json.RawMessage `json:"document"`
		ID          json.RawMessage `json:"id"`
		Modified    json.RawMessage `json:"modified"`
		ProductTree json.RawMessage `json:"product_tree"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return Advisory{}, jsonErr(path, err)
	}
	switch {
	case probe.Document != nil:
		return parseCSAF(raw, path)
	case probe.ID != nil && probe.Modified != nil:
		return parseOSV(raw, path)
	}
	where := path
	if where == "" {
		where = "document"
	}
	return Advisory{}, fmt.Errorf("%s: neither an OSV record (id, modified) nor a CSAF document (document.csaf_version)", where)
}

// jsonErr names where encoding/json found a problem: the field path of
// a type error, the byte offset of a syntax error.
func jsonErr(path string, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("%s: %s where JSON has %s", join(path, te.Field), goType(te.Type.String()), te.Value)
	case errors.As(err, &se):
		where := path
		if where == "" {
			where = "document"
		}
		return fmt.Errorf("%s: invalid JSON at byte %d: %v", where, se.Offset, err)
	}
	if path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

func goType(t string) string {
	switch {
	case t == "string":
		return "want a string"
	case strings.HasPrefix(t, "[]"):
		return "want an array"
	case strings.HasPrefix(t, "map[") || strings.Contains(t, "struct") || strings.Contains(t, "."):
		return "want an object"
	case slices.Contains([]string{"float64", "int", "int64"}, t):
		return "want a number"
	}
	return "want " + t
}
