package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// sluiceCmd runs the sluice binary and returns its combined output.
func sluiceCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(servertest.Binary(t), args...)
	cmd.Env = append(os.Environ(), "SLUICE_MASTER_KEY=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// buildBAR builds a valid BAR whose content differs with round.
func buildBAR(t *testing.T, round int) []byte {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{
		"sluice.yaml":       "name: churn\nversion: 1.0.0\n",
		"flows/hello.yaml":  "flow: hello\ntrigger:\n  http: {method: GET, path: /hello}\nsteps:\n  - reply: {status: 200, body: '{hello: \"world\"}'}\n",
		"static/round.txt":  fmt.Sprint(round),
		"static/filler.txt": strings.Repeat(fmt.Sprintf("round %d ", round), 1<<14),
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, _, err := bar.Build(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A backup taken while the control plane serves writes holds every write
// acknowledged before it started, BAR content included (content files
// beside the database, while other uploads replace and remove content);
// restored into a new data dir it serves them again, but only with the
// store's master key: without it, or with another, the control plane
// refuses to start and says why.
func TestBackupWhileServingAndRestore(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none", "--rate-limit-client", "off",
		"--rate-limit-instance", "off", "--rate-limit-source", "off"}})
	admin := s.Admin(t)
	data := base64.StdEncoding.EncodeToString([]byte("db1::user pat s3cret-canary\n"))
	put := func(name string) bool {
		code, _ := admin.Do("PUT", "/api/v1/configurations/"+name, map[string]any{"metadata": map[string]string{"name": name},
			"spec": map[string]any{"type": "setdbparms", "data": data}})
		return code == http.StatusCreated
	}
	for i := 0; i < 20; i++ {
		if !put(fmt.Sprintf("before-%02d", i)) {
			t.Fatalf("create before-%02d failed", i)
		}
	}
	kept := buildBAR(t, -1)
	if code, body := admin.PutBAR("kept", kept); code != http.StatusCreated {
		t.Fatalf("upload of the BAR file kept: %d %s", code, body)
	}
	churn := make([][]byte, 8)
	for i := range churn {
		churn[i] = buildBAR(t, i)
	}
	if code, body := admin.PutBAR("churn", churn[0]); code != http.StatusCreated {
		t.Fatalf("upload of the BAR file churn: %d %s", code, body)
	}
	// Writes go on while the backup runs; replacing churn removes the
	// content it held before.
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			put(fmt.Sprintf("during-%04d", i))
		}
	}()
	go func() {
		defer wg.Done()
		for i := 1; !stop.Load(); i++ {
			admin.PutBAR("churn", churn[i%len(churn)])
		}
	}()
	out := filepath.Join(t.TempDir(), "sluice-backup.db")
	msg, err := sluiceCmd(t, "backup", out, "--data-dir", s.DataDir)
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("sluice backup: %v\n%s", err, msg)
	}
	if !strings.Contains(msg, "backup written") || !strings.Contains(msg, "master key is not in the backup") {
		t.Fatalf("backup said:\n%s", msg)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(out); strings.Contains(string(b), "s3cret-canary") {
		t.Fatal("the backup holds a configuration's secret in clear text")
	}
	if msg, err := sluiceCmd(t, "backup", out, "--data-dir", s.DataDir); err == nil || !strings.Contains(msg, "exists already") {
		t.Fatalf("a second backup over the first: %v\n%s", err, msg)
	}

	restored := t.TempDir()
	if msg, err := sluiceCmd(t, "restore", out, "--data-dir", restored); err != nil || !strings.Contains(msg, "restored") ||
		!strings.Contains(msg, "master key") {
		t.Fatalf("sluice restore: %v\n%s", err, msg)
	}
	if msg, err := sluiceCmd(t, "restore", out, "--data-dir", restored); err == nil || !strings.Contains(msg, "exists already") {
		t.Fatalf("a restore over a store: %v\n%s", err, msg)
	}

	// Without the master key, and with another one, the store is refused.
	serve := func(dir string, env ...string) (string, error) {
		cmd := exec.Command(servertest.Binary(t), "serve", "--listen", servertest.FreeAddr(t), "--data-dir", dir, "--runtime-backend", "none")
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if msg, err := serve(restored, "SLUICE_MASTER_KEY="); err == nil || !strings.Contains(msg, "no master key was given") {
		t.Fatalf("serve without the master key: %v\n%s", err, msg)
	}
	other, _ := secret.NewMasterKey()
	if msg, err := serve(restored, "SLUICE_MASTER_KEY="+other.Encode().Reveal()); err == nil || !strings.Contains(msg, "does not open this store") {
		t.Fatalf("serve with another master key: %v\n%s", err, msg)
	}

	key, err := os.ReadFile(filepath.Join(s.DataDir, secret.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, secret.KeyFileName), key, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	r := servertest.Start(t, servertest.Options{DataDir: restored, Args: []string{"--runtime-backend", "none"}})
	r.Creds = s.Creds
	code, body := r.Admin(t).Do("GET", "/api/v1/configurations", nil)
	if code != 200 {
		t.Fatalf("list on the restored store: %d %s", code, body)
	}
	for i := 0; i < 20; i++ {
		if name := fmt.Sprintf(`"before-%02d"`, i); !strings.Contains(string(body), name) {
			t.Fatalf("the restored store lacks %s, acknowledged before the backup", name)
		}
	}
	if code, body := r.Admin(t).Do("GET", "/api/v1/bar-files/kept/content", nil); code != 200 || !bytes.Equal(body, kept) {
		t.Fatalf("the restored BAR file kept: %d, %d bytes; want 200 and the %d uploaded", code, len(body), len(kept))
	}
	code, body = r.Admin(t).Do("GET", "/api/v1/bar-files/churn/content", nil)
	if code != 200 || !slices.ContainsFunc(churn, func(c []byte) bool { return bytes.Equal(body, c) }) {
		t.Fatalf("the restored BAR file churn: %d, %d bytes; want 200 and one of the versions uploaded", code, len(body))
	}
}

// PostgreSQL is backed up with its own tools; sluice backup says so
// instead of writing something.
func TestBackupOfPostgresPointsToPgDump(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	out := filepath.Join(t.TempDir(), "b.db")
	msg, err := sluiceCmd(t, "backup", out, "--store", dsn)
	if err == nil || !strings.Contains(msg, "pg_dump") || !strings.Contains(msg, "docs/backup.md") {
		t.Fatalf("backup of a PostgreSQL store: %v\n%s", err, msg)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a file was written")
	}
}
