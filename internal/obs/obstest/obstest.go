// Package obstest checks log output in tests: that JSON log lines carry
// each key once. Only tests import it.
package obstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// DuplicateKeys returns the keys that occur more than once in one object
// of the JSON document line (at any depth, as "outer.inner"), or an error
// when line is not JSON.
func DuplicateKeys(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	var dups []string
	if err := walk(dec, "", &dups); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return dups, nil
}

func walk(dec *json.Decoder, path string, dups *[]string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key := kt.(string)
			if seen[key] {
				*dups = append(*dups, path+key)
			}
			seen[key] = true
			if err := walk(dec, path+key+".", dups); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walk(dec, path, dups); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}
