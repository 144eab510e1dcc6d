package api_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/server"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// TestQuotas: a write that would take the instance over a quota is a 403
// naming the quota, its value and its flag, audited, and changes nothing;
// replacing an object within the quota still works.
func TestQuotas(t *testing.T) {
	hello := buildExample(t, "hello")
	e := newEnv(t, envOpts{quotas: server.Quotas{Runtimes: 2, Replicas: 3, BARStorage: int64(len(hello)) + 10, ConfigArchive: 1024}})
	admin := e.admin()
	refused := func(label string, r resp, want ...string) {
		t.Helper()
		if r.code != 403 {
			t.Fatalf("%s: %d %s, want 403", label, r.code, r.body)
		}
		for _, w := range want {
			if !strings.Contains(string(r.body), w) {
				t.Errorf("%s: answer lacks %q: %s", label, w, r.body)
			}
		}
	}

	// BAR storage.
	if r := admin.putBAR("a", hello, "application/octet-stream"); r.code != 201 {
		t.Fatalf("first BAR: %d %s", r.code, r.body)
	}
	refused("second BAR", admin.putBAR("b", hello, "application/octet-stream"), "quota", "--quota-bar-storage", "quota of "+strconv.Itoa(len(hello)+10)+" bytes")
	if r := admin.call("GET", "/api/v1/bar-files/b", nil); r.code != 404 {
		t.Errorf("refused BAR was stored: %d", r.code)
	}
	if r := admin.putBAR("a", hello, "application/octet-stream"); r.code != 200 {
		t.Errorf("replacing the BAR within the quota: %d %s", r.code, r.body)
	}

	// Runtimes and replicas.
	barURL := e.url + "/api/v1/bar-files/a/content"
	rt := func(name string, replicas int) resp {
		return admin.call("PUT", "/api/v1/integration-runtimes/"+name, runtimeBody(name, map[string]any{"barURL": []string{barURL}, "replicas": replicas}))
	}
	if r := rt("r1", 1); r.code != 201 {
		t.Fatalf("r1: %d %s", r.code, r.body)
	}
	if r := rt("r2", 2); r.code != 201 {
		t.Fatalf("r2: %d %s", r.code, r.body)
	}
	refused("third runtime", rt("r3", 0), "quota is 2", "--quota-runtimes")
	refused("more replicas", rt("r2", 3), "quota of 3 replicas", "--quota-replicas")
	if r := admin.call("GET", "/api/v1/integration-runtimes/r2", nil); !strings.Contains(string(r.body), `"replicas":2`) {
		t.Errorf("refused replicas changed the spec: %s", r.body)
	}
	if r := admin.call("GET", "/api/v1/integration-runtimes/r3", nil); r.code != 404 {
		t.Errorf("refused runtime was stored: %d", r.code)
	}
	if r := rt("r2", 1); r.code != 200 {
		t.Errorf("fewer replicas: %d %s", r.code, r.body)
	}

	// The inflated size of a configuration archive: 4 KiB of zeros
	// compress to a few bytes.
	big := zipOf(t, map[string]string{"a.txt": strings.Repeat("0", 4096)})
	refused("generic archive", admin.call("PUT", "/api/v1/configurations/g", cfgBody("g", "generic", big)),
		"inflates to 4096 bytes", "quota of a configuration archive is 1024 bytes", "--quota-config-archive")
	if r := admin.call("GET", "/api/v1/configurations/g", nil); r.code != 404 {
		t.Errorf("refused configuration was stored: %d", r.code)
	}
	small := zipOf(t, map[string]string{"a.txt": "hello"})
	if r := admin.call("PUT", "/api/v1/configurations/g", cfgBody("g", "generic", small)); r.code != 201 {
		t.Errorf("small archive: %d %s", r.code, r.body)
	}

	// Each refusal is in the audit, as a failure.
	r := admin.call("GET", "/api/v1/audit?limit=100", nil)
	for _, obj := range []string{"barFile/b", "integrationRuntime/r3", "integrationRuntime/r2"} {
		if !strings.Contains(string(r.body), obj) {
			t.Errorf("audit lacks %s: %.2000s", obj, r.body)
		}
	}
}

// TestQuotasHoldUnderConcurrentWrites: the quota check and the write it
// allows are one step, so concurrent creates cannot take an instance past
// its quota of runtimes or replicas, nor concurrent uploads past its BAR
// storage — on SQLite and on PostgreSQL.
func TestQuotasHoldUnderConcurrentWrites(t *testing.T) {
	hello := buildExample(t, "hello")
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			const runtimes, replicas, parallel = 3, 4, 12
			// Every upload is validated at once (not 2, the default): a
			// busy validator's 503 is not what this test is about.
			e := newEnv(t, envOpts{storeKind: kind, maxValidations: parallel,
				quotas: server.Quotas{Runtimes: runtimes, Replicas: replicas, BARStorage: 2*int64(len(hello)) + 10}})
			admin := e.admin()
			if r := admin.putBAR("a", hello, "application/octet-stream"); r.code != 201 {
				t.Fatalf("BAR: %d %s", r.code, r.body)
			}
			barURL := e.url + "/api/v1/bar-files/a/content"
			race := func(do func(i int) resp) map[int]int {
				codes := map[int]int{}
				var mu sync.Mutex
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := 0; i < parallel; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						r := do(i)
						mu.Lock()
						codes[r.code]++
						mu.Unlock()
					}()
				}
				close(start)
				wg.Wait()
				return codes
			}
			// Runtimes: of 12 creates at once, exactly the quota's 3 win.
			codes := race(func(i int) resp {
				name := fmt.Sprintf("rt%02d", i)
				return admin.call("PUT", "/api/v1/integration-runtimes/"+name, runtimeBody(name, map[string]any{"barURL": []string{barURL}, "replicas": 0}))
			})
			if codes[201] != runtimes || codes[403] != parallel-runtimes {
				t.Fatalf("concurrent creates: %v, want %d × 201 and the rest 403", codes, runtimes)
			}
			var list struct {
				Items []any `json:"integrationRuntimes"`
			}
			admin.call("GET", "/api/v1/integration-runtimes", nil).json(t, &list)
			if len(list.Items) != runtimes {
				t.Fatalf("%d runtimes stored, quota %d", len(list.Items), runtimes)
			}
			// Replicas: every runtime asks for 2 at once; only 2 of them fit
			// a quota of 4.
			var names []string
			for i := 0; i < parallel; i++ {
				if r := admin.call("GET", fmt.Sprintf("/api/v1/integration-runtimes/rt%02d", i), nil); r.code == 200 {
					names = append(names, fmt.Sprintf("rt%02d", i))
				}
			}
			codes = race(func(i int) resp {
				name := names[i%len(names)]
				return admin.call("PUT", "/api/v1/integration-runtimes/"+name, runtimeBody(name, map[string]any{"barURL": []string{barURL}, "replicas": 2}))
			})
			total := 0
			for _, name := range names {
				r := admin.call("GET", "/api/v1/integration-runtimes/"+name, nil)
				if strings.Contains(string(r.body), `"replicas":2`) {
					total += 2
				}
			}
			if total > replicas || codes[403] == 0 {
				t.Fatalf("concurrent scale-ups: %v, %d replicas stored, quota %d", codes, total, replicas)
			}
			// BAR storage: room for one more copy of hello; of 12 uploads
			// under new names at once one wins.
			codes = race(func(i int) resp { return admin.putBAR(fmt.Sprintf("b%02d", i), hello, "application/octet-stream") })
			if codes[201] != 1 || codes[403] != parallel-1 {
				t.Fatalf("concurrent uploads: %v, want one 201 and the rest 403", codes)
			}
		})
	}
}
