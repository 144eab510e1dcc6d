package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// BenchmarkAuthenticatedGet serves the two authenticated GETs of issue 18
// item 3 in-process, through the whole handler (request id, access log as
// sluice serve writes it, authentication, rate limits, the route):
// GET /api/v1/whoami and GET /api/v1/integration-runtimes listing 10
// runtimes (stopped, each running examples/hello), on each store. What
// net/http costs around it is bench/tokenbench's to measure; this shows
// where the handler's own time and allocations go (-cpuprofile, -memprofile).
func BenchmarkAuthenticatedGet(b *testing.B) {
	for _, kind := range storetest.Kinds() {
		b.Run(kind, func(b *testing.B) {
			high := iam.Limit{Requests: 1 << 30, Window: 1e9}
			e := newEnv(b, envOpts{storeKind: kind, obsLogger: true, perClient: high, perInstance: high, perSource: high})
			admin := e.admin()
			if r := admin.putBAR("hello", buildExample(b, "hello"), "application/octet-stream"); r.code != 201 && r.code != 200 {
				b.Fatalf("upload: %d %s", r.code, r.body)
			}
			spec := map[string]any{"barURL": []string{e.url + "/api/v1/bar-files/hello/content"}, "replicas": 0}
			for i := 1; i <= 10; i++ {
				name := fmt.Sprintf("bench-%02d", i)
				if r := admin.call("PUT", "/api/v1/integration-runtimes/"+name, runtimeBody(name, spec)); r.code != 201 {
					b.Fatalf("create %s: %d %s", name, r.code, r.body)
				}
			}
			for _, path := range []string{"/api/v1/whoami", "/api/v1/integration-runtimes"} {
				b.Run(path[len("/api/v1/"):], func(b *testing.B) {
					req := httptest.NewRequest("GET", path, nil)
					req.Header.Set("Authorization", "Bearer "+admin.token)
					req.Header.Set("X-IBM-Client-Id", admin.clientID)
					b.ReportAllocs()
					for b.Loop() {
						e.logs.Reset()
						w := &discard{h: http.Header{}}
						e.handler.ServeHTTP(w, req)
						if w.code != 200 {
							b.Fatalf("GET %s: %d", path, w.code)
						}
					}
				})
			}
		})
	}
}
