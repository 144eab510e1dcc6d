package configuration

import (
	"testing"
)

// FuzzValidate feeds arbitrary data, with the canary planted at an
// arbitrary place, to the validator of every type. Validate must never
// panic, and no refusal may quote the canary.
//
//	go test ./internal/configuration -run '^$' -fuzz FuzzValidate -fuzztime 1m
func FuzzValidate(f *testing.F) {
	for _, data := range badData(f) {
		f.Add([]byte(data), uint16(0))
	}
	f.Add([]byte("log:\n  level: X\n"), uint16(16))
	f.Add([]byte("db u p\n"), uint16(3))
	f.Add([]byte(`{"authType":"BASIC_AUTH","credentials":{"username":"u","password":""}}`), uint16(68))
	f.Fuzz(func(t *testing.T, data []byte, at uint16) {
		pos := int(at) % (len(data) + 1)
		planted := append(append(append([]byte{}, data[:pos]...), canary...), data[pos:]...)
		for _, typ := range types {
			if err := Validate(typ.Name, planted); err != nil && canaryLeak(err.Error()) {
				t.Fatalf("%s: error quotes the data: %v\ndata: %q", typ.Name, err, planted)
			}
		}
	})
}
