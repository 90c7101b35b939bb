package server

import (
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/baseline"
)

var rewrite = flag.Bool("rewrite", false, "regenerate the OpenAPI schemas from the api types")

// TestOpenAPI checks that openapi.json documents exactly the routes the
// server registers, and that its schemas are those of the api types.
func TestOpenAPI(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	schemas := map[string]any{}
	for _, v := range []any{api.Error{}, api.Node{}, api.NodeList{}, api.LabelsRequest{}, api.PlanRequest{},
		api.ValidateResponse{}, api.DryRunRequest{}, api.DryRunResponse{}, api.AssignmentMove{}, api.CreateRolloutRequest{}, api.Rollout{}, api.RolloutList{},
		api.CommandRequest{}, api.AuditEntry{}, api.AuditList{}, api.AuditVerification{}, api.RegisterRequest{},
		api.RegisterResponse{}, api.PollRequest{}, api.PollResponse{}, api.StepReport{}, api.WhoAmI{},
		api.AuditCheckpoint{}, api.AuditTreeProof{}, api.AuditRecordProof{}, api.AuditKey{}, api.EnrollRequest{},
		api.RenewRequest{}, api.CertificateResponse{}, api.APIToken{}, api.APITokenList{}, api.Session{}, api.LineRequest{}, api.LineStatus{},
		api.BudgetRequest{}, api.Budget{}, api.BudgetList{}, api.FreezeSpec{}, api.FreezesRequest{}, api.Freeze{}, api.FreezeList{}, api.PreflightReport{}, api.PreflightView{}, api.NodeDiff{},
		api.InventoryImportRequest{}, api.InventoryDiff{}, api.InventoryStatus{}, api.EnrollTokensRequest{}, api.EnrollTokens{},
		api.Advisory{}, api.AdvisoryList{}, api.AdvisoryImportRequest{}, api.AdvisoryImportResult{}, api.ExposureReport{}, api.ExposureSummary{},
		api.BaselineApply{}, api.BaselineApplied{}, api.BaselineList{}, baseline.Baseline{}, api.BaselineCompliance{}, api.BaselineExempt{}, api.BaselineRemediate{}, api.BaselineRemediation{}, baseline.Exemption{}, api.BaselineExemptions{}, api.DriftList{},
		api.WebhookEvent{}, api.SlackMessage{}, api.Webhook{}, api.WebhookList{}, api.WebhookTestResult{},

		api.EvidenceReport{}, api.EvidenceList{}, api.EvidenceBundle{}, api.EvidenceAsk{}, api.EvidenceRequestStatus{}} {
		ty := reflect.TypeOf(v)
		schemas[ty.Name()] = jsonSchema(ty, 0)
	}
	if *rewrite {
		doc["components"].(map[string]any)["schemas"] = schemas
		out, _ := json.MarshalIndent(doc, "", "  ")
		if err := os.WriteFile("openapi.json", append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, _ := json.Marshal(doc["components"].(map[string]any)["schemas"])
	want, _ := json.Marshal(schemas)
	if string(got) != string(want) {
		t.Errorf("openapi.json schemas are stale: run go test ./internal/server -run TestOpenAPI -rewrite")
	}

	s := newTestServer(t)
	s.Handler() // registers the routes
	documented := map[string]bool{}
	for path, ops := range doc["paths"].(map[string]any) {
		for method := range ops.(map[string]any) {
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, r := range s.m.routes {
		registered[r] = true
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !registered[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("openapi.json out of sync with the handlers:\n  undocumented routes: %v\n  documented but not served: %v", missing, extra)
	}
}

// jsonSchema describes a Go type as JSON Schema, following encoding/json
// names.
func jsonSchema(t reflect.Type, depth int) map[string]any {
	if t == reflect.TypeOf(time.Time{}) {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	if t == reflect.TypeOf(json.RawMessage{}) {
		return map[string]any{}
	}
	if depth > 8 {
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonSchema(t.Elem(), depth)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": jsonSchema(t.Elem(), depth+1)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": jsonSchema(t.Elem(), depth+1)}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		props := map[string]any{}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				for k, v := range jsonSchema(f.Type, depth+1)["properties"].(map[string]any) {
					props[k] = v
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = jsonSchema(f.Type, depth+1)
		}
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}
