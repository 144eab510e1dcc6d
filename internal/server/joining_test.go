package server_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// A control plane that does not fit the replicas already serving one
// PostgreSQL database refuses to serve and says why, changing nothing:
// one started with another master key, and one whose binary is older
// than the schema (a newer replica migrated it). The serving replica
// keeps serving throughout.
func TestReplicasThatDoNotFitAreRefused(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	mk, _ := secret.NewMasterKey()
	a := servertest.Start(t, servertest.Options{Store: dsn, Env: []string{"SLUICE_MASTER_KEY=" + mk.Encode().Reveal()},
		Args: []string{"--runtime-backend", "none"}})
	admin := a.Admin(t)
	join := func(env ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(servertest.Binary(t), "serve", "--store", dsn, "--data-dir", t.TempDir(), "--listen", servertest.FreeAddr(t), "--runtime-backend", "none")
		cmd.Env = append(os.Environ(), env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), strings.TrimSpace(stderr.String())
	}

	other, _ := secret.NewMasterKey()
	if code, msg := join("SLUICE_MASTER_KEY=" + other.Encode().Reveal()); code != 1 || !strings.Contains(msg, "does not open this store") ||
		!strings.Contains(msg, other.Fingerprint()) {
		t.Fatalf("a replica with another master key: exit %d, %q", code, msg)
	}
	if code, msg := join("SLUICE_MASTER_KEY="); code != 1 || !strings.Contains(msg, "no master key was given") {
		t.Fatalf("a replica without the master key: exit %d, %q", code, msg)
	}

	// A newer binary migrated the schema past what this one knows.
	u, _ := url.Parse(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var version int
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&version); err != nil {
		t.Fatalf("read the schema version (search_path %s): %v", u.Query().Get("search_path"), err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_a_newer_binary', 0)`, version+1); err != nil {
		t.Fatal(err)
	}
	if code, msg := join("SLUICE_MASTER_KEY=" + mk.Encode().Reveal()); code != 1 || !strings.Contains(msg, "knows only") || !strings.Contains(msg, "run a newer sluice") {
		t.Fatalf("an older binary joining a newer schema: exit %d, %q", code, msg)
	}
	var after int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version > $1`, version+1).Scan(&after); err != nil || after != 0 {
		t.Fatalf("the refused replica changed the schema: %d rows past it, %v", after, err)
	}
	if code, body := admin.Do("GET", "/api/v1/whoami", nil); code != 200 {
		t.Fatalf("the serving replica stopped serving: %d %s", code, body)
	}
}
