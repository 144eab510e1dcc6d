package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// The README's shell walkthrough, run as a newcomer pastes it. Convention:
//
//   - every block fenced as ```sh is run, in the order of the README, all
//     in one bash shell (so variables set by one block reach the next),
//     with `set -euo pipefail`, in a fresh copy of the repository (its
//     files without .git, the data dir and build outputs), against the
//     binary the Quickstart's `go build` makes there;
//   - a block fenced as ```sh not-run is shown and not run: the opening
//     block (`go run … serve` in the foreground, and this test suite
//     itself), a runtime serving in the foreground, PostgreSQL examples;
//   - any other shell-like fence (bash, shell, console, or sh with other
//     words) fails the test, so a new block is either run or marked.
//
// The only change made to the text is the control plane's address:
// 127.0.0.1:8080 becomes a free port (and SLUICE_LISTEN is set to it for
// `./sluice serve`), so the test runs beside anything else. The test fails when a command of the README fails, or when the
// flow's answer or the CLI's wait is not what the README says.
func TestReadmeWalkthroughRunsAsWritten(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed to run the README: %v", tool, err)
			}
			t.Skipf("running the README needs %s: %v", tool, err)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, skipped, err := readmeShellBlocks(readme)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 5 || skipped < 1 {
		t.Fatalf("found %d runnable and %d not-run sh blocks in README.md; the walkthrough has more", len(blocks), skipped)
	}

	work := filepath.Join(t.TempDir(), "sluice")
	if err := copyRepo(root, work); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(work, "sluice-data")
	t.Cleanup(func() { servertest.KillProcessesUnder(dataDir) })
	addr := servertest.FreeAddr(t)
	script := "set -euo pipefail\n" + strings.ReplaceAll(strings.Join(blocks, "\n"), "127.0.0.1:8080", addr)

	// Each command is echoed (set -x) so a failure shows where it stopped.
	script = "PS4='+ README: '\nset -x\n" + script
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = work
	// `./sluice serve` listens where SLUICE_LISTEN says, as every serve
	// flag has its variable; the README's own commands name the address.
	cmd.Env = append(newcomerEnv(t, filepath.Join(t.TempDir(), "home")), "SLUICE_LISTEN="+addr)
	// Its own process group: the control plane the README starts with &
	// goes with the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A file, not a pipe: the control plane started with & holds its
	// standard output, and waiting for a pipe would wait for it.
	outFile, err := os.Create(filepath.Join(t.TempDir(), "readme.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	cmd.Stdout, cmd.Stderr = outFile, outFile
	err = cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	outBytes, _ := os.ReadFile(outFile.Name())
	out := bytes.NewBuffer(outBytes)
	t.Logf("README's shell blocks:\n%s", out.String())
	if err != nil {
		t.Fatalf("the README's walkthrough failed (%v) in the block after the last ': README.md:N' line above: "+
			"make it run as written, or fence it as ```sh not-run if it is only shown", err)
	}
	for _, want := range []string{
		`{"status":"ready","store":"sqlite"}`,  // Quickstart
		`"role":"admin"`,                       // whoami with the token
		`"greeting":"Hello, world!"`,           // the flow's endpoint
		"hello: Ready, 2/2 replicas available", // the CLI's --wait
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the walkthrough's output lacks %s", want)
		}
	}
}

// readmeShellBlocks returns the text of the ```sh blocks of a Markdown
// document in order, and how many ```sh not-run blocks it skipped.
func readmeShellBlocks(md []byte) (blocks []string, skipped int, err error) {
	sc := bufio.NewScanner(bytes.NewReader(md))
	var cur *strings.Builder
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if cur != nil {
			if strings.HasPrefix(text, "```") {
				blocks = append(blocks, cur.String())
				cur = nil
				continue
			}
			cur.WriteString(text + "\n")
			continue
		}
		info, fence := strings.CutPrefix(text, "```")
		if !fence {
			continue
		}
		switch fields := strings.Fields(info); {
		case len(fields) == 1 && fields[0] == "sh":
			// A no-op naming the block's line, shown by set -x, so a
			// failure points at the README line to fix.
			cur = &strings.Builder{}
			fmt.Fprintf(cur, ": README.md:%d\n", line+1)
		case len(fields) == 2 && fields[0] == "sh" && fields[1] == "not-run":
			skipped++
			for sc.Scan() && !strings.HasPrefix(sc.Text(), "```") {
				line++
			}
			line++
		case len(fields) > 0 && (fields[0] == "sh" || fields[0] == "bash" || fields[0] == "shell" || fields[0] == "console" || fields[0] == "zsh"):
			return nil, 0, fmt.Errorf("README.md:%d: fence %q: use ```sh (run by this test) or ```sh not-run", line, text)
		default:
			// Another language (or none): skip the block.
			for sc.Scan() && !strings.HasPrefix(sc.Text(), "```") {
				line++
			}
			line++
		}
	}
	if cur != nil {
		return nil, 0, fmt.Errorf("README.md: an sh block is not closed")
	}
	return blocks, skipped, sc.Err()
}

// copyRepo copies the repository's files to dst as a clone would have
// them: no .git, no data dir, no build outputs.
func copyRepo(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		name := d.Name()
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(name, ".") && name != ".ci" || name == "sluice-data" || rel == filepath.Join("bench", "results")) {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if rel == "sluice" || strings.HasSuffix(name, ".bar") || strings.HasSuffix(name, ".test") || !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		info, err := in.Stat()
		if err != nil {
			return err
		}
		out, err := os.OpenFile(filepath.Join(dst, rel), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// newcomerEnv is a clean environment: a home of its own (for the CLI's
// login), none of the caller's SLUICE_* variables, and the Go caches the
// test already has so `go build` does not download the modules again.
func newcomerEnv(t *testing.T, home string) []string {
	t.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SLUICE_") || k == "HOME" || k == "XDG_CONFIG_HOME" || k == "GOCACHE" || k == "GOMODCACHE" || k == "GOPATH" {
			continue
		}
		env = append(env, kv)
	}
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		v, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", k, err)
		}
		env = append(env, k+"="+strings.TrimSpace(string(v)))
	}
	return env
}
