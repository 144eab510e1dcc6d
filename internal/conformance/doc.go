// Package conformance holds black-box tests of the control plane: they run
// the real sluice binary and check that every answer of the API follows
// the OpenAPI document (api/openapi.yaml), that every route is documented,
// that secret values written through the API come back nowhere but in the
// one answer that creates them, and that nothing crosses instances. It has
// no code of its own outside tests and must never be imported.
package conformance
