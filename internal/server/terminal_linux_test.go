package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// openPTY opens a pseudo-terminal pair: what the process writes to the
// returned tty is read from master.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// First-start secrets are printed when standard output is a terminal,
// unless the log is JSON; then only the file's path is logged.
func TestFirstStartSecretsOnATerminalOnly(t *testing.T) {
	for _, c := range []struct {
		logFormat string
		shown     bool
	}{{"text", true}, {"auto", true}, {"json", false}} {
		t.Run(c.logFormat, func(t *testing.T) {
			master, tty := openPTY(t)
			dir := t.TempDir()
			cmd := exec.Command(servertest.Binary(t), "serve", "--listen", servertest.FreeAddr(t), "--data-dir", dir,
				"--runtime-backend", "none", "--log-format", c.logFormat)
			var logs servertest.SyncBuffer
			cmd.Stdout, cmd.Stderr = tty, &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
			var out servertest.SyncBuffer
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := master.Read(buf)
					out.Write(buf[:n])
					if err != nil {
						return
					}
				}
			}()
			deadline := time.Now().Add(60 * time.Second)
			for !strings.Contains(out.String(), "sluice: serving") {
				if time.Now().After(deadline) {
					t.Fatalf("no start line on the terminal:\n%s\nlog:\n%s", out.String(), logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			var creds struct{ ClientSecret, APIKey, Password string }
			b, err := os.ReadFile(filepath.Join(dir, "initial-credentials.json"))
			if err != nil || json.Unmarshal(b, &creds) != nil || creds.APIKey == "" {
				t.Fatalf("initial-credentials.json: %v %s", err, b)
			}
			for _, v := range []string{creds.ClientSecret, creds.APIKey, creds.Password} {
				if strings.Contains(out.String(), v) != c.shown {
					t.Errorf("secret on the terminal: %v, want %v:\n%s", !c.shown, c.shown, out.String())
				}
				if strings.Contains(logs.String(), v) {
					t.Errorf("a secret reached the log:\n%s", logs.String())
				}
			}
			if !c.shown && !strings.Contains(logs.String(), filepath.Join(dir, "initial-credentials.json")) {
				t.Errorf("the log does not name the credentials file:\n%s", logs.String())
			}
		})
	}
}
