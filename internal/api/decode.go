package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// maxJSONBody bounds every JSON request body of the API.
const maxJSONBody = 1 << 20

// badRequest is a decoding failure with the status and words to answer.
type badRequest struct {
	status int
	reason string
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

// decodeJSON reads one JSON object into v, strictly: unknown fields, wrong
// types, trailing data, a body over maxJSONBody and a non-JSON content
// type are refused with an error that says what is wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSONLimit(w, r, v, maxJSONBody)
}

// decodeJSONLimit is decodeJSON with its own body limit.
func decodeJSONLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &badRequest{http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf("content type %q is not JSON: send application/json", ct)}
		}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &badRequest{http.StatusBadRequest, "BadRequest", "the body holds more than one JSON value"}
	}
	return nil
}

func describeJSONError(err error, limit int64) error {
	var (
		syn    *json.SyntaxError
		typ    *json.UnmarshalTypeError
		tooBig *http.MaxBytesError
	)
	switch {
	case errors.Is(err, io.EOF):
		return &badRequest{http.StatusBadRequest, "BadRequest", "the body is empty: send a JSON object"}
	case errors.As(err, &tooBig):
		return &badRequest{http.StatusRequestEntityTooLarge, "TooLarge", fmt.Sprintf("the body is larger than %d bytes", limit)}
	case errors.As(err, &syn):
		return &badRequest{http.StatusBadRequest, "BadRequest", fmt.Sprintf("the body is not valid JSON (at byte %d): %v", syn.Offset, syn)}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the body"
		}
		return &badRequest{http.StatusBadRequest, "BadRequest", fmt.Sprintf("%s must be %s, not %s", field, jsonTypeName(typ.Type.Kind().String()), typ.Value)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return &badRequest{http.StatusBadRequest, "BadRequest", "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &badRequest{http.StatusBadRequest, "BadRequest", "the body is not valid JSON: it ends too early"}
	}
	return &badRequest{http.StatusBadRequest, "BadRequest", "the body is not valid JSON: " + err.Error()}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int32", "int64", "uint", "uint32", "uint64", "float64":
		return "a number"
	}
	return "a " + kind
}
