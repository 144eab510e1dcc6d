// Package apispec holds the OpenAPI 3.1 documents of the control plane:
// the API's (openapi.yaml next to this file), embedded in the binary so the
// server serves exactly the contract its tests check responses against,
// and those of the other tools' wires it speaks (airbyte.yaml,
// ibm-iam.yaml). It owns the documents and their JSON form only; it must
// not import the packages that implement them.
package apispec

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"gopkg.in/yaml.v3"
)

//go:embed openapi.yaml
var document []byte

//go:embed airbyte.yaml
var airbyteDocument []byte

//go:embed ibm-iam.yaml
var ibmIAMDocument []byte

// YAML returns the document as written.
func YAML() []byte { return document }

// AirbyteYAML is the document of Airbyte's applications endpoints
// (internal/airbyte).
func AirbyteYAML() []byte { return airbyteDocument }

// IBMIAMYAML is the document of IBM Cloud IAM's token endpoint
// (internal/ibmiam).
func IBMIAMYAML() []byte { return ibmIAMDocument }

// JSON returns the document converted to JSON. The conversion runs once;
// a document that is not valid YAML is a build mistake that the tests
// catch, so callers may treat the error as fatal.
var JSON = sync.OnceValues(func() ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(document, &v); err != nil {
		return nil, fmt.Errorf("apispec: openapi.yaml is not valid YAML: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		// yaml.v3 decodes mappings with non-string keys (such as the
		// status code 200 written unquoted) into map[any]any, which JSON
		// cannot encode: quote such keys in the YAML.
		return nil, fmt.Errorf("apispec: openapi.yaml does not convert to JSON: %w", err)
	}
	return b, nil
})

//go:embed apic.yaml
var apicDocument []byte

// APIC returns the OpenAPI document of the API Connect platform surface
// (package apic), as written.
func APIC() []byte { return apicDocument }
