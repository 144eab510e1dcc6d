package apispec

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestDocumentIsValidOpenAPI31 loads both served forms with kin-openapi and
// validates them, so a broken document fails here before any handler test.
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	js, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"yaml": YAML(), "json": js} {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(b)
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		if !doc.IsOpenAPI31OrLater() {
			t.Fatalf("%s: openapi is %q, want 3.1.x", name, doc.OpenAPI)
		}
		if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
			t.Fatalf("%s: validate: %v", name, err)
		}
		if doc.Info.Title == "" || doc.Info.Version == "" {
			t.Errorf("%s: info.title and info.version must be set", name)
		}
		for _, s := range []string{"bearerAuth", "clientId"} {
			if doc.Components.SecuritySchemes[s] == nil {
				t.Errorf("%s: security scheme %s missing", name, s)
			}
		}
	}
}

// TestJSONIsTheYAML checks the JSON form holds exactly what the YAML does.
func TestJSONIsTheYAML(t *testing.T) {
	js, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	l := openapi3.NewLoader()
	doc, err := l.LoadFromData(YAML())
	if err != nil {
		t.Fatal(err)
	}
	// Compare through kin's model, which normalises both to the same types.
	docJ, err := openapi3.NewLoader().LoadFromData(js)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(doc)
	b, _ := json.Marshal(docJ)
	if err := json.Unmarshal(a, &fromYAML); err != nil {
		t.Fatal(err)
	}
	var fromJ any
	if err := json.Unmarshal(b, &fromJ); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromYAML, fromJ) {
		t.Fatal("the JSON form differs from the YAML document")
	}
	if m, ok := fromJSON.(map[string]any); !ok || m["openapi"] != "3.1.0" {
		t.Fatalf("JSON form: openapi = %v", m["openapi"])
	}
}

// TestOperationsAreComplete holds every operation to the conventions a
// reader relies on: a unique operationId, a summary, a tag, and — for
// every operation behind a bearer token — the 401, 429 and 500 answers
// the authentication, rate limiting and error mapping give every route.
func TestOperationsAreComplete(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(YAML())
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s has no operationId", where)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share operationId %s", where, other, op.OperationID)
			}
			ids[op.OperationID] = where
			if op.Summary == "" || len(op.Tags) == 0 {
				t.Errorf("%s needs a summary and a tag", where)
			}
			sec := doc.Security
			if op.Security != nil {
				sec = *op.Security
			}
			bearer := false
			for _, req := range sec {
				if _, ok := req["bearerAuth"]; ok {
					bearer = true
				}
			}
			if !bearer {
				continue
			}
			for _, code := range []int{401, 429, 500} {
				if op.Responses.Status(code) == nil {
					t.Errorf("%s is behind a bearer token but does not document %d", where, code)
				}
			}
		}
	}
}

// TestWireDocumentsAreValid holds the documents of the other tools' wires
// to what the main one is held to: valid OpenAPI 3.1, and every operation
// with a unique operationId, a summary and a tag, and a 401 answer when it
// is behind a bearer token.
func TestWireDocumentsAreValid(t *testing.T) {
	for name, b := range map[string][]byte{"airbyte.yaml": AirbyteYAML(), "ibm-iam.yaml": IBMIAMYAML()} {
		doc, err := openapi3.NewLoader().LoadFromData(b)
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		if !doc.IsOpenAPI31OrLater() {
			t.Fatalf("%s: openapi is %q, want 3.1.x", name, doc.OpenAPI)
		}
		if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
			t.Fatalf("%s: validate: %v", name, err)
		}
		ids := map[string]bool{}
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				where := name + ": " + method + " " + path
				if op.OperationID == "" || ids[op.OperationID] {
					t.Errorf("%s has no operationId, or one used before", where)
				}
				ids[op.OperationID] = true
				if op.Summary == "" || len(op.Tags) == 0 {
					t.Errorf("%s needs a summary and a tag", where)
				}
				sec := doc.Security
				if op.Security != nil {
					sec = *op.Security
				}
				for _, req := range sec {
					if _, ok := req["bearerAuth"]; ok && op.Responses.Status(401) == nil {
						t.Errorf("%s is behind a bearer token but does not document 401", where)
					}
				}
			}
		}
		if len(ids) == 0 {
			t.Errorf("%s has no operations", name)
		}
	}
}
