package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// A stamp moves with every commit to the SQLite file, whoever makes it
// (here a second store on the same file, as a CLI command run beside
// `sluice serve` would), and stays put while nothing is written.
func TestSQLiteWriteStampMovesWithWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ws, ok := st.(store.WriteStamper)
	if !ok {
		t.Fatalf("%T is not a WriteStamper", st)
	}
	other, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 3 {
		prev := ws.WriteStamp()
		if _, err := st.ListInstances(ctx); err != nil {
			t.Fatal(err)
		}
		if got := ws.WriteStamp(); got != prev {
			t.Fatalf("a read moved the stamp: %+v -> %+v", prev, got)
		}
		if err := other.CreateInstance(ctx, newInstance(fmt.Sprintf("stamp-%d", i), clocktest.Epoch())); err != nil {
			t.Fatal(err)
		}
		if got := ws.WriteStamp(); got == prev {
			t.Fatalf("write %d by another store left the stamp at %+v", i, got)
		}
	}
}
