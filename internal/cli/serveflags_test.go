package cli

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// The README's table of `sluice serve` flags lists every flag the command
// has, each with the environment variable the command binds to it, and
// nothing else: the table cannot drift from the code.
func TestReadmeServeFlagTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(readme), "| flag | env | default | meaning |")
	if start < 0 {
		t.Fatal("README has no serve flag table")
	}
	row := regexp.MustCompile("^\\| `--([a-z-]+)` \\| `([A-Z_]+)` \\|")
	table := map[string]string{}
	for _, line := range strings.Split(string(readme[start:]), "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		m := row.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("README flag table row without a flag and its variable: %s", line)
			continue
		}
		table[m[1]] = m[2]
	}
	cmd := newServeCommand()
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		env := f.Annotations[envAnnotation]
		if len(env) != 1 {
			t.Errorf("serve --%s has no environment variable", f.Name)
			return
		}
		if !strings.Contains(f.Usage, "(env "+env[0]+")") {
			t.Errorf("serve --%s: help does not name %s: %q", f.Name, env[0], f.Usage)
		}
		got, ok := table[f.Name]
		switch {
		case !ok:
			t.Errorf("README flag table lacks --%s (%s)", f.Name, env[0])
		case got != env[0]:
			t.Errorf("README flag table gives --%s the variable %s; the command binds %s", f.Name, got, env[0])
		}
		delete(table, f.Name)
	})
	for flag := range table {
		t.Errorf("README flag table lists --%s, which serve does not have", flag)
	}
}

// A variable sets a flag the command line left alone; the command line
// wins; a variable that does not parse is refused, naming it.
func TestServeFlagsFromEnvironment(t *testing.T) {
	t.Setenv("SLUICE_MAX_BAR_SIZE", "1234")
	t.Setenv("SLUICE_LISTEN", "127.0.0.1:9999")
	cmd := newServeCommand()
	if err := cmd.ParseFlags([]string{"--listen", "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(cmd); err != nil {
		t.Fatal(err)
	}
	if v := cmd.Flags().Lookup("max-bar-size").Value.String(); v != "1234" {
		t.Errorf("max-bar-size = %s, want 1234 from SLUICE_MAX_BAR_SIZE", v)
	}
	if v := cmd.Flags().Lookup("listen").Value.String(); v != "127.0.0.1:7000" {
		t.Errorf("listen = %s, want the command line's value", v)
	}
	t.Setenv("SLUICE_SHUTDOWN_TIMEOUT", "soon")
	err := applyEnv(newServeCommand())
	if err == nil || !strings.Contains(err.Error(), "SLUICE_SHUTDOWN_TIMEOUT is not a valid --shutdown-timeout") {
		t.Errorf("bad duration in the environment: %v", err)
	}
}
