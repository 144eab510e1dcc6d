package cli_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// Canary secrets: configuration data no listing or showing may print.
const (
	canaryFile  = "canary-from-file-7f3a9c"
	canaryStdin = "canary-from-stdin-51be02"
)

// buildExample builds examples/NAME (with extra files, path → content,
// added to a copy) into a BAR with `sluice bar build` and returns its path.
func buildExample(t *testing.T, cli *sluiceCLI, name string, extra map[string][]byte) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", name)
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	for rel, b := range extra {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), name+".bar")
	cli.ok("bar", "build", dir, "-o", out)
	return out
}

// noCanary fails the test when out holds configuration data.
func noCanary(t *testing.T, what, out string) {
	t.Helper()
	for _, c := range []string{canaryFile, canaryStdin} {
		if strings.Contains(out, c) {
			t.Errorf("%s printed configuration data:\n%s", what, out)
		}
	}
}

type configurationOut struct {
	Metadata struct{ Name, CreatedBy string }
	Spec     map[string]any
	Status   struct{ Size int64 }
}

type barOut struct {
	Name, URL, SHA256 string
	Size              int64
	Endpoints         []struct{ Method, Path string }
}

type runtimeOut struct {
	Metadata struct {
		Name       string
		Generation int64
	}
	Spec struct {
		BarURL         []string `json:"barURL"`
		Configurations []string
		Replicas       *int
	}
	Status struct {
		Phase              string
		ObservedGeneration int64
		AvailableReplicas  int
		Endpoints          []struct{ URI string }
	}
}

func TestArtifactVerbsAgainstServer(t *testing.T) {
	// No runtime backend: the runtimes are only stored, which is all the
	// verbs here need.
	srv := servertest.Start(t, servertest.Options{Env: []string{"SLUICE_RUNTIME_BACKEND=none"}})
	cli := newCLI(t)
	cli.ok("login", "--from-file", filepath.Join(srv.DataDir, "initial-credentials.json"))
	tmp := t.TempDir()

	t.Run("configurations", func(t *testing.T) {
		file := filepath.Join(tmp, "setdbparms.txt")
		if err := os.WriteFile(file, []byte("orders-db app "+canaryFile+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var created configurationOut
		cli.okJSON(&created, "configurations", "create", "db", "--type", "setdbparms", "--description", "orders DB", "--file", file)
		if created.Metadata.Name != "db" || created.Spec["type"] != "setdbparms" || created.Status.Size != int64(len("orders-db app "+canaryFile+"\n")) {
			t.Errorf("create printed %+v", created)
		}
		r := cli.run("billing-db u "+canaryStdin+"\n", nil, "configurations", "create", "db2", "--type", "setdbparms", "-o", "yaml")
		if r.code != 0 {
			t.Fatalf("create from stdin: %+v", r)
		}
		noCanary(t, "create", r.stdout)

		cli.failsWith(1, "(409 Conflict)", "x y z\n", nil, "configurations", "create", "db", "--type", "setdbparms")
		cli.failsWith(1, "setdbparms data: line 1", "no-password-here\n", nil, "configurations", "create", "bad", "--type", "setdbparms")
		cli.failsWith(2, "--type is required", "", nil, "configurations", "create", "notype", "--file", file)
		cli.failsWith(2, "does not exist yet: give its --type", "", nil, "configurations", "apply", "fresh", "--file", file)

		for _, format := range []string{"table", "json", "yaml"} {
			out := cli.ok("configurations", "list", "-o", format)
			noCanary(t, "list -o "+format, out)
			if !strings.Contains(out, "db2") || !strings.Contains(out, "setdbparms") {
				t.Errorf("list -o %s:\n%s", format, out)
			}
			noCanary(t, "get -o "+format, cli.ok("configurations", "get", "db", "-o", format))
		}
		var list struct{ Configurations []map[string]map[string]any }
		cli.okJSON(&list, "configurations", "list")
		if len(list.Configurations) != 2 {
			t.Fatalf("list: %+v", list)
		}
		for _, c := range list.Configurations {
			if _, ok := c["spec"]["data"]; ok {
				t.Errorf("list shows spec.data: %v", c)
			}
		}

		// apply without --type keeps the type and description; the new
		// data changes the size.
		if err := os.WriteFile(file, []byte("orders-db app "+canaryFile+"-rotated\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var applied configurationOut
		cli.okJSON(&applied, "configurations", "apply", "db", "--file", file)
		if applied.Spec["type"] != "setdbparms" || applied.Spec["description"] != "orders DB" || applied.Status.Size != created.Status.Size+len64("-rotated") {
			t.Errorf("apply printed %+v", applied)
		}
		cli.okJSON(&applied, "configurations", "apply", "db", "--keep-data", "--description", "orders database")
		if applied.Status.Size != created.Status.Size+len64("-rotated") || applied.Spec["description"] != "orders database" {
			t.Errorf("apply --keep-data printed %+v", applied)
		}
		if out := cli.ok("configurations", "types"); !strings.Contains(out, "barauth") || !strings.Contains(out, "setdbparms") {
			t.Errorf("types:\n%s", out)
		}
	})

	var hello barOut
	helloBAR := buildExample(t, cli, "hello", nil)
	t.Run("bar files", func(t *testing.T) {
		cli.okJSON(&hello, "bar", "push", helloBAR)
		if hello.Name != "hello" || !strings.HasPrefix(hello.URL, srv.URL+"/api/v1/bar-files/hello") || len(hello.Endpoints) != 1 {
			t.Fatalf("push printed %+v", hello)
		}
		want, err := os.ReadFile(helloBAR)
		if err != nil {
			t.Fatal(err)
		}
		pulled := filepath.Join(tmp, "pulled.bar")
		cli.ok("bar", "pull", "hello", "-o", pulled)
		if got, _ := os.ReadFile(pulled); !bytes.Equal(got, want) {
			t.Errorf("pulled %d bytes differing from the %d pushed", len(got), len(want))
		}
		if out := cli.ok("bar", "pull", "hello", "-o", "-"); out != string(want) {
			t.Errorf("pull -o - wrote %d bytes, want the %d pushed", len(out), len(want))
		}

		// A large BAR: a progress bar with --progress, identical bytes back.
		blob := make([]byte, 3<<20)
		rand.Read(blob)
		big := buildExample(t, cli, "hello", map[string][]byte{"data/blob.bin": blob})
		r := cli.run("", nil, "bar", "push", big, "--name", "big", "--progress", "-o", "json")
		var pushed barOut
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &pushed) != nil || pushed.Name != "big" {
			t.Fatalf("push --progress: %+v", r)
		}
		if !strings.Contains(r.stderr, "push big [") || !strings.Contains(r.stderr, "100%") || !strings.Contains(r.stderr, "MiB") {
			t.Errorf("push --progress showed no progress bar:\n%s", r.stderr)
		}
		r = cli.run("", nil, "bar", "pull", "big", "-o", filepath.Join(tmp, "big.bar"), "--progress")
		if r.code != 0 || !strings.Contains(r.stderr, "pull big [") || !strings.Contains(r.stderr, "100%") {
			t.Errorf("pull --progress: %+v", r)
		}
		wantBig, _ := os.ReadFile(big)
		if got, _ := os.ReadFile(filepath.Join(tmp, "big.bar")); !bytes.Equal(got, wantBig) {
			t.Errorf("pulled %d bytes differing from the %d pushed", len(got), len(wantBig))
		}
		// Without a terminal and without --progress, no bar.
		if r := cli.run("", nil, "bar", "push", big, "--name", "big"); r.code != 0 || r.stderr != "" {
			t.Errorf("push without --progress: %+v", r)
		}

		junk := filepath.Join(tmp, "junk.bar")
		if err := os.WriteFile(junk, []byte("this is not a zip archive"), 0o644); err != nil {
			t.Fatal(err)
		}
		cli.failsWith(1, "the BAR file is not valid", "", nil, "bar", "push", junk)
		cli.failsWith(1, "(404 NotFound)", "", nil, "bar", "pull", "nosuch", "-o", filepath.Join(tmp, "nosuch.bar"))
		if _, err := os.Stat(filepath.Join(tmp, "nosuch.bar")); err == nil {
			t.Error("a failed pull left a file")
		}

		var list struct {
			BarFiles []barOut `json:"barFiles"`
		}
		cli.okJSON(&list, "bar", "list")
		if len(list.BarFiles) != 2 {
			t.Errorf("bar list: %+v", list)
		}
		if out := cli.ok("bar", "get", "hello"); !strings.Contains(out, hello.SHA256) || !strings.Contains(out, "GET /hello/{name}") {
			t.Errorf("bar get:\n%s", out)
		}
		cli.ok("bar", "delete", "big")
	})

	t.Run("runtimes", func(t *testing.T) {
		spec := filepath.Join(tmp, "hello-rt.yaml")
		writeFile(t, spec, "metadata:\n  name: hello-rt\nspec:\n  barURL:\n    - "+hello.URL+"\n  configurations: [db]\n  replicas: 2\n")
		var rt runtimeOut
		cli.okJSON(&rt, "runtimes", "apply", "-f", spec)
		if rt.Metadata.Name != "hello-rt" || len(rt.Spec.BarURL) != 1 || rt.Spec.BarURL[0] != hello.URL ||
			len(rt.Spec.Configurations) != 1 || rt.Spec.Replicas == nil || *rt.Spec.Replicas != 2 || rt.Metadata.Generation != 1 {
			t.Fatalf("apply -f printed %+v", rt)
		}

		// get -o yaml applies back unchanged (status and metadata ignored).
		got := filepath.Join(tmp, "got.yaml")
		writeFile(t, got, cli.ok("runtimes", "get", "hello-rt", "-o", "yaml"))
		cli.okJSON(&rt, "runtimes", "apply", "-f", got)
		if rt.Metadata.Generation != 1 {
			t.Errorf("applying an unchanged runtime moved it to generation %d", rt.Metadata.Generation)
		}
		// JSON files too, and the flag form naming a BAR file by name.
		var js bytes.Buffer
		js.WriteString(`{"metadata":{"name":"hello-rt"},"spec":{"barURL":["` + hello.URL + `"],"configurations":["db","db2"]}}`)
		writeFile(t, filepath.Join(tmp, "rt.json"), js.String())
		cli.okJSON(&rt, "runtimes", "apply", "-f", filepath.Join(tmp, "rt.json"))
		if rt.Metadata.Generation != 2 || len(rt.Spec.Configurations) != 2 {
			t.Errorf("apply -f rt.json printed %+v", rt)
		}
		cli.okJSON(&rt, "runtimes", "create", "second", "--bar", "hello", "--replicas", "0")
		if len(rt.Spec.BarURL) != 1 || rt.Spec.BarURL[0] != hello.URL {
			t.Errorf("create --bar hello printed %+v", rt)
		}
		cli.failsWith(1, "(409 Conflict)", "", nil, "runtimes", "create", "second", "--bar", "hello")
		cli.failsWith(1, "no BAR file is named nosuch", "", nil, "runtimes", "create", "third", "--bar", "nosuch")

		writeFile(t, filepath.Join(tmp, "typo.yaml"), "metadata: {name: typo}\nspec:\n  barURL: ["+hello.URL+"]\n  replica: 1\n")
		cli.failsWith(1, `unknown field "replica"`, "", nil, "runtimes", "apply", "-f", filepath.Join(tmp, "typo.yaml"))
		writeFile(t, filepath.Join(tmp, "neg.yaml"), "metadata: {name: neg}\nspec:\n  barURL: ["+hello.URL+"]\n  replicas: -1\n")
		cli.failsWith(1, "(400 BadRequest)", "", nil, "runtimes", "apply", "-f", filepath.Join(tmp, "neg.yaml"))
		cli.failsWith(2, "give -f FILE, or NAME with --bar", "", nil, "runtimes", "create")

		var list struct{ IntegrationRuntimes []runtimeOut }
		cli.okJSON(&list, "runtimes", "list")
		if len(list.IntegrationRuntimes) != 2 {
			t.Errorf("runtimes list: %+v", list)
		}
		if out := cli.ok("runtimes", "list"); !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "hello-rt") {
			t.Errorf("runtimes list:\n%s", out)
		}

		// What runtimes use cannot be deleted without --force.
		cli.failsWith(1, "configuration db is used by integration runtime(s) hello-rt", "", nil, "configurations", "delete", "db")
		cli.failsWith(1, "(409 Conflict)", "", nil, "configurations", "delete", "db")
		cli.failsWith(1, "BAR file hello is used by integration runtime(s) hello-rt, second", "", nil, "bar", "delete", "hello")
		// The CLI names its own flag, not the API's query parameter.
		for _, args := range [][]string{{"configurations", "delete", "db"}, {"bar", "delete", "hello"}} {
			r := cli.run("", nil, args...)
			if !strings.Contains(r.stderr, "or delete with --force") || strings.Contains(r.stderr, "?force") {
				t.Errorf("sluice %s: %q; want it to name --force", strings.Join(args, " "), r.stderr)
			}
		}
		cli.ok("configurations", "delete", "db2", "--force")

		cli.ok("runtimes", "delete", "second")
		cli.ok("runtimes", "delete", "hello-rt")
		cli.failsWith(1, "(404 NotFound)", "", nil, "runtimes", "get", "hello-rt")
		cli.ok("configurations", "delete", "db")
		var del map[string]string
		cli.okJSON(&del, "bar", "delete", "hello")
		if del["deleted"] != "hello" {
			t.Errorf("bar delete printed %v", del)
		}
		cli.failsWith(1, "(404 NotFound)", "", nil, "bar", "get", "hello")
	})

	t.Run("no backend", func(t *testing.T) {
		cli.failsWith(1, "runs no integration runtime backend (503", "", nil, "traces", "list")
		cli.failsWith(2, "--runtime is required", "", nil, "traces", "start", "t1")
	})
}

// TestRuntimeWaitAgainstServer runs a real runtime with the local backend:
// create --wait comes back Ready, its endpoint answers, watch, logs and a
// trace work.
func TestRuntimeWaitAgainstServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Env: []string{"SLUICE_RUNTIME_BACKEND=local"}})
	cli := newCLI(t)
	cli.ok("login", "--from-file", filepath.Join(srv.DataDir, "initial-credentials.json"))
	if r := cli.run("", nil, "traces", "list"); strings.Contains(r.stderr, "runs no integration runtime backend") {
		t.Skip("this control plane runs no runtime backend yet")
	}
	// Runtime processes outlive the control plane by design: should the
	// test fail half-way, stop them (replicas 0, waited for) before the
	// control plane goes.
	t.Cleanup(func() {
		if r := cli.run("", nil, "runtimes", "get", "hello"); r.code == 0 {
			cli.run("", nil, "runtimes", "apply", "hello", "--bar", "hello", "--replicas", "0", "--wait", "--timeout", "1m")
			cli.run("", nil, "runtimes", "delete", "hello")
		}
	})
	cli.ok("bar", "push", buildExample(t, cli, "hello", nil))

	r := cli.run("", nil, "runtimes", "create", "hello", "--bar", "hello", "--wait", "--timeout", "2m", "-o", "json")
	var rt runtimeOut
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rt) != nil {
		t.Fatalf("create --wait: %+v", r)
	}
	if rt.Status.Phase != "Ready" || rt.Status.ObservedGeneration != rt.Metadata.Generation || len(rt.Status.Endpoints) == 0 {
		t.Fatalf("create --wait printed %+v", rt)
	}
	if !strings.Contains(r.stderr, "integration runtime hello is Ready") {
		t.Errorf("create --wait showed no progress:\n%s", r.stderr)
	}
	uri := strings.Replace(rt.Status.Endpoints[0].URI, "{name}", "cli", 1)
	resp, err := http.Get(uri)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Hello, cli!") {
		t.Errorf("GET %s: %d %s", uri, resp.StatusCode, body)
	}

	// watch prints the runtime as it is first; read one event and stop.
	watch := exec.Command(servertest.Binary(t), "runtimes", "watch", "hello", "-o", "json")
	watch.Env = cli.env
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := readLine(stdout)
	watch.Process.Kill()
	watch.Wait()
	var ev struct {
		Type   string
		Object runtimeOut
	}
	if err != nil || json.Unmarshal([]byte(line), &ev) != nil || ev.Type != "update" || ev.Object.Status.Phase != "Ready" {
		t.Errorf("watch printed %q (%v)", line, err)
	}

	if r := cli.run("", nil, "runtimes", "logs", "hello", "--tail", "20"); r.code != 0 || !strings.Contains(r.stdout, "runtime ready") {
		t.Errorf("logs: %+v", r)
	}
	// --follow prints the tail as plain lines, then keeps the stream open.
	follow := exec.Command(servertest.Binary(t), "runtimes", "logs", "hello", "--tail", "1", "--follow")
	follow.Env = cli.env
	fout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	line, err = readLine(fout)
	follow.Process.Kill()
	follow.Wait()
	if err != nil || strings.TrimSpace(line) == "" || strings.HasPrefix(line, "data:") {
		t.Errorf("logs --follow printed %q (%v)", line, err)
	}

	var tr struct {
		Metadata struct{ Name string }
		Spec     struct{ IntegrationRuntimeName, Type string }
	}
	cli.okJSON(&tr, "traces", "start", "t1", "--runtime", "hello")
	if tr.Metadata.Name != "t1" || tr.Spec.IntegrationRuntimeName != "hello" || tr.Spec.Type != "user" {
		t.Errorf("traces start printed %+v", tr)
	}
	if resp, err := http.Get(uri); err == nil {
		resp.Body.Close()
	}
	var traces struct{ Traces []json.RawMessage }
	cli.okJSON(&traces, "traces", "list", "--runtime", "hello")
	if len(traces.Traces) != 1 {
		t.Errorf("traces list: %+v", traces)
	}
	zipPath := filepath.Join(t.TempDir(), "t1.zip")
	cli.ok("traces", "download", "t1", "-o", zipPath)
	if b, err := os.ReadFile(zipPath); err != nil || !bytes.HasPrefix(b, []byte("PK")) {
		t.Errorf("the downloaded trace is not a zip (%v)", err)
	}
	cli.ok("traces", "stop", "t1")
	cli.failsWith(1, "(404 NotFound)", "", nil, "traces", "get", "t1")

	// replicas 0 with --wait comes back Stopped.
	r = cli.run("", nil, "runtimes", "apply", "hello", "--bar", "hello", "--replicas", "0", "--wait", "--timeout", "2m", "-o", "json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rt) != nil || rt.Status.Phase != "Stopped" {
		t.Errorf("apply --replicas 0 --wait: %+v", r)
	}
	cli.ok("runtimes", "delete", "hello")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func len64(s string) int64 { return int64(len(s)) }

// readLine reads one line from r, byte by byte so nothing after it is
// consumed.
func readLine(r io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := r.Read(one); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[0])
	}
}
