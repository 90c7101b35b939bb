package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// SchemaID is the $id of the JSON Schema of plan format v1.
const SchemaID = "https://drover.dev/schema/plan.schema.json"

// Schema returns the JSON Schema (draft 2020-12) of plan format v1,
// generated from the Go types: field names from the yaml tags, required
// fields are those without omitempty, descriptions from the desc tags,
// and no object allows properties it does not define. Editors use it for
// completion; Parse remains the authority (the schema cannot express the
// cross-field rules). The output is stable; schema/plan.schema.json is
// kept equal to it by TestSchema.
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeFor[Plan]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "drover rollout plan (" + APIVersion + ")"
	root["$defs"] = g.defs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode plan schema: %w", err)
	}
	return buf.Bytes(), nil
}

type schemaGen struct {
	defs map[string]any
}

// enums lists the values of the string types that have a fixed set.
func enums(t reflect.Type) []string {
	switch t {
	case reflect.TypeFor[Overlap]():
		return []string{string(OverlapWait), string(OverlapRefuse)}
	case reflect.TypeFor[RebootPolicy]():
		return []string{string(RebootNever), string(RebootIfRequired), string(RebootAlways)}
	case reflect.TypeFor[PackageOperation]():
		return []string{string(PackageUpgrade), string(PackageInstall)}
	case reflect.TypeFor[PackageRollback]():
		return []string{string(RollbackPreviousVersion), string(RollbackNone)}
	case reflect.TypeFor[BreachAction]():
		return []string{string(BreachPause), string(BreachRollbackWave), string(BreachRollbackAll)}
	case reflect.TypeFor[RefusalPolicy]():
		return []string{string(RefuseCreation), string(RefusalFailNode)}
	case reflect.TypeFor[CanaryCover]():
		return []string{string(CoverStrata), string(CoverCount)}
	case reflect.TypeFor[InterruptAction]():
		return []string{string(InterruptRetry), string(InterruptFail)}
	case reflect.TypeFor[ProbeKind]():
		return probeKinds
	case reflect.TypeFor[GateMode]():
		return gateModes
	}
	return nil
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t {
	case quantityType:
		return map[string]any{"$ref": "#/$defs/Quantity"}
	case durationType:
		return map[string]any{"$ref": "#/$defs/Duration"}
	case timeType:
		return map[string]any{"$ref": "#/$defs/Time"}
	case canaryType:
		return map[string]any{"oneOf": []any{map[string]any{"type": "boolean"}, g.schema(t.Elem())}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.Struct:
		name := t.Name()
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = true // placeholder against recursion
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.String:
		s := map[string]any{"type": "string"}
		if e := enums(t); e != nil {
			s["enum"] = e
		}
		return s
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	}
	return map[string]any{}
}

func (g *schemaGen) object(t reflect.Type) map[string]any {
	g.scalarDefs()
	props := map[string]any{}
	var required []string
	for _, f := range fieldsOf(t) {
		s := g.schema(t.Field(f.index).Type)
		if f.desc != "" {
			s["description"] = f.desc // draft 2020-12 allows it next to $ref
		}
		props[f.name] = s
		if f.required {
			required = append(required, f.name)
		}
	}
	if t == reflect.TypeFor[PackageAction]() {
		if fam, ok := props["families"].(map[string]any); ok {
			fam["propertyNames"] = map[string]any{"enum": osFamilies}
		}
	}
	obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		obj["required"] = required
	}
	if doc := typeDoc(t); doc != "" {
		obj["description"] = doc
	}
	return obj
}

func (g *schemaGen) scalarDefs() {
	if _, ok := g.defs["Quantity"]; ok {
		return
	}
	g.defs["Quantity"] = map[string]any{
		"description": `a count (5) or a percent ("20%"), more than 0% and at most 100%`,
		"oneOf": []any{
			map[string]any{"type": "integer"},
			map[string]any{"type": "string", "pattern": `^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?|0?\.[0-9]+)%$`},
		},
	}
	g.defs["Duration"] = map[string]any{
		"description": `a duration: "90s", "10m", "1h30m", "2d"`,
		"type":        "string",
		"pattern":     `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d))+$|^0$`,
	}
	g.defs["Time"] = map[string]any{
		"description": `a date ("2025-12-20", UTC midnight) or an RFC 3339 time`,
		"type":        "string",
		"anyOf": []any{
			map[string]any{"format": "date"},
			map[string]any{"format": "date-time"},
		},
	}
}

// typeDoc gives an object's description in the schema.
func typeDoc(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[Plan]():
		return "a rollout plan: what to change, on which nodes, in which order, under which limits, and what stops it"
	case reflect.TypeFor[Action]():
		return "one typed step; set exactly one of " + strings.Join(kindNames, ", ")
	case reflect.TypeFor[Wave]():
		return "one step of the rollout; a wave takes nodes not taken by earlier waves"
	case reflect.TypeFor[Budget]():
		return "breached when failures exceed maxFailures (failures > max, not >=)"
	}
	return ""
}
