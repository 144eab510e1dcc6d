package local

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// BenchmarkApplyToFirst200 measures what a user waits for after a PUT:
// from Apply of a new runtime to the first 200 from its flow endpoint.
// It reports the median and the worst as well as the mean.
func BenchmarkApplyToFirst200(b *testing.B) {
	dir := b.TempDir()
	b.Cleanup(func() { killAll(b, dir) })
	hello, _ := testBARs(b)
	be, err := New(Options{Dir: filepath.Join(dir, "runtimes"), Binary: servertest.Binary(b), Ports: PortRange{First: 17801, Last: 18800},
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	ctx := context.Background()
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		d := deployment(1, 1, hello)
		d.Key = orchestrator.Key{InstanceID: "bench", Name: fmt.Sprintf("rt-%d", i)}
		begin := time.Now()
		o, err := be.Apply(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		for {
			resp, err := http.Get(o.BaseURL + "/hello/bench")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		took = append(took, time.Since(begin))
		b.StopTimer()
		if err := be.Delete(ctx, d.Key); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
}
