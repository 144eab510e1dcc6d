package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// pageThrough reads a list size rows at a time by keyset, calling between
// after every page but the last; it returns the keys of what it read.
func pageThrough[T store.Keyed](t *testing.T, size int, list func(store.Page) ([]T, error), between func(page int)) []string {
	t.Helper()
	var seen []string
	pg := store.Page{Limit: size}
	for i := 0; ; i++ {
		rows, err := list(pg)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		if len(rows) > size {
			t.Fatalf("page %d has %d rows, more than its limit %d", i, len(rows), size)
		}
		for _, r := range rows {
			seen = append(seen, fmt.Sprint(r.PageKey()))
		}
		if len(rows) < size {
			return seen
		}
		pg.After = rows[len(rows)-1].PageKey()
		between(i)
	}
}

// Keyset pages hold under concurrent writes: inserts and deletes between
// the pages never make a reader see a row twice nor miss one that existed
// all along, on both stores.
func TestListPagesStableUnderInsertsAndDeletes(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		at := clocktest.Epoch()
		if _, err := s.Bootstrap(ctx, newInstance("inst1", at)); err != nil {
			t.Fatal(err)
		}
		put := func(name string) {
			t.Helper()
			c := store.Configuration{InstanceID: "inst1", Name: name, Type: "generic", SealedData: []byte("x"), UpdatedAt: at, UpdatedBy: "test"}
			if _, err := s.PutConfiguration(ctx, c, true); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 60; i += 2 {
			put(fmt.Sprintf("c%03d", i))
		}
		deleted := map[string]bool{}
		seen := pageThrough(t, 7, func(pg store.Page) ([]store.Configuration, error) {
			return s.ListConfigurations(ctx, "inst1", pg)
		}, func(page int) {
			// Between pages: a row before the position and one after it
			// go, and new rows come on both sides.
			for _, n := range []string{fmt.Sprintf("c%03d", page*2), fmt.Sprintf("c%03d", 58-page*2)} {
				if err := s.DeleteConfiguration(ctx, "inst1", n); err == nil {
					deleted["["+n+"]"] = true
				}
			}
			put(fmt.Sprintf("c%03d", page*2+1))
			put(fmt.Sprintf("c%03d", 59-page*2))
		})
		counts := map[string]int{}
		for _, k := range seen {
			counts[k]++
		}
		for k, n := range counts {
			if n > 1 {
				t.Errorf("%s seen %d times", k, n)
			}
		}
		for i := 0; i < 60; i += 2 {
			k := fmt.Sprintf("[c%03d]", i)
			if !deleted[k] && counts[k] != 1 {
				t.Errorf("%s existed throughout but was seen %d times", k, counts[k])
			}
		}
		if !slices.IsSorted(seen) {
			t.Errorf("pages out of order: %v", seen)
		}

		// Offsets cut the same order; a position of the wrong shape is
		// refused, not guessed at.
		all, err := s.ListConfigurations(ctx, "inst1", store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		part, err := s.ListConfigurations(ctx, "inst1", store.Page{Offset: 5, Limit: 3})
		if err != nil || len(part) != 3 || part[0].Name != all[5].Name || part[2].Name != all[7].Name {
			t.Errorf("offset 5 limit 3 = %v, %v; want rows 5-7 of %d", part, err, len(all))
		}
		if _, err := s.ListConfigurations(ctx, "inst1", store.Page{After: []string{"a", "b"}}); !errors.Is(err, store.ErrBadPageKey) {
			t.Errorf("a two-part position on a one-part key: %v, want ErrBadPageKey", err)
		}
	})
}

// Lists with keys of several parts (API keys: owner, name, id) and with
// numbers in them (app credentials: creation time, id) page in the same
// order as they list whole, ties included.
func TestListPagesCompositeKeys(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		at := clocktest.Epoch()
		if _, err := s.Bootstrap(ctx, newInstance("inst1", at)); err != nil {
			t.Fatal(err)
		}
		for i, owner := range []string{"zed", "amy", "bob"} {
			id := store.Identity{ID: "sid-" + owner, InstanceID: "inst1", Kind: store.KindServiceID, Name: owner, Role: "viewer", CreatedAt: at, UpdatedAt: at}
			if err := s.CreateIdentity(ctx, id); err != nil {
				t.Fatal(err)
			}
			for j := 0; j < 3+i; j++ {
				k := store.APIKey{ID: fmt.Sprintf("ak-%s-%d", owner, j), InstanceID: "inst1", OwnerID: id.ID, Name: fmt.Sprintf("k%d", (j*7)%10),
					KeyHash: fmt.Sprintf("h-%s-%d", owner, j), CreatedAt: at}
				if err := s.CreateAPIKey(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
		}
		whole, err := s.ListAPIKeys(ctx, "inst1", "", store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, k := range whole {
			want = append(want, fmt.Sprint(k.PageKey()))
		}
		got := pageThrough(t, 2, func(pg store.Page) ([]store.APIKey, error) { return s.ListAPIKeys(ctx, "inst1", "", pg) }, func(int) {})
		if !slices.Equal(got, want) {
			t.Errorf("API keys by pages of 2:\n%v\nwhole:\n%v", got, want)
		}

		// An identity's own client credentials (Airbyte's applications):
		// only its own, by name, the same by pages as whole.
		for i, owner := range []string{"", "sid-amy", "sid-zed", "sid-amy", "sid-amy", "sid-zed", "sid-amy"} {
			c := store.ClientCredential{ClientID: fmt.Sprintf("cc-%d", i), InstanceID: "inst1", Name: fmt.Sprintf("c%d", (i*5)%7),
				OwnerID: owner, SecretHash: "h", SecretHint: "x", CreatedAt: at, CreatedBy: "test"}
			if err := s.CreateClientCredential(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		owned, err := s.ListOwnedClientCredentials(ctx, "inst1", "sid-amy", store.Page{})
		var names []string
		for _, c := range owned {
			if c.OwnerID != "sid-amy" {
				t.Errorf("amy's list has %s of %q", c.Name, c.OwnerID)
			}
			names = append(names, c.Name)
		}
		if err != nil || !slices.Equal(names, []string{"c1", "c2", "c5", "c6"}) {
			t.Errorf("amy's client credentials = %v, %v; want c1 c2 c5 c6", names, err)
		}
		byPages := pageThrough(t, 3, func(pg store.Page) ([]store.ClientCredential, error) {
			return s.ListOwnedClientCredentials(ctx, "inst1", "sid-amy", pg)
		}, func(int) {})
		if want := []string{"[c1]", "[c2]", "[c5]", "[c6]"}; !slices.Equal(byPages, want) {
			t.Errorf("amy's client credentials by pages of 3: %v, want %v", byPages, want)
		}

		// App credentials: several created in the same millisecond, a
		// lease, and an expired lease the sweeper has not taken yet.
		cat := store.Catalog{Entity: store.Entity{ID: "cat-1", InstanceID: "inst1", Name: "prod", CreatedAt: at, UpdatedAt: at}}
		org := store.ConsumerOrg{Entity: store.Entity{ID: "org-1", InstanceID: "inst1", Name: "acme", CreatedAt: at, UpdatedAt: at}, CatalogID: cat.ID}
		app := store.App{Entity: store.Entity{ID: "app-1", InstanceID: "inst1", Name: "shop", CreatedAt: at, UpdatedAt: at}, CatalogID: cat.ID, ConsumerOrgID: org.ID, State: "enabled"}
		for _, err := range []error{s.CreateCatalog(ctx, cat), s.CreateConsumerOrg(ctx, org), s.CreateApp(ctx, app)} {
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 7; i++ {
			c := store.AppCredential{ID: fmt.Sprintf("cr-%d", 7-i), InstanceID: "inst1", CatalogID: cat.ID, ConsumerOrgID: org.ID, AppID: app.ID,
				Name: fmt.Sprintf("c%d", i), ClientID: fmt.Sprintf("client-%d", i), CreatedAt: at.Add(time.Duration(i/3) * time.Millisecond), UpdatedAt: at}
			switch i {
			case 5:
				c.ExpiresAt = at.Add(time.Hour)
			case 6:
				c.ExpiresAt = at.Add(time.Second)
			}
			if err := s.CreateAppCredential(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		list := func(f store.AppCredentialFilter) func(store.Page) ([]store.AppCredential, error) {
			return func(pg store.Page) ([]store.AppCredential, error) { return s.ListAppCredentials(ctx, app.ID, f, pg) }
		}
		whole2, err := list(store.AppCredentialFilter{})(store.Page{})
		if err != nil || len(whole2) != 7 {
			t.Fatalf("credentials: %d, %v", len(whole2), err)
		}
		want = want[:0]
		for _, c := range whole2 {
			want = append(want, fmt.Sprint(c.PageKey()))
		}
		if got := pageThrough(t, 2, list(store.AppCredentialFilter{}), func(int) {}); !slices.Equal(got, want) {
			t.Errorf("credentials by pages of 2:\n%v\nwhole:\n%v", got, want)
		}
		later := at.Add(time.Minute)
		if live := pageThrough(t, 2, list(store.AppCredentialFilter{LiveAt: later}), func(int) {}); len(live) != 6 {
			t.Errorf("live credentials a minute later: %v, want all but the expired lease", live)
		}
		if n, err := s.CountAppCredentials(ctx, app.ID, store.AppCredentialFilter{LiveAt: later}); n != 6 || err != nil {
			t.Errorf("count of live credentials = %d, %v; want 6", n, err)
		}
		if leases := pageThrough(t, 1, list(store.AppCredentialFilter{LiveAt: later, LeasesOnly: true}), func(int) {}); len(leases) != 1 {
			t.Errorf("live leases: %v, want one", leases)
		}
		if _, err := s.ListAppCredentials(ctx, app.ID, store.AppCredentialFilter{}, store.Page{After: []string{"soon", "cr-1"}}); !errors.Is(err, store.ErrBadPageKey) {
			t.Errorf("text where the key has a number: %v, want ErrBadPageKey", err)
		}
	})
}
