package apps_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// BenchmarkLeaseRevocation creates 10,000 leases whose TTLs are spread
// over 10 s and measures, on the real clock, how late each is deleted
// after its expiry (p50, p99, max) and the CPU the process spent while
// they expired. It runs three ways in the same process: with the sweeper
// (timer-driven from the next expiry) and with a baseline that polls for
// expired leases every second, the usual way of doing it; and with the
// sweeper gathering 20 ms of expiries per wake-up, as sluice serve runs it.
//
//	go test ./internal/apps/ -run '^$' -bench LeaseRevocation -benchtime 1x
func BenchmarkLeaseRevocation(b *testing.B) {
	for _, mode := range []string{"sweeper", "sweeper-gather-20ms", "poll-1s"} {
		b.Run(mode, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				leaseRevocation(b, mode, 10000, 10*time.Second)
			}
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func leaseRevocation(b *testing.B, mode string, n int, spread time.Duration) {
	ctx := context.Background()
	dir := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		// The store's fsyncs are not what is measured.
		d, err := os.MkdirTemp("/dev/shm", "sluice-bench-")
		if err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	mk, _ := secret.NewMasterKey()
	kr, err := secret.OpenKeyring(ctx, st, mk)
	if err != nil {
		b.Fatal(err)
	}
	aud := iam.NewAuditor(st)
	defer aud.Close()
	tokens := &iam.Tokens{Store: st, Keyring: kr, Issuer: "http://bench", Audience: "sluice", Lifetime: time.Hour}
	if err := tokens.Init(ctx); err != nil {
		b.Fatal(err)
	}
	is := &iam.Service{Store: st, Tokens: tokens, Audit: aud}
	creds, err := is.Bootstrap(ctx)
	if err != nil {
		b.Fatal(err)
	}
	svc := &apps.Service{Store: st, IAM: is}
	dev := iam.Principal{InstanceID: creds.InstanceID, SubjectKind: store.KindUser, SubjectName: "bench", Role: iam.RoleDeveloper}
	if _, err := svc.CreateConsumerOrg(ctx, dev, "sandbox", apps.Input{Name: "acme"}); err != nil {
		b.Fatal(err)
	}
	path := apps.Path{Catalog: "sandbox", ConsumerOrg: "acme", App: "shop"}
	r, err := svc.CreateApp(ctx, dev, path, apps.AppInput{Input: apps.Input{Name: "shop"}})
	if err != nil {
		b.Fatal(err)
	}

	var mu sync.Mutex
	late := make([]time.Duration, 0, n)
	done := make(chan struct{})
	svc.Watch(func(ev apps.Event) {
		if ev.Type != apps.EventCredentialDeleted || ev.Reason != "expired" {
			return
		}
		d := time.Since(ev.Credential.ExpiresAt)
		mu.Lock()
		late = append(late, d)
		if len(late) == n {
			close(done)
		}
		mu.Unlock()
	})

	// Leases are written straight to the store: creating them is set-up,
	// not what is measured. The first expires 10 s from now (time for the
	// set-up on a busy machine), the last 10 s + spread from now.
	start := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				_, hash, hint := iam.IssueSecret(iam.AppSecretPrefix)
				exp := start.Add(time.Duration(i) * spread / time.Duration(n)).Truncate(time.Millisecond)
				c := store.AppCredential{ID: fmt.Sprintf("lease-%05d", i), InstanceID: dev.InstanceID, CatalogID: r.Catalog.ID,
					ConsumerOrgID: r.ConsumerOrg.ID, AppID: r.App.ID, Name: fmt.Sprintf("l%05d", i), ClientID: fmt.Sprintf("00000000-0000-0000-0000-%012d", i),
					SecretHash: hash, SecretHint: hint, ExpiresAt: exp, CreatedAt: time.Now(), CreatedBy: "bench", UpdatedAt: time.Now()}
				if err := st.CreateAppCredential(ctx, c); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if time.Now().After(start) {
		b.Fatalf("setting up %d leases took longer than 10 s; the first expired before measuring began", n)
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cpu0 := cpuTime()
	b.ResetTimer()
	switch mode {
	case "sweeper":
		go (&apps.Sweeper{Apps: svc, Log: log}).Run(sctx)
	case "sweeper-gather-20ms":
		go (&apps.Sweeper{Apps: svc, Log: log, Gather: 20 * time.Millisecond}).Run(sctx)
	case "poll-1s":
		// The baseline: every second, delete what has expired. It goes
		// through the same Sweep (delete, audit, tell the feed), only the
		// scheduling differs.
		poller := &apps.Sweeper{Apps: svc, Log: log}
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-sctx.Done():
					return
				case <-t.C:
					_, _ = poller.Sweep(sctx)
				}
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(spread + time.Minute):
		b.Fatalf("only %d of %d leases were swept", len(late), n)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	pct := func(p float64) time.Duration { return late[int(p*float64(len(late)-1))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-late-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-late-ms")
	b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "max-late-ms")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/lease")
}
