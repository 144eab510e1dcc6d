package local

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// unitFile is the single-host install's systemd unit, relative to this
// package.
const unitFile = "../../../deploy/systemd/sluice.service"

// The unit shipped in deploy/systemd is one systemd itself accepts, keeps
// KillMode=process (the local backend's runtimes are the control plane's
// children and must outlive its restart, which adopts them), and runs a
// command line `sluice serve` accepts: started with the unit's own flags,
// the listen address and data dir swapped for the test's, it serves and
// stops on the unit's KillSignal well within TimeoutStopSec. No systemd runs
// as PID 1 here, so systemd's own parser (`systemd-analyze verify`) stands
// in for `systemctl start`; the unit under a running systemd is not tested.
func TestSystemdUnitIsValidAndItsCommandServes(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze is missing: .ci/run installs Debian's systemd package")
		}
		t.Skip("systemd-analyze is missing: apt-get install systemd")
	}
	raw, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := parseUnit(t, raw)
	if got := unit["Service.KillMode"]; got != "process" {
		t.Fatalf("KillMode = %q: the runtimes must outlive a restart of the control plane, so only the main process may be stopped (KillMode=process)", got)
	}
	exec0 := strings.Fields(unit["Service.ExecStart"])
	if len(exec0) < 2 || exec0[1] != "serve" {
		t.Fatalf("ExecStart = %q, want sluice serve …", unit["Service.ExecStart"])
	}

	// systemd-analyze checks that ExecStart names an executable, so the
	// copy it reads names the binary built from this checkout.
	bin := servertest.Binary(t)
	copyPath := filepath.Join(t.TempDir(), "sluice.service")
	if err := os.WriteFile(copyPath, bytes.Replace(raw, []byte("ExecStart="+exec0[0]), []byte("ExecStart="+bin), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copyPath).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		// systemd ignores what it cannot parse with a warning and exit 0:
		// any output is a line of the unit it would not honour.
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	args := exec0[1:]
	swap(t, args, "--listen", servertest.FreeAddr(t))
	swap(t, args, "--data-dir", t.TempDir())
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr servertest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	serving := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			if !found && strings.HasPrefix(sc.Text(), "sluice: serving ") {
				found = true
				serving <- true
			}
		}
		if !found {
			serving <- false
		}
	}()
	select {
	case ok := <-serving:
		if !ok {
			t.Fatalf("the unit's command exited before serving: %v\n%s", cmd.Wait(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the unit's command did not serve within 60s\n%s", stderr.String())
	}

	sig := map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}[unit["Service.KillSignal"]]
	if sig == 0 {
		t.Fatalf("KillSignal = %q: sluice stops gracefully on SIGTERM or SIGINT", unit["Service.KillSignal"])
	}
	stopWithin, err := time.ParseDuration(unit["Service.TimeoutStopSec"] + "s")
	if err != nil {
		t.Fatalf("TimeoutStopSec = %q: %v", unit["Service.TimeoutStopSec"], err)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after %s: %v (systemd would count the stop as a failure)\n%s", unit["Service.KillSignal"], err, stderr.String())
		}
	case <-time.After(stopWithin):
		t.Fatalf("still running %s after %s: systemd would SIGKILL it", stopWithin, unit["Service.KillSignal"])
	}
}

// parseUnit reads a unit file's Section.Key=value lines (no continuation
// lines: the unit has none, and a key given twice fails the test, since
// systemd would append or override depending on the key).
func parseUnit(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	keys := map[string]string{}
	section := ""
	for i, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not Key=value inside a section", unitFile, i+1, line)
			}
			if _, dup := keys[section+"."+k]; dup {
				t.Fatalf("%s:%d: %s given twice", unitFile, i+1, k)
			}
			keys[section+"."+k] = v
		}
	}
	return keys
}

// swap replaces the value after flag in args, which must hold it.
func swap(t *testing.T, args []string, flag, value string) {
	t.Helper()
	for i := range args[:len(args)-1] {
		if args[i] == flag {
			args[i+1] = value
			return
		}
	}
	t.Fatalf("the unit's ExecStart has no %s: the test runs the command on its own %s", flag, flag)
}
