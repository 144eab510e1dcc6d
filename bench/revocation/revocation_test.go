package revocation

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// streak is how many calls in a row, each on a new connection (spread
// over the replicas by the kernel, which shares the port with
// SO_REUSEPORT), must give the new answer before the change counts as
// arrived: the chance that 20 all went to one of 2 replicas is 2 in a
// million. The time is taken at the first call of that streak.
const streak = 20

type world struct {
	b        *testing.B
	admin    *servertest.Client
	endpoint string
	call     *http.Client
}

// setup starts a control plane with a runtime of 2 replicas serving a
// published API behind a client-id plan, and a consumer app subscribed
// to it.
func setup(b *testing.B) *world {
	s := servertest.Start(b, servertest.Options{})
	w := &world{b: b, admin: s.Admin(b), call: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	data, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("PUT", s.URL+"/api/v1/bar-files/hello", strings.NewReader(string(data)))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+w.admin.Token)
	req.Header.Set("X-IBM-Client-Id", w.admin.ClientID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var up struct{ URL string }
	_ = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	w.must(201, "PUT", "/api/v1/integration-runtimes/shop", map[string]any{"spec": map[string]any{"barURL": []string{up.URL}, "replicas": 2}})
	for i := 0; ; i++ {
		var st struct {
			Status struct {
				Phase     string
				Replicas  struct{ Ready int }
				Endpoints []struct{ URI string }
			}
		}
		_, body := w.admin.Do("GET", "/api/v1/integration-runtimes/shop", nil)
		_ = json.Unmarshal(body, &st)
		if st.Status.Phase == "Ready" && len(st.Status.Endpoints) > 0 {
			w.endpoint = strings.Replace(st.Status.Endpoints[0].URI, "{name}", "bench", 1)
			break
		}
		if i == 240 {
			b.Fatalf("the runtime is not Ready: %s", body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	w.must(201, "PUT", "/api/v1/apis/hello", map[string]any{"spec": map[string]any{"version": "1.0.0", "barFile": "hello", "basePath": "/hello"}})
	w.must(201, "PUT", "/api/v1/plans/key", map[string]any{"spec": map[string]any{"apis": []string{"hello"}, "auth": "client-id", "clientSecret": true}})
	w.must(201, "POST", "/api/v1/catalogs/sandbox/consumer-orgs", map[string]any{"metadata": map[string]any{"name": "acme"}})
	w.must(201, "POST", "/api/v1/catalogs/sandbox/consumer-orgs/acme/apps", map[string]any{"metadata": map[string]any{"name": "shop"}})
	w.must(201, "PUT", "/api/v1/subscriptions/shop-key", map[string]any{"spec": map[string]any{"plan": "key", "app": "sandbox/acme/shop"}})
	return w
}

func (w *world) must(want int, method, path string, body any) []byte {
	w.b.Helper()
	code, out := w.admin.Do(method, path, body)
	if code != want {
		w.b.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, out)
	}
	return out
}

type credential struct {
	ClientID, ClientSecret string
	Metadata               struct{ ID string }
}

func (w *world) newCredential() credential {
	var c credential
	_ = json.Unmarshal(w.must(201, "POST", "/api/v1/catalogs/sandbox/consumer-orgs/acme/apps/shop/credentials", map[string]any{}), &c)
	return c
}

func (w *world) status(c credential) int {
	req, _ := http.NewRequest("GET", w.endpoint, nil)
	req.Header.Set("X-IBM-Client-Id", c.ClientID)
	req.Header.Set("X-IBM-Client-Secret", c.ClientSecret)
	resp, err := w.call.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

// until calls until streak calls in a row answer want, and returns when
// the streak began.
func (w *world) until(c credential, want int) time.Time {
	w.b.Helper()
	var began time.Time
	row := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		at := time.Now()
		if w.status(c) != want {
			row = 0
			continue
		}
		if row == 0 {
			began = at
		}
		if row++; row == streak {
			return began
		}
	}
	w.b.Fatalf("%d calls in a row never all answered %d", streak, want)
	return began
}

// report gives the quantiles of the propagation delays and of the
// baseline measured in the same run: the control-plane call that made
// the change (its own round trip), and one runtime call. It also gives
// the part of each delay after the change call returned, so that a slow
// round is seen to be the change call's own (a busy disk's commit) or
// the propagation's.
func report(b *testing.B, delays, changes, calls []time.Duration) {
	after := make([]time.Duration, len(delays))
	for i := range delays {
		after[i] = max(delays[i]-changes[i], 0)
	}
	q := func(ds []time.Duration, p float64) float64 {
		ds = append([]time.Duration(nil), ds...) // delays and changes stay paired for the samples file
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		i := int(p*float64(len(ds)-1) + 0.5)
		return float64(ds[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(delays, 0.5), "p50-ms")
	b.ReportMetric(q(delays, 0.99), "p99-ms")
	b.ReportMetric(q(delays, 1), "max-ms")
	b.ReportMetric(q(after, 0.99), "after-change-call-p99-ms")
	b.ReportMetric(q(after, 1), "after-change-call-max-ms")
	b.ReportMetric(q(changes, 0.5), "change-call-p50-ms")
	b.ReportMetric(q(changes, 1), "change-call-max-ms")
	b.ReportMetric(q(calls, 0.5), "runtime-call-p50-ms")
	b.ReportMetric(0, "ns/op") // a round's length is the waits', not a figure
	if dir := os.Getenv("REVOCATION_SAMPLES"); dir != "" {
		var sb strings.Builder
		for i, d := range delays {
			sb.WriteString(d.String() + " " + changes[i].String() + "\n") // delay, and the change call's part of it
		}
		_ = os.WriteFile(filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "-")+".txt"), []byte(sb.String()), 0o644)
	}
}

// BenchmarkRevocationPropagation: each round makes the change through the
// control plane's API and times from just before that call until both
// replicas refuse (the start of a streak of refusals): credential deletes
// a fresh credential (→ 401), subscription deletes the app's subscription
// (→ 403) and puts it back. The rounds between are not timed.
func BenchmarkRevocationPropagation(b *testing.B) {
	w := setup(b)
	b.Run("credential", func(b *testing.B) {
		w.b = b
		var delays, changes, calls []time.Duration
		for b.Loop() {
			c := w.newCredential()
			w.until(c, 200)
			start := time.Now()
			if st := w.status(c); st != 200 {
				b.Fatalf("before the revocation: %d", st)
			}
			calls = append(calls, time.Since(start))
			t0 := time.Now()
			w.must(204, "DELETE", "/api/v1/catalogs/sandbox/consumer-orgs/acme/apps/shop/credentials/"+c.Metadata.ID, nil)
			changes = append(changes, time.Since(t0))
			delays = append(delays, w.until(c, 401).Sub(t0))
		}
		report(b, delays, changes, calls)
	})
	b.Run("subscription", func(b *testing.B) {
		w.b = b
		c := w.newCredential()
		var delays, changes, calls []time.Duration
		for b.Loop() {
			w.until(c, 200)
			start := time.Now()
			if st := w.status(c); st != 200 {
				b.Fatalf("before unsubscribing: %d", st)
			}
			calls = append(calls, time.Since(start))
			t0 := time.Now()
			w.must(204, "DELETE", "/api/v1/subscriptions/shop-key", nil)
			changes = append(changes, time.Since(t0))
			delays = append(delays, w.until(c, 403).Sub(t0))
			w.must(201, "PUT", "/api/v1/subscriptions/shop-key", map[string]any{"spec": map[string]any{"plan": "key", "app": "sandbox/acme/shop"}})
		}
		report(b, delays, changes, calls)
	})
}
