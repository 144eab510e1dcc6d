// Package apispec holds the OpenAPI 3.1 document of the control plane's API
// (openapi.yaml next to this file), embedded in the binary so the server
// serves exactly the contract its tests check responses against. It owns
// the document and its JSON form only; it must not import the packages that
// implement the API.
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

// YAML returns the document as written.
func YAML() []byte { return document }

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
