package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// InventoryError is a problem at a place in an inventory file. Line is
// 1-based; 0 means the problem concerns the whole file.
type InventoryError struct {
	File string
	Line int
	Msg  string
}

// Error formats the problem as "FILE:LINE: MSG" (or "FILE: MSG").
func (e *InventoryError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Inventory formats LoadInventory understands.
const (
	FormatDrover      = "drover"       // drover YAML or JSON: nodes: [{id, facts, labels}]
	FormatAnsibleINI  = "ansible-ini"  // Ansible INI inventory
	FormatAnsibleYAML = "ansible-yaml" // Ansible YAML inventory (all: {hosts, children, vars})
)

// LoadInventoryFile reads the inventory at path; see LoadInventory.
func LoadInventoryFile(path string) ([]*Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load inventory: %w", err)
	}
	return LoadInventory(path, data)
}

// LoadInventory parses an inventory. name is used in error messages and to
// detect the format (DetectFormat). Every returned node has a nonempty,
// unique ID without whitespace; nodes keep file order. Problems are
// reported as *InventoryError ("FILE:LINE: message"); the first problem
// stops parsing.
//
// Drover files are strict: unknown fields are errors, facts use the field
// names of Facts' json tags (os.family, hardware.class, bootId, …).
//
// Ansible inventories: the host name is the ID (ranges such as
// web[01:03].example.com are expanded); vars become labels (group vars
// inherited, deeper groups over their parents, host vars win); each group
// a host belongs to, directly or through children, adds the label
// "group.NAME"="true"; the well-known vars ansible_os_family/os_family,
// ansible_distribution, ansible_distribution_version/os_version,
// ansible_kernel, hardware_class and ansible_architecture/arch set facts
// (families normalised: RedHat→rhel, Darwin→macos, Ubuntu distribution →
// ubuntu; arches x86_64→amd64, aarch64→arm64) instead of labels. The
// full rules are at the top of ansible.go.
func LoadInventory(name string, data []byte) ([]*Node, error) {
	switch DetectFormat(name, data) {
	case FormatAnsibleINI:
		return parseAnsibleINI(name, data)
	case FormatAnsibleYAML:
		return parseAnsibleYAML(name, data)
	default:
		return parseDrover(name, data)
	}
}

// DetectFormat decides an inventory's format: by extension first (.json is
// drover JSON; .ini and .cfg are Ansible INI; .yaml and .yml are YAML),
// then by content: a JSON object or a YAML mapping with a top-level
// "nodes" key is drover, any other YAML mapping is Ansible YAML, and
// anything else (sections in brackets, bare host names) is Ansible INI.
// A .yaml file that does not parse is treated as drover so that the YAML
// error is reported.
func DetectFormat(name string, data []byte) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return FormatDrover
	case ".ini", ".cfg":
		return FormatAnsibleINI
	}
	first := firstContentLine(data)
	switch {
	case strings.HasPrefix(first, "{"):
		return FormatDrover
	case strings.HasPrefix(first, "["), first == "":
		if strings.HasPrefix(first, "[") && !looksYAML(data) {
			return FormatAnsibleINI
		}
	}
	isYAML := false
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		isYAML = true
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		if first == "" || isYAML {
			return FormatDrover // empty, or broken YAML: let the strict parser report it
		}
		return FormatAnsibleINI
	}
	for i := 0; i+1 < len(doc.Content[0].Content); i += 2 {
		if doc.Content[0].Content[i].Value == "nodes" {
			return FormatDrover
		}
	}
	return FormatAnsibleYAML
}

func looksYAML(data []byte) bool {
	var doc yaml.Node
	return yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode
}

// firstContentLine returns the first line that is neither blank nor a
// comment, trimmed.
func firstContentLine(data []byte) string {
	for line := range bytes.Lines(data) {
		l := strings.TrimSpace(string(line))
		if l == "" || l[0] == '#' || l[0] == ';' || l == "---" {
			continue
		}
		return l
	}
	return ""
}

// droverFile is the drover inventory schema.
type droverFile struct {
	Nodes []Node `yaml:"nodes" json:"nodes"`
}

func parseDrover(name string, data []byte) ([]*Node, error) {
	if strings.HasPrefix(firstContentLine(data), "{") {
		if err := jsonSyntax(name, data); err != nil {
			return nil, err
		}
		// Valid JSON is YAML once its indentation tabs are spaces (a raw
		// tab cannot occur inside a valid JSON string), and the YAML path
		// gives line numbers for unknown fields.
		data = bytes.ReplaceAll(data, []byte("\t"), []byte(" "))
	}
	var file droverFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	lines := nodeLines(&doc)
	nodes := make([]*Node, len(file.Nodes))
	seen := make(map[string]int, len(file.Nodes))
	for i := range file.Nodes {
		n := &file.Nodes[i]
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		if err := ValidID(n.ID); err != nil {
			return nil, &InventoryError{File: name, Line: line, Msg: fmt.Sprintf("node %d: %v", i+1, err)}
		}
		if first, dup := seen[n.ID]; dup {
			return nil, &InventoryError{File: name, Line: line, Msg: fmt.Sprintf("duplicate node id %q (first at line %d)", n.ID, first)}
		}
		seen[n.ID] = line
		nodes[i] = n
	}
	return nodes, nil
}

// nodeLines returns the line of each item of the top-level nodes sequence.
func nodeLines(doc *yaml.Node) []int {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value != "nodes" {
			continue
		}
		var lines []int
		for _, item := range m.Content[i+1].Content {
			lines = append(lines, item.Line)
		}
		return lines
	}
	return nil
}

// yamlError turns a yaml.v3 error into an *InventoryError, keeping the
// first message that carries a line.
func yamlError(name string, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs = te.Errors
	}
	for _, m := range msgs {
		if line, msg, ok := splitYAMLLine(m); ok {
			return &InventoryError{File: name, Line: line, Msg: strings.ReplaceAll(msg, "fleet.", "")}
		}
	}
	return &InventoryError{File: name, Msg: strings.TrimPrefix(msgs[0], "yaml: ")}
}

// splitYAMLLine splits yaml.v3's "yaml: line N: msg" or "line N: msg".
func splitYAMLLine(m string) (int, string, bool) {
	m = strings.TrimPrefix(strings.TrimSpace(m), "yaml: ")
	rest, ok := strings.CutPrefix(m, "line ")
	if !ok {
		return 0, "", false
	}
	num, msg, ok := strings.Cut(rest, ": ")
	line, err := strconv.Atoi(num)
	if !ok || err != nil {
		return 0, "", false
	}
	return line, msg, true
}

// jsonSyntax checks data is valid JSON and reports the line of a syntax
// error.
func jsonSyntax(name string, data []byte) error {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return &InventoryError{File: name, Line: line, Msg: se.Error()}
	}
	if err != nil {
		return &InventoryError{File: name, Msg: err.Error()}
	}
	return nil
}

// ValidID reports whether id can name a node: nonempty, no whitespace or
// control characters.
func ValidID(id string) error {
	if id == "" {
		return errors.New("empty node id")
	}
	if i := strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return fmt.Errorf("node id %q contains whitespace", id)
	}
	return nil
}
