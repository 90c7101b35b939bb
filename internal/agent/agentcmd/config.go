package agentcmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// envOf names the environment variable that overrides a flag's value
// from the config file (the file < the environment < flags).
var envOf = map[string]string{
	"server": "DROVER_SERVER", "token": "DROVER_AGENT_TOKEN",
	"enroll-token": "DROVER_ENROLL_TOKEN", "ca-hash": "DROVER_CA_HASH",
}

// applyConfigFile sets, from the YAML file at path, every flag the
// command line did not set and the environment does not override. Its
// keys are flag names; a list sets a repeatable flag once per item. An
// unknown key, a nested map or a bad value is an error naming the file
// and the key, and nothing is applied.
func applyConfigFile(f *pflag.FlagSet, path string, getenv func(string) string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty, or only comments
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
		return nil // only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s: want a mapping of flag names to values", path)
	}
	type set struct{ name, value string }
	var sets []set
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		fl := f.Lookup(name)
		if fl == nil || name == "config" || name == "version" {
			return fmt.Errorf("config %s line %d: unknown key %q (keys are the flags' names, e.g. server, state-dir)", path, k.Line, name)
		}
		if seen[name] {
			return fmt.Errorf("config %s line %d: key %q given twice", path, k.Line, name)
		}
		seen[name] = true
		if f.Changed(name) || (envOf[name] != "" && getenv(envOf[name]) != "") {
			continue
		}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag == "!!null" {
				continue
			}
			sets = append(sets, set{name, v.Value})
		case yaml.SequenceNode:
			if fl.Value.Type() != "stringArray" {
				return fmt.Errorf("config %s line %d: %s takes one value, not a list", path, v.Line, name)
			}
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return fmt.Errorf("config %s line %d: %s: want a list of strings", path, item.Line, name)
				}
				sets = append(sets, set{name, item.Value})
			}
		default:
			return fmt.Errorf("config %s line %d: %s: want a value or a list", path, v.Line, name)
		}
	}
	// Check every value first (on a scratch copy of the flags), so that a
	// bad one leaves the real flags as the command line set them.
	scratch := pflag.NewFlagSet("config", pflag.ContinueOnError)
	f.VisitAll(func(fl *pflag.Flag) { scratch.AddFlag(&pflag.Flag{Name: fl.Name, Value: probeValue(fl)}) })
	for _, s := range sets {
		if err := scratch.Set(s.name, s.value); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, s.name, err)
		}
	}
	for _, s := range sets {
		if err := f.Set(s.name, s.value); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, s.name, err)
		}
	}
	return nil
}

// probeValue is a throw-away value of fl's type, for checking a value
// without setting the flag.
func probeValue(fl *pflag.Flag) pflag.Value {
	switch fl.Value.Type() {
	case "bool":
		return &boolValue{}
	case "duration":
		fs := pflag.NewFlagSet("", pflag.ContinueOnError)
		fs.Duration("d", 0, "")
		return fs.Lookup("d").Value
	case "stringArray":
		fs := pflag.NewFlagSet("", pflag.ContinueOnError)
		fs.StringArray("a", nil, "")
		return fs.Lookup("a").Value
	}
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	fs.String("s", "", "")
	return fs.Lookup("s").Value
}

type boolValue struct{ b bool }

func (v *boolValue) Set(s string) (err error) { v.b, err = strconv.ParseBool(s); return err }
func (v *boolValue) String() string           { return strconv.FormatBool(v.b) }
func (v *boolValue) Type() string             { return "bool" }
