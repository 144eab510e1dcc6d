package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/metrics"
)

// The audit export's counters and lag gauge read what the exporter
// reports, one series per result.
func TestAuditExportSeries(t *testing.T) {
	m := metrics.New()
	m.CountAuditExport(func() (uint64, uint64, int) { return 42, 7, 3 })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`sluice_audit_export_events_total{result="exported"} 42`,
		`sluice_audit_export_events_total{result="dropped"} 7`,
		`sluice_audit_export_queue 3`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
