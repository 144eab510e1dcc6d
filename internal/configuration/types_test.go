package configuration

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// canary is a secret value planted in malformed data; no error may quote
// any part of it.
const canary = "Sup3rS3cretPw9x"

func canaryLeak(msg string) bool {
	for _, part := range []string{canary, "Sup3rS3", "S3cretPw", "cretPw9x"} {
		if strings.Contains(msg, part) {
			return true
		}
	}
	return false
}

func zipOf(t testing.TB, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(data))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// badData is malformed data of every shape the validators refuse, each
// with the canary where a parser would quote it: an unknown key, a value
// of the wrong type or an unknown choice, an anchor, a tag, broken syntax,
// a misplaced password, a duplicate resource, a certificate that does not
// parse, and zips whose files are broken the same ways.
func badData(t testing.TB) map[string]string {
	c := canary
	pem := func(typ, body string) string {
		return "-----BEGIN " + typ + "-----\n" + base64.StdEncoding.EncodeToString([]byte(body)) + "\n-----END " + typ + "-----\n"
	}
	d := map[string]string{
		"yaml value of log.level":     "log:\n  level: " + c + "\n",
		"yaml value of log.format":    "log:\n  format: " + c + "\n",
		"yaml unknown key":            c + ": 1\n",
		"yaml unknown nested key":     "http:\n  " + c + ": 1\n",
		"yaml duration":               "http:\n  readTimeout: " + c + "\n",
		"yaml integer":                "flows:\n  maxInFlight: " + c + "\n",
		"yaml unknown anchor":         "a: *" + c + "\n",
		"yaml tag":                    "log:\n  level: !" + c + " x\n",
		"yaml broken flow":            "values: [" + c + "\n",
		"yaml broken quote":           "values: {a: '" + c + "\n",
		"yaml scalar document":        c + "\n",
		"yaml mapping where a list":   "values:\n  " + c + ": [\n",
		"yaml non-string keys":        "values:\n  ? [" + c + "]\n  : 1\n",
		"yaml merge of a scalar":      "a: &x " + c + "\nb:\n  <<: *x\n",
		"json unknown field":          `{"` + c + `":1}`,
		"json unknown nested field":   `{"authType":"BASIC_AUTH","credentials":{"` + c + `":"x"}}`,
		"json auth type":              `{"authType":"` + c + `","credentials":{}}`,
		"json wrong type":             `{"authType":"BASIC_AUTH","credentials":{"username":1,"password":"` + c + `"}}`,
		"json insecureSsl":            `{"authType":"BASIC_AUTH","credentials":{"username":"u","password":"p","insecureSsl":"` + c + `"}}`,
		"json caCert":                 `{"authType":"BASIC_AUTH","credentials":{"username":"u","password":"p","caCert":"` + strings.ReplaceAll(pem("CERTIFICATE", c), "\n", `\n`) + `"}}`,
		"json broken":                 `{"authType":"BASIC_AUTH","credentials":{"password":"` + c,
		"json trailing":               `{"authType":"BEARER_TOKEN","credentials":{"token":"t"}} ` + c,
		"setdbparms short line":       "jdbc " + c + "\n",
		"setdbparms misplaced pw":     "mqsisetdbparms -n res -u user " + c + "\n",
		"setdbparms option no value":  "mqsisetdbparms -n res -u user -p\n",
		"setdbparms unknown option":   "mqsisetdbparms -" + c + " x -n res -u user -p pw\n",
		"setdbparms duplicate":        c + " u p\n" + c + " u p\n",
		"ini section":                 "[" + c + "\n",
		"ini line":                    c + "\n",
		"pem certificate":             pem("CERTIFICATE", c),
		"pem other block":             pem(c, "x"),
		"pem header only":             "-----BEGIN " + c + "\n",
		"zip policy broken yaml":      zipOf(t, map[string]string{"p/db.yaml": "url: [" + c + "\n"}),
		"zip policy non-string keys":  zipOf(t, map[string]string{"p/db.yaml": "? [" + c + "]\n: 1\n"}),
		"zip policy json":             zipOf(t, map[string]string{"p/db.json": `{"a":` + c + `}`}),
		"yaml ace log format":         "Log:\n  outputFormat: " + c + "\n",
		"yaml ace trace level":        "trace: " + c + "\n",
		"yaml ace post size":          "HTTPConnector:\n  MaxPostSize: " + c + "\n",
		"yaml ace policy project":     "Defaults:\n  policyProject: [" + c + "]\n",
		"yaml ace unknown lower key":  "x" + c + ":\n  a: 1\n",
		"zip serverconf-like content": zipOf(t, map[string]string{"x.yaml": "log:\n  level: " + c + "\n"}),
		"not a zip":                   "PK\x03\x04" + c,
	}
	return d
}

// TestErrorsNeverQuoteData: every type's validation, fed every malformed
// shape (so each type's every error path and the paths of the other types'
// data), refuses without quoting any part of the canary.
func TestErrorsNeverQuoteData(t *testing.T) {
	refused := 0
	for _, typ := range Types() {
		for label, data := range badData(t) {
			err := Validate(typ.Name, []byte(data))
			if err == nil {
				continue
			}
			refused++
			if canaryLeak(err.Error()) {
				t.Errorf("%s, %s: error quotes the data: %v", typ.Name, label, err)
			}
		}
	}
	// Every shape is refused by the type it was written for.
	for typ, labels := range map[string][]string{
		"serverconf": {"yaml value of log.level", "yaml value of log.format", "yaml unknown key", "yaml unknown nested key", "yaml duration",
			"yaml integer", "yaml unknown anchor", "yaml tag", "yaml broken flow", "yaml broken quote", "yaml scalar document", "yaml mapping where a list",
			"yaml non-string keys", "yaml merge of a scalar", "yaml ace log format", "yaml ace trace level", "yaml ace post size",
			"yaml ace policy project", "yaml ace unknown lower key"},
		"barauth":               {"json unknown field", "json unknown nested field", "json auth type", "json wrong type", "json insecureSsl", "json caCert", "json broken", "json trailing"},
		"setdbparms":            {"setdbparms short line", "setdbparms misplaced pw", "setdbparms option no value", "setdbparms unknown option", "setdbparms duplicate"},
		"odbc":                  {"ini section", "ini line"},
		"truststorecertificate": {"pem certificate", "pem other block", "pem header only"},
		"policyproject":         {"zip policy broken yaml", "zip policy non-string keys", "not a zip"},
	} {
		data := badData(t)
		for _, label := range labels {
			if err := Validate(typ, []byte(data[label])); err == nil {
				t.Errorf("%s accepted %s", typ, label)
			} else {
				t.Logf("%s, %s: %v", typ, label, err)
			}
		}
	}
	if refused == 0 {
		t.Fatal("nothing was refused")
	}
}
