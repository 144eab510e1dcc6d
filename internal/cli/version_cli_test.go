package cli_test

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// The built binary reports the toolchain it was built with, from its own
// build information, both ways.
func TestVersionCommandAndFlag(t *testing.T) {
	cli := newCLI(t)
	var v struct{ Version, Commit, GoVersion, Platform string }
	if err := json.Unmarshal([]byte(cli.ok("version", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.GoVersion != runtime.Version() || v.Platform != runtime.GOOS+"/"+runtime.GOARCH || v.Version == "" || v.Commit == "" {
		t.Errorf("version -o json: %+v", v)
	}
	table := cli.ok("version")
	if !strings.Contains(table, "go:       "+runtime.Version()+"\n") || !strings.HasPrefix(table, "version:  "+v.Version+"\n") {
		t.Errorf("version:\n%s", table)
	}
	flag := cli.ok("--version")
	if want := "sluice " + v.Version + ", commit " + v.Commit; !strings.HasPrefix(flag, want) || !strings.Contains(flag, runtime.Version()) {
		t.Errorf("--version = %q, want it to start with %q", flag, want)
	}
	cli.failsWith(2, `-o "yaml" is not one of table, json`, "", nil, "version", "-o", "yaml")
}
