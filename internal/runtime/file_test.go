package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFileTrigger: files dropped into the policy's directory run the
// flow and move to done/ or failed/.
func TestFileTrigger(t *testing.T) {
	inbox := t.TempDir()
	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: files\n",
		"flows/in.yaml": `flow: in
trigger:
  file: {connection: inbox, glob: '*.json', poll: 20ms, retry: {attempts: 1}}
steps:
  - switch:
      - when: .body.bad
        steps: [{fail: 'bad file ${ .source.name }'}]
`,
	})
	conf := configDir(t, map[string]string{"policyproject/Connections/inbox.yaml": "type: file\nurl: file://" + filepath.ToSlash(inbox) + "\n"})
	p := startRuntime(t, "--bar", buildBARInProcess(t, proj), "--config-dir", conf)
	os.WriteFile(filepath.Join(inbox, "a.json"), []byte(`{"id": 1}`), 0o644)
	os.WriteFile(filepath.Join(inbox, "b.json"), []byte(`{"bad": true}`), 0o644)
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	eventually(t, "both files moved", func() bool {
		return exists(filepath.Join(inbox, "done", "a.json")) && exists(filepath.Join(inbox, "failed", "b.json.error")) && exists(filepath.Join(inbox, "failed", "b.json"))
	})
	msg, _ := os.ReadFile(filepath.Join(inbox, "failed", "b.json.error"))
	if !strings.Contains(string(msg), "bad file b.json") {
		t.Fatalf("error file %q", msg)
	}
	metrics := string(get(t, p.adminURL("/metrics")).body)
	if !strings.Contains(metrics, `sluice_trigger_messages_total{flow="in",outcome="acked",project="files",trigger="file"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(metrics, "sluice_trigger"))
	}
}
