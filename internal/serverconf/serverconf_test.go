package serverconf

import (
	"fmt"
	"strings"
	"testing"
)

func TestDescribeIsBounded(t *testing.T) {
	var keys []string
	for i := range 20 {
		keys = append(keys, fmt.Sprintf("Section.key%02d", i))
	}
	got := Describe(keys)
	if !strings.HasSuffix(got, "Section.key11 and 8 more") || strings.Contains(got, "key12") {
		t.Errorf("Describe(20 keys) = %q", got)
	}
	if got := Describe(keys[:2]); got != "Section.key00, Section.key01" {
		t.Errorf("Describe(2 keys) = %q", got)
	}
}

// Sluice's own keys are left alone; ACE's are read or listed.
func TestParseSplitsDialects(t *testing.T) {
	r, err := Parse([]byte("log:\n  level: debug\nvalues: {a: 1}\nDefaults:\n  policyProject: P\n  defaultApplication: ''\nEvents:\nforceServerHTTPS: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Mapped.PolicyProject != "P" || r.Mapped.LogLevel != "" {
		t.Errorf("mapped %+v", r.Mapped)
	}
	if got := strings.Join(r.Ignored, ","); got != "Defaults.defaultApplication,forceServerHTTPS" {
		t.Errorf("ignored %q", got)
	}
}

// A broken document's error gives the line, not the text.
func TestParseErrorsQuoteNothing(t *testing.T) {
	const canary = "Sup3rS3cretPw9x"
	for _, doc := range []string{"a: [" + canary + "\n", "Log:\n  outputFormat: " + canary + "\n", "Canary" + canary + ": 1\n"} {
		_, err := Parse([]byte(doc))
		if err == nil {
			t.Errorf("%q accepted", doc)
		} else if strings.Contains(err.Error(), canary) {
			t.Errorf("error quotes the data: %v", err)
		}
	}
}
