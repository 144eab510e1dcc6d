package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
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
	b, err := readJSONBody(w, r, limit)
	if err != nil {
		return err
	}
	return decodeJSONBytes(b, v, limit)
}

// readJSONBody checks a JSON body's content type and reads it, up to limit.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &badRequest{http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf("content type %q is not JSON: send application/json", ct)}
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, describeJSONError(err, limit)
	}
	return b, nil
}

// decodeJSONBytes is decodeJSON's strict decoding of a body already read.
func decodeJSONBytes(b []byte, v any, limit int64) error {
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD, keep the
	// last of duplicate keys (another parser may keep the first) and
	// decode null into nothing: each is refused instead.
	if !utf8.Valid(b) {
		return &badRequest{http.StatusBadRequest, "BadRequest", "the body is not valid UTF-8"}
	}
	if t := bytes.TrimSpace(b); bytes.Equal(t, []byte("null")) {
		return &badRequest{http.StatusBadRequest, "BadRequest", "the body is null: send a JSON object"}
	}
	if key, ok := duplicateKey(b); ok {
		return &badRequest{http.StatusBadRequest, "BadRequest", fmt.Sprintf("the body repeats the key %q in one object", key)}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &badRequest{http.StatusBadRequest, "BadRequest", "the body holds more than one JSON value"}
	}
	return nil
}

// duplicateKey finds a key repeated within one object of the JSON text b
// (RFC 8259 §4: names SHOULD be unique; Sluice requires it). Malformed
// JSON reports nothing here: the decoder says what is wrong with it.
func duplicateKey(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	// One frame per open object or array; objects track their keys, and
	// whether the next string token is a key.
	type frame struct {
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.keys != nil && top.wantKey {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return k, true
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: in an object the next token is a key again.
		if len(stack) > 0 && stack[len(stack)-1].keys != nil {
			stack[len(stack)-1].wantKey = true
		}
		if len(stack) == 0 && !dec.More() {
			return "", false
		}
	}
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
