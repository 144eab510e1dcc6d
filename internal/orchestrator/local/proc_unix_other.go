//go:build unix && !linux

package local

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// readProc asks ps(1) about a pid, for Unix systems without /proc. The
// start time is not known, so identity rests on the command line alone,
// and ps joins arguments with spaces: a data directory whose path holds
// spaces is not recognised (its replicas are then restarted, not adopted).
func readProc(pid int) (procInfo, error) {
	if pid <= 0 {
		return procInfo{}, fmt.Errorf("local: bad pid %d", pid)
	}
	out, err := exec.Command("ps", "-o", "stat=", "-o", "command=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return procInfo{}, fmt.Errorf("local: ps -p %d: %w", pid, err)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 2 {
		return procInfo{}, fmt.Errorf("local: no process %d", pid)
	}
	return procInfo{state: fields[0][0], cmdline: fields[1:]}, nil
}

// runtimesUnder lists the live `sluice runtime` processes whose command
// line names a path under dir (see the Linux version).
func runtimesUnder(dir string) []int {
	out, err := exec.Command("ps", "-ax", "-o", "pid=", "-o", "stat=", "-o", "command=").Output()
	if err != nil {
		return nil
	}
	prefix := dir + string(filepath.Separator)
	var pids []int
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "runtime" || strings.HasPrefix(f[1], "Z") {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		for _, a := range f[2:] {
			if strings.HasPrefix(a, prefix) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
