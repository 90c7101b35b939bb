package plan

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

const schemaFile = "../../schema/plan.schema.json"

// TestSchema keeps schema/plan.schema.json equal to Schema(). Run
// go test ./internal/plan -run TestSchema -rewrite to regenerate it.
func TestSchema(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if *rewrite {
		if err := os.MkdirAll("../../schema", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/plan -run TestSchema -rewrite)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is stale: run go test ./internal/plan -run TestSchema -rewrite", schemaFile)
	}
}
