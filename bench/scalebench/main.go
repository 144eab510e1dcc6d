// Command scalebench shows how the control plane's reads grow with the
// data it holds. For each store (SQLite, and PostgreSQL with -postgres)
// and each N of -n it starts a real `sluice serve` built from this
// checkout on a fresh store, bulk-fills it with N configurations and N
// audit events of the bootstrapped instance (straight into the database:
// one transaction on SQLite, COPY then VACUUM on PostgreSQL — the API
// would take hours for a million), refreshes the audit's statistics as
// the control plane does after many writes, and times one client's requests over
// HTTP: a configuration list, a single get, and the audit at limit=100
// unfiltered, by actor, action, object and time, and a later page, in
// rounds of one request each, with GET /healthz as the machine's floor. It
// prints p50 and p99 per request as markdown tables, and with -svg draws
// p50 against N.
//
// Usage (see bench/README.md):
//
//	go run ./bench/scalebench [-n 1000,10000,100000] [-postgres URL] [-svg scale.svg]
//	go run ./bench/scalebench -n 1000000 -objects=false -postgres URL   # the audit at a million events
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/bench/benchutil"
	"github.com/sluice-dev/sluice/internal/store"
)

// The shape of the generated audit: token exchanges dominate real audits,
// spread over actors; objects are API keys and configurations.
const (
	actors  = 100
	actions = 20
	limit   = 100
)

type options struct {
	sizes    []int
	postgres string
	sqlite   bool
	requests int
	objects  bool
	svg      string
	out      string
}

// measure is one timed request kind.
type measure struct {
	name string
	path string
}

// row is one (store, N)'s figures: p50 and p99 per measure name.
type row struct {
	store    string
	n        int
	fill     time.Duration
	p50, p99 map[string]time.Duration
}

func main() {
	var o options
	var sizes string
	flag.StringVar(&sizes, "n", "1000,10000,100000", "comma-separated sizes: objects and audit events each store is filled with")
	flag.StringVar(&o.postgres, "postgres", "", "PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable): also measure on a fresh database there")
	flag.IntVar(&o.requests, "requests", 300, "timed requests per measure (after 20 untimed)")
	flag.BoolVar(&o.sqlite, "sqlite", true, "measure on SQLite (false: on PostgreSQL alone)")
	flag.BoolVar(&o.objects, "objects", true, "also fill and time configurations (off: the audit alone)")
	flag.StringVar(&o.svg, "svg", "", "also draw p50 against N to this SVG file")
	flag.StringVar(&o.out, "o", "", "also write the report to this file")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 10 {
			fatal(fmt.Errorf("-n %q: give sizes of at least 10, such as 1000,10000", s))
		}
		o.sizes = append(o.sizes, n)
	}
	if err := run(o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "scalebench:", err)
	os.Exit(1)
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, "scalebench: "+format+"\n", args...) }

func run(o options) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "scalebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf("building sluice")
	sluice := filepath.Join(tmp, "sluice")
	if out, err := exec.Command("go", "build", "-o", sluice, "github.com/sluice-dev/sluice/cmd/sluice").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	var stores []string
	if o.sqlite {
		stores = append(stores, "SQLite")
	}
	if o.postgres != "" {
		stores = append(stores, "PostgreSQL")
	}
	load := loadAvg()
	var rows []row
	for _, st := range stores {
		for _, n := range o.sizes {
			r, err := one(ctx, o, tmp, sluice, st, n)
			if err != nil {
				return fmt.Errorf("%s, N=%d: %w", st, n, err)
			}
			rows = append(rows, r)
		}
	}
	var rep strings.Builder
	report(&rep, o, rows, load)
	fmt.Print(rep.String())
	if o.svg != "" {
		if err := os.WriteFile(o.svg, []byte(plot(rows, o)), 0o644); err != nil {
			return err
		}
		logf("wrote %s", o.svg)
	}
	if o.out != "" {
		return os.WriteFile(o.out, []byte(rep.String()), 0o644)
	}
	return nil
}

// one fills a fresh store with n objects and events and times the reads.
func one(ctx context.Context, o options, tmp, sluice, storeName string, n int) (row, error) {
	r := row{store: storeName, n: n, p50: map[string]time.Duration{}, p99: map[string]time.Duration{}}
	dataDir := filepath.Join(tmp, fmt.Sprintf("%s-%d", storeName, n))
	dsn := ""
	if storeName == "PostgreSQL" {
		fresh, drop, err := benchutil.FreshDatabase(ctx, o.postgres, "scalebench", logf)
		if err != nil {
			return r, err
		}
		defer drop()
		dsn = fresh
	}
	addr := benchutil.FreeAddr()
	args := []string{"serve", "--listen", addr, "--data-dir", dataDir, "--log-level", "warn", "--runtime-backend", "none",
		// The generated events are dated back from now: retention would
		// start deleting them.
		"--audit-retention", "0",
		"--rate-limit-client", "off", "--rate-limit-instance", "off", "--rate-limit-source", "off"}
	if dsn != "" {
		args = append(args, "--store", dsn)
	}
	srv := exec.Command(sluice, args...)
	logFile, err := os.Create(dataDir + ".log")
	if err != nil {
		return r, err
	}
	defer logFile.Close()
	srv.Stdout, srv.Stderr = logFile, logFile
	if err := srv.Start(); err != nil {
		return r, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	base := "http://" + addr
	if err := waitReady(base, 3*time.Minute); err != nil {
		return r, fmt.Errorf("%w (log: %s.log)", err, dataDir)
	}
	token, clientID := benchutil.Login(base, filepath.Join(dataDir, "initial-credentials.json"))
	var creds struct{ InstanceID string }
	b, err := os.ReadFile(filepath.Join(dataDir, "initial-credentials.json"))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &creds); err != nil {
		return r, err
	}

	logf("%s, N=%d: filling", storeName, n)
	t0 := time.Now()
	now := time.Now()
	if err := fill(ctx, dsn, dataDir, creds.InstanceID, n, o.objects, now); err != nil {
		return r, err
	}
	r.fill = time.Since(t0)
	logf("%s, N=%d: filled in %v", storeName, n, r.fill.Round(time.Millisecond))

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}, Timeout: 60 * time.Second}
	get := func(path string) (time.Duration, []byte, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-IBM-Client-Id", clientID)
		t := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("GET %s: %s %s", path, resp.Status, body)
		}
		return d, body, err
	}
	// A later page of the actor filter: the continue token after the
	// first page.
	var first struct{ Metadata struct{ Continue string } }
	_, body, err := get("/api/v1/audit?limit=100&actor=" + url.QueryEscape(actorName(7)))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &first); err != nil {
		return r, err
	}
	mid := now.Add(-time.Duration(n/2) * time.Second)
	ms := []measure{
		{"audit", "/api/v1/audit?limit=100"},
		{"audit actor", "/api/v1/audit?limit=100&actor=" + url.QueryEscape(actorName(7))},
		{"audit action", "/api/v1/audit?limit=100&action=" + actionName(3)},
		{"audit object", "/api/v1/audit?limit=100&object=" + url.QueryEscape(objectName(42))},
		{"audit time", "/api/v1/audit?limit=100&since=" + mid.Add(-time.Hour).UTC().Format(time.RFC3339) + "&until=" + mid.UTC().Format(time.RFC3339)},
	}
	if first.Metadata.Continue != "" {
		ms = append(ms, measure{"audit actor page 2", "/api/v1/audit?limit=100&actor=" + url.QueryEscape(actorName(7)) + "&continue=" + url.QueryEscape(first.Metadata.Continue)})
	}
	if o.objects {
		ms = append(ms,
			measure{"get", "/api/v1/configurations/" + configName(n/2)},
			measure{"list 100", "/api/v1/configurations?limit=100"},
			measure{"list all", "/api/v1/configurations"})
	}
	// Rounds of one request of each measure, so that a burst of other
	// load on the machine falls on all of them alike rather than on
	// whichever ran then; /healthz (no store, no auth) is the floor.
	ms = append(ms, measure{"healthz", "/healthz"})
	reqs := make([]int, len(ms))
	lat := make([][]time.Duration, len(ms))
	rounds := 0
	for i, m := range ms {
		reqs[i] = o.requests
		if m.name == "list all" {
			// A whole list grows with N; a few are enough to see it.
			reqs[i] = max(10, min(o.requests, 2_000_000/n))
		}
		rounds = max(rounds, 20+reqs[i])
	}
	for round := range rounds {
		for i, m := range ms {
			if round >= 20+reqs[i] {
				continue
			}
			d, body, err := get(m.path)
			if err != nil {
				return r, err
			}
			if round == 0 && m.name == "list 100" && !strings.Contains(string(body), `"continue"`) {
				logf("%s, N=%d: the configuration list does not page (no continue token): \"list 100\" is the whole list", storeName, n)
			}
			if round >= 20 {
				lat[i] = append(lat[i], d)
			}
		}
	}
	for i, m := range ms {
		l := lat[i]
		slices.Sort(l)
		r.p50[m.name] = l[len(l)/2]
		r.p99[m.name] = l[min(len(l)-1, len(l)*99/100)]
		logf("%s, N=%d: %-20s p50 %8.2f ms  p99 %8.2f ms  (%d requests)", storeName, n, m.name, msOf(r.p50[m.name]), msOf(r.p99[m.name]), len(l))
	}
	return r, nil
}

func actorName(i int) string  { return fmt.Sprintf("user:user%03d", i%actors) }
func actionName(i int) string { return fmt.Sprintf("action%02d.run", i%actions) }
func objectName(i int) string { return fmt.Sprintf("apiKey/key%06d", i) }
func configName(i int) string { return fmt.Sprintf("cfg%07d", i) }

// event i of n: one a second back from now, newest last.
func event(instanceID string, i, n int, now time.Time) store.AuditEvent {
	return store.AuditEvent{
		ID: fmt.Sprintf("%016xbench%07d", i, i), At: now.Add(-time.Duration(n-i) * time.Second), InstanceID: instanceID,
		Actor: actorName(i), Action: actionName(i / 3), Object: objectName(i % max(1, n/10)),
		Outcome: "success", Source: "127.0.0.1", RequestID: fmt.Sprintf("req%07d", i),
	}
}

// fill writes n audit events (and n configurations when objects) straight
// into the store the server runs on, then refreshes the audit's planner
// statistics through the store, as the control plane does after many
// audit writes.
func fill(ctx context.Context, dsn, dataDir, instanceID string, n int, objects bool, now time.Time) error {
	if dsn != "" {
		if err := copyPostgres(ctx, dsn, instanceID, n, objects, now); err != nil {
			return err
		}
	} else if err := insertSQLite(ctx, filepath.Join(dataDir, store.DefaultSQLiteFile), instanceID, n, objects, now); err != nil {
		return err
	}
	st, err := store.Open(ctx, dsn, dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.AnalyzeAudit(ctx)
}

func copyPostgres(ctx context.Context, dsn, instanceID string, n int, objects bool, now time.Time) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	i := 0
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"audit_events"},
		[]string{"id", "at", "instance_id", "actor", "action", "object", "outcome", "source", "request_id", "detail"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			e := event(instanceID, i, n, now)
			i++
			return []any{e.ID, e.At.UnixMilli(), e.InstanceID, e.Actor, e.Action, e.Object, e.Outcome, e.Source, e.RequestID, ""}, nil
		}))
	if err != nil {
		return err
	}
	if !objects {
		return vacuum(ctx, conn, false)
	}
	j := 0
	at := now.UnixMilli()
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"configurations"},
		[]string{"instance_id", "name", "type", "description", "sealed_data", "size", "created_at", "created_by", "updated_at", "updated_by"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if j == n {
				return nil, nil
			}
			j++
			return []any{instanceID, configName(j - 1), "generic", "scalebench", []byte("not read by this benchmark"), int64(26), at, "user:admin", at, "user:admin"}, nil
		}))
	if err != nil {
		return err
	}
	return vacuum(ctx, conn, objects)
}

// vacuum does what autovacuum does soon after a bulk load (visibility map,
// hint bits), so the timings are of the steady state and not of the
// first reads racing autovacuum; the statistics are the control plane's
// ANALYZE (see fill).
func vacuum(ctx context.Context, conn *pgx.Conn, objects bool) error {
	tables := []string{"audit_events"}
	if objects {
		tables = append(tables, "configurations")
	}
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "VACUUM "+t); err != nil {
			return err
		}
	}
	return nil
}

func insertSQLite(ctx context.Context, path, instanceID string, n int, objects bool, now time.Time) error {
	// A large page cache: a million random inserts into five indexes
	// otherwise spend most of their time re-reading pages.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=cache_size(-262144)&_txlock=immediate")
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO audit_events (id, at, instance_id, actor, action, object, outcome, source, request_id, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '')`)
	if err != nil {
		return err
	}
	for i := range n {
		e := event(instanceID, i, n, now)
		if _, err := ins.ExecContext(ctx, e.ID, e.At.UnixMilli(), e.InstanceID, e.Actor, e.Action, e.Object, e.Outcome, e.Source, e.RequestID); err != nil {
			return err
		}
	}
	if objects {
		cfg, err := tx.PrepareContext(ctx, `INSERT INTO configurations (instance_id, name, type, description, sealed_data, size, created_at, created_by, updated_at, updated_by)
			VALUES (?, ?, 'generic', 'scalebench', ?, 26, ?, 'user:admin', ?, 'user:admin')`)
		if err != nil {
			return err
		}
		at := now.UnixMilli()
		for i := range n {
			if _, err := cfg.ExecContext(ctx, instanceID, configName(i), []byte("not read by this benchmark"), at, at); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

func waitReady(base string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("sluice serve did not become ready")
}

// report writes one table per store: a row per N, p50 / p99 per measure.
func report(w io.Writer, o options, rows []row, loadBefore string) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n## Scaling benchmark — %s\n\nhost %s, %s, %d CPUs; one client, keep-alive, %d timed requests per measure; load average before: %s, after: %s\n",
		time.Now().UTC().Format("2006-01-02 15:04Z"), host, runtime.Version(), runtime.NumCPU(), o.requests, loadBefore, loadAvg())
	names := []string{"audit", "audit actor", "audit action", "audit object", "audit time", "audit actor page 2", "healthz"}
	if o.objects {
		names = append([]string{"list all", "list 100", "get"}, names...)
	}
	for _, st := range []string{"SQLite", "PostgreSQL"} {
		var these []row
		for _, r := range rows {
			if r.store == st {
				these = append(these, r)
			}
		}
		if len(these) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s — p50 / p99 in ms (audit at limit=%d)\n\n| N | fill |", st, limit)
		for _, n := range names {
			fmt.Fprintf(w, " %s |", n)
		}
		fmt.Fprint(w, "\n|---|---|", strings.Repeat("---|", len(names)), "\n")
		for _, r := range these {
			fmt.Fprintf(w, "| %d | %.1f s |", r.n, r.fill.Seconds())
			for _, n := range names {
				if p, ok := r.p50[n]; ok {
					fmt.Fprintf(w, " %.2f / %.2f |", msOf(p), msOf(r.p99[n]))
				} else {
					fmt.Fprint(w, " – |")
				}
			}
			fmt.Fprintln(w)
		}
	}
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
