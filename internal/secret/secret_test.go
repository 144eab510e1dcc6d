package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const canary = "canary-8f3a1c"

func TestValueNeverRendersItsContent(t *testing.T) {
	v := New(canary)
	type wrapper struct {
		Name string
		Pass Value
		Ptr  *Value
	}
	w := wrapper{Name: "n", Pass: v, Ptr: &v}
	renderings := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%d"} {
		renderings["fmt "+verb] = fmt.Sprintf(verb, v)
		renderings["fmt struct "+verb] = fmt.Sprintf(verb, w)
	}
	renderings["String"] = v.String()
	renderings["error"] = fmt.Errorf("failed with %v", v).Error()
	j, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	renderings["json"] = string(j)
	m, _ := json.Marshal(map[string]Value{"k": v})
	renderings["json map"] = string(m)
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("x", "secret", v, "wrapped", w)
	var tbuf bytes.Buffer
	slog.New(slog.NewTextHandler(&tbuf, nil)).Info("x", "secret", v)
	renderings["slog json"] = buf.String()
	renderings["slog text"] = tbuf.String()
	for name, r := range renderings {
		if strings.Contains(r, canary) || strings.Contains(r, fmt.Sprintf("%x", canary)) {
			t.Errorf("%s revealed the secret: %s", name, r)
		}
		if !strings.Contains(r, Redacted) {
			t.Errorf("%s shows no redaction marker: %s", name, r)
		}
	}
	if v.Reveal() != canary {
		t.Fatal("Reveal does not return the value")
	}
	if !v.Equal(New(canary)) || v.Equal(New("other")) {
		t.Fatal("Equal is wrong")
	}
}

func TestParseMasterKey(t *testing.T) {
	mk, _ := NewMasterKey()
	enc := mk.Encode().Reveal()
	for _, in := range []string{enc, strings.TrimRight(enc, "="), "  " + enc + "\n", fmt.Sprintf("%x", mk.key[:])} {
		got, err := ParseMasterKey(in)
		if err != nil || got.key != mk.key {
			t.Errorf("ParseMasterKey(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "short", strings.Repeat("A", 40), enc + "AAAA"} {
		_, err := ParseMasterKey(in)
		if err == nil {
			t.Errorf("ParseMasterKey(%q) accepted a bad key", in)
		} else if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("error repeats the input: %v", err)
		}
	}
	if s := fmt.Sprintf("%v %s %x", mk, mk, mk); strings.Contains(s, enc) {
		t.Fatalf("MasterKey formatting reveals the key: %s", s)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	mk, created, err := LoadOrCreateKeyFile(dir)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKeyFile = %v, %v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreateKeyFile(dir)
	if err != nil || created || again.key != mk.key {
		t.Fatalf("second LoadOrCreateKeyFile = %v, %v (same key: %v)", created, err, again.key == mk.key)
	}
	// A key file that others can read is refused, not used.
	os.Chmod(filepath.Join(dir, KeyFileName), 0o644)
	if _, _, err := LoadOrCreateKeyFile(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: err = %v", err)
	}
	// WriteKeyFile never overwrites.
	if err := WriteKeyFile(filepath.Join(dir, KeyFileName), mk); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrite: err = %v, want ErrExist", err)
	}
}
