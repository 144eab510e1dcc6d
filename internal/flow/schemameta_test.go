package flow

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The JSON Schema package (third_party/jsonschema, patched) compiles a
// draft's meta-schemas when a schema of that draft is first compiled,
// not in its init: upstream's init compiled all five drafts' in every
// Sluice process (1.7 MB, 21,000 allocations, milliseconds of each
// runtime's start). This test binary links the package; its init, traced
// by the Go runtime, must allocate next to nothing.
func TestSchemaPackageInitCompilesNothing(t *testing.T) {
	if os.Getenv("SLUICE_INITTRACE_CHILD") != "" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSchemaPackageInitCompilesNothing$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", "SLUICE_INITTRACE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	line := regexp.MustCompile(`(?m)^init github\.com/santhosh-tekuri/jsonschema/v6 @.* ([0-9]+) bytes, ([0-9]+) allocs$`).FindSubmatch(out)
	if line == nil {
		t.Fatalf("no init trace of the package in:\n%s", out)
	}
	bytes, _ := strconv.Atoi(string(line[1]))
	if bytes > 64<<10 {
		t.Errorf("the package's init allocated %d bytes (%s allocations): it compiles meta-schemas again", bytes, line[2])
	}
}

// Schemas of several drafts compiled at once, each the first of its draft,
// still have their meta-schema checked (a schema that breaks it is refused)
// and do not race (go test -race).
func TestSchemasOfEveryDraftCompiledConcurrently(t *testing.T) {
	drafts := []string{
		"http://json-schema.org/draft-04/schema#",
		"http://json-schema.org/draft-06/schema#",
		"http://json-schema.org/draft-07/schema#",
		"https://json-schema.org/draft/2019-09/schema",
		"https://json-schema.org/draft/2020-12/schema",
	}
	var wg sync.WaitGroup
	for i, d := range drafts {
		for j := range 3 {
			wg.Go(func() {
				c := jsonschema.NewCompiler()
				url := fmt.Sprintf("mem:///%d-%d.json", i, j)
				good := map[string]any{"$schema": d, "type": "object", "required": []any{"id"}}
				if err := c.AddResource(url, good); err != nil {
					t.Error(err)
					return
				}
				sch, err := c.Compile(url)
				if err != nil {
					t.Errorf("%s: %v", d, err)
					return
				}
				if err := sch.Validate(map[string]any{}); err == nil {
					t.Errorf("%s: an object without id passed", d)
				}
				bad := fmt.Sprintf("mem:///%d-%d-bad.json", i, j)
				if err := c.AddResource(bad, map[string]any{"$schema": d, "type": 12}); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.Compile(bad); err == nil || !strings.Contains(err.Error(), "type") {
					t.Errorf("%s: a schema whose type is 12 compiled (%v)", d, err)
				}
			})
		}
	}
	wg.Wait()
}
