package cli

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildInfoFromVCSStamp(t *testing.T) {
	bi := fromBuildInfo(&debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}})
	if bi.Version != "v1.4.0" || bi.Commit != "0123abcd" || !bi.Modified || bi.GoVersion != "go1.99.1" || bi.CommitAt != "2026-01-02T03:04:05Z" {
		t.Fatalf("%+v", bi)
	}
	if got, want := bi.String(), "sluice v1.4.0, commit 0123abcd (modified), go1.99.1, "+runtime.GOOS+"/"+runtime.GOARCH; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	var b strings.Builder
	if err := bi.write(&b, "table"); err != nil || !strings.Contains(b.String(), "commit:   0123abcd (modified), 2026-01-02T03:04:05Z\n") {
		t.Errorf("table: %v\n%s", err, b.String())
	}
	// Built without VCS stamping (-buildvcs=false, as CI does) or module
	// information: it says so instead of printing nothing.
	bare := fromBuildInfo(&debug.BuildInfo{GoVersion: "go1.99.1"})
	if bare.Version != "(devel)" || bare.Commit != "unknown" || bare.Modified {
		t.Errorf("bare: %+v", bare)
	}
	if none := fromBuildInfo(nil); none.GoVersion != runtime.Version() || none.Commit != "unknown" {
		t.Errorf("nil: %+v", none)
	}
}
