package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// Deleting an instance removes everything in it, in both stores, says
// what it removed, and leaves the other instances (and BAR content they
// share) alone.
func TestDeleteInstanceRemovesItsContents(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		at := clocktest.Epoch()
		for _, id := range []string{"keep", "gone"} {
			if err := s.CreateInstance(ctx, newInstance(id, at)); err != nil {
				t.Fatal(err)
			}
		}
		content := "PK-shared-bar"
		sum := sha256.Sum256([]byte(content))
		sha := hex.EncodeToString(sum[:])
		onlyGone := "PK-gone-only"
		sum2 := sha256.Sum256([]byte(onlyGone))
		sha2 := hex.EncodeToString(sum2[:])
		for _, id := range []string{"keep", "gone"} {
			if _, err := s.PutBARFile(ctx, store.BARFile{InstanceID: id, Name: "hello", SHA256: sha, Size: int64(len(content)), Info: "{}", UploadedAt: at, UploadedBy: "test"},
				strings.NewReader(content)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PutConfiguration(ctx, store.Configuration{InstanceID: id, Name: "db", Type: "setdbparms", SealedData: []byte("sealed"), Size: 6,
				CreatedAt: at, CreatedBy: "test", UpdatedAt: at, UpdatedBy: "test"}, true); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.PutRuntime(ctx, store.Runtime{InstanceID: id, Name: "rt", UID: "ir-" + id, Generation: 1, Spec: "{}", FetchTokenHash: "h",
				CreatedAt: at, CreatedBy: "test", UpdatedAt: at, UpdatedBy: "test"}, []store.Ref{{Kind: "configuration", Name: "db"}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.PutBARFile(ctx, store.BARFile{InstanceID: "gone", Name: "only", SHA256: sha2, Size: int64(len(onlyGone)), Info: "{}", UploadedAt: at, UploadedBy: "test"},
			strings.NewReader(onlyGone)); err != nil {
			t.Fatal(err)
		}

		for _, id := range []string{"keep", "gone"} {
			if err := s.PutSetting(ctx, store.InstanceSetting("egress-policy", id), `{"allow":["127.0.0.1:9000"]}`); err != nil {
				t.Fatal(err)
			}
		}
		// A key that merely contains the id, and one of an instance whose
		// id ends like it, are not the deleted instance's.
		for _, k := range []string{"gone/other", store.InstanceSetting("egress-policy", "not-gone")} {
			if err := s.PutSetting(ctx, k, "x"); err != nil {
				t.Fatal(err)
			}
		}

		c, err := s.InstanceContents(ctx, "gone")
		if err != nil || c.Users != 1 || c.APIKeys != 1 || c.Credentials != 1 || c.Configurations != 1 || c.BARFiles != 2 || !slices.Equal(c.Runtimes, []string{"rt"}) {
			t.Fatalf("contents %+v, %v", c, err)
		}
		removed, err := s.DeleteInstance(ctx, "gone")
		if err != nil || removed.BARFiles != 2 || !slices.Equal(removed.Runtimes, []string{"rt"}) {
			t.Fatalf("DeleteInstance = %+v, %v", removed, err)
		}
		if _, err := s.InstanceContents(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("contents of a deleted instance: %v", err)
		}
		if _, err := s.DeleteInstance(ctx, "gone"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleting it again: %v", err)
		}
		if users, _ := s.RuntimesUsing(ctx, "gone", store.Ref{Kind: "configuration", Name: "db"}); len(users) != 0 {
			t.Errorf("runtime references of the deleted instance remain: %v", users)
		}
		if _, err := s.GetSetting(ctx, store.InstanceSetting("egress-policy", "gone")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the deleted instance's egress allow-list remains: %v", err)
		}
		for _, k := range []string{store.InstanceSetting("egress-policy", "keep"), "gone/other", store.InstanceSetting("egress-policy", "not-gone")} {
			if _, err := s.GetSetting(ctx, k); err != nil {
				t.Errorf("setting %s went with another instance: %v", k, err)
			}
		}
		if _, err := s.OpenBlob(ctx, sha2); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("BAR content only the deleted instance used remains: %v", err)
		}
		// The other instance keeps everything, the shared content too.
		kept, err := s.InstanceContents(ctx, "keep")
		if err != nil || kept.Users != 1 || kept.Configurations != 1 || kept.BARFiles != 1 || !slices.Equal(kept.Runtimes, []string{"rt"}) {
			t.Errorf("the other instance: %+v, %v", kept, err)
		}
		r, err := s.OpenBlob(ctx, sha)
		if err != nil {
			t.Fatalf("shared BAR content: %v", err)
		}
		r.Close()
		if users, _ := s.RuntimesUsing(ctx, "keep", store.Ref{Kind: "configuration", Name: "db"}); !slices.Equal(users, []string{"rt"}) {
			t.Errorf("the other instance's references: %v", users)
		}
	})
}
