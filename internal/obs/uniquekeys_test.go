package obs_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/obs/obstest"
)

func TestLogLinesCarryEachKeyOnce(t *testing.T) {
	var buf bytes.Buffer
	log, err := obs.NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	// What the control plane does: the server names a component, and the
	// package it hands the logger to names its own.
	backend := log.With("component", "server", "pid", 7).With("component", "orchestrator.local")
	backend.Info("replica ready", "runtime", "i/hello", "pid", 8)
	backend.WithGroup("req").With("id", "a").Info("grouped", "id", "b", "path", "/x")
	backend.Info("plain")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		dups, err := obstest.DuplicateKeys([]byte(l))
		if err != nil || len(dups) > 0 {
			t.Errorf("line %s: duplicate keys %v (%v)", l, dups, err)
		}
	}
	var first struct {
		Msg, Component, Runtime string
		PID                     int
	}
	json.Unmarshal([]byte(lines[0]), &first)
	if first.Component != "orchestrator.local" || first.PID != 8 || first.Runtime != "i/hello" {
		t.Errorf("the later attribute must win: %s", lines[0])
	}
	var second struct {
		Component string
		Req       struct{ ID, Path string }
	}
	json.Unmarshal([]byte(lines[1]), &second)
	if second.Component != "orchestrator.local" || second.Req.ID != "b" || second.Req.Path != "/x" {
		t.Errorf("grouped line: %s", lines[1])
	}

	// The checker itself finds what it is for.
	if dups, _ := obstest.DuplicateKeys([]byte(`{"a":1,"component":"x","b":{"c":1,"c":2},"component":"y"}`)); strings.Join(dups, ",") != "b.c,component" {
		t.Errorf("DuplicateKeys = %v", dups)
	}
}

// A plain slog JSON handler would write the key twice: this is what
// UniqueKeys prevents, shown so the test above cannot pass by accident.
func TestPlainHandlerWritesDuplicates(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).With("component", "a").With("component", "b").Info("m")
	if dups, _ := obstest.DuplicateKeys(buf.Bytes()); len(dups) != 1 {
		t.Fatalf("expected slog's own handler to duplicate the key: %s", buf.String())
	}
	buf.Reset()
	slog.New(obs.UniqueKeys(slog.NewJSONHandler(&buf, nil))).With("component", "a").With("component", "b").Info("m")
	if dups, _ := obstest.DuplicateKeys(buf.Bytes()); len(dups) != 0 || !strings.Contains(buf.String(), `"component":"b"`) {
		t.Fatalf("UniqueKeys: %s", buf.String())
	}
}

// A logger derived with a key its parent has (a component naming itself)
// leaves the parent's value alone, and so does a log call's own attribute:
// the runtime's lines once said "component":"tracing" after the tracing
// set-up named its own logger.
func TestDerivedLoggerLeavesItsParentAlone(t *testing.T) {
	var buf bytes.Buffer
	parent := slog.New(obs.UniqueKeys(slog.NewJSONHandler(&buf, nil))).With("component", "runtime", "pid", 1)
	parent.With("component", "tracing").Info("child")
	parent.Info("call", "component", "flow")
	parent.Info("parent")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"component":"tracing"`) || !strings.Contains(lines[1], `"component":"flow"`) ||
		!strings.Contains(lines[2], `"component":"runtime"`) {
		t.Fatalf("lines:\n%s", buf.String())
	}
}

// A line whose keys are all new goes to the JSON handler as it is, after
// the attributes the logger was given, in the order a merged copy would
// have them.
func TestDistinctKeysKeepTheirOrder(t *testing.T) {
	var buf bytes.Buffer
	log, err := obs.NewLogger(&buf, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.With("component", "api", "pid", 7).Info("request", "method", "GET", "status", 200)
	line := buf.String()
	if !strings.Contains(line, `"msg":"request","component":"api","pid":7,"method":"GET","status":200}`) {
		t.Errorf("line %s", line)
	}
}
