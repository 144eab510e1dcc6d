package orchestrator_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/orchestrator/local"
	"github.com/sluice-dev/sluice/internal/store"
)

// A steady reconciler with a Resync skips its periodic passes while
// nothing is written to the store, and passes again as soon as anything
// is (whoever writes it), when a runtime needs watching, or when Resync
// has gone by — by the injected clock, with no interval waited.
func TestSteadyReconcilerSkipsPassesUntilAWrite(t *testing.T) {
	ctx := context.Background()
	clk := clocktest.New(0)
	dir := t.TempDir()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := clk.Now()
	if err := st.CreateInstance(ctx, newInstance("inst1", at)); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := local.New(local.Options{Dir: filepath.Join(dir, "runtimes"), Log: log, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := &orchestrator.Reconciler{Store: st, Backend: b, Log: log, Now: clk.Now, Resync: time.Hour}

	pass := func() (store.WriteStamp, time.Time) {
		t.Helper()
		stamp, ok := r.Stamp()
		if !ok {
			t.Fatal("SQLite gives the reconciler no write stamp")
		}
		if err := r.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		return stamp, clk.Now()
	}

	// Nothing to run: steady. A periodic pass is skipped until a write.
	stamp, last := pass()
	if !r.Quiet(stamp, last) {
		t.Fatal("an idle reconciler with nothing written since its pass would pass again")
	}
	if _, err := st.ListRuntimes(ctx, "", store.Page{}); err != nil {
		t.Fatal(err)
	}
	if !r.Quiet(stamp, last) {
		t.Fatal("a read counted as a write")
	}
	if _, err := st.PutConfiguration(ctx, store.Configuration{InstanceID: "inst1", Name: "db", Type: "setdbparms", SealedData: []byte("sealed"), Size: 6,
		CreatedAt: at, CreatedBy: "test", UpdatedAt: at, UpdatedBy: "test"}, true); err != nil {
		t.Fatal(err)
	}
	if r.Quiet(stamp, last) {
		t.Fatal("a configuration written since the pass did not make the next periodic pass run")
	}

	// Steady again; Resync bounds the time without a pass.
	stamp, last = pass()
	if !r.Quiet(stamp, last) {
		t.Fatal("steady after the write's pass, yet not quiet")
	}
	clk.Add(time.Hour)
	if r.Quiet(stamp, last) {
		t.Fatal("no pass for a whole Resync")
	}

	// A runtime waiting for its BAR file is not steady: its periodic
	// passes run whatever the stamp says.
	if _, _, err := st.PutRuntime(ctx, store.Runtime{InstanceID: "inst1", Name: "rt", UID: "ir-1", Generation: 1, FetchTokenHash: "h",
		Spec:      `{"barURL":["http://127.0.0.1:1/api/v1/bar-files/missing/content"],"configurations":[]}`,
		CreatedAt: at, CreatedBy: "test", UpdatedAt: at, UpdatedBy: "test"}, nil); err != nil {
		t.Fatal(err)
	}
	pass()
	stamp, last = pass() // its status is written by the first
	if r.Quiet(stamp, last) {
		t.Fatal("a pending runtime's periodic pass was skipped")
	}

	// Without Resync every periodic pass runs.
	r.Resync = 0
	if _, ok := r.Stamp(); ok {
		t.Fatal("a reconciler without Resync takes stamps")
	}
}

func newInstance(id string, at time.Time) store.NewInstance {
	admin := store.Identity{ID: "usr-" + id, InstanceID: id, Kind: store.KindUser, Name: "admin", Role: "admin", CreatedAt: at, CreatedBy: "test", UpdatedAt: at}
	return store.NewInstance{
		Instance:   store.Instance{ID: id, Name: id, CreatedAt: at},
		Admin:      admin,
		Key:        store.APIKey{ID: "ak-" + id, InstanceID: id, OwnerID: admin.ID, Name: "initial", KeyHash: "hash-" + id, KeyHint: "slk_…", CreatedAt: at, CreatedBy: "test"},
		Credential: store.ClientCredential{ClientID: "client-" + id, InstanceID: id, Name: "initial", SecretHash: "shash-" + id, SecretHint: "slcs_…", CreatedAt: at, CreatedBy: "test"},
	}
}
