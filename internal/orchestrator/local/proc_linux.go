package local

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// readProc reads /proc/<pid>/stat and cmdline. An error means the process
// does not exist (or cannot be looked at, which counts the same).
func readProc(pid int) (procInfo, error) {
	if pid <= 0 {
		return procInfo{}, fmt.Errorf("local: bad pid %d", pid)
	}
	base := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(base, "stat"))
	if err != nil {
		return procInfo{}, err
	}
	// The command name in parentheses may hold spaces and parentheses;
	// the fields after the last ')' are fixed.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("local: unreadable /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return procInfo{}, fmt.Errorf("local: short /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procInfo{}, fmt.Errorf("local: /proc/%d/stat: %w", pid, err)
	}
	cmd, err := os.ReadFile(filepath.Join(base, "cmdline"))
	if err != nil {
		return procInfo{}, err
	}
	return procInfo{state: fields[0][0], startTime: start, cmdline: strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")}, nil
}

// runtimesUnder lists the live `sluice runtime` processes whose command
// line names a path under dir, whatever the state file says: a replica
// started just before the control plane died, and not yet recorded, is
// found this way.
func runtimesUnder(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	prefix := dir + string(filepath.Separator)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// The command line alone sorts out almost every process; only
		// candidates are looked at further.
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte("\x00runtime\x00")) || !bytes.Contains(cmd, []byte(prefix)) {
			continue
		}
		info, err := readProc(pid)
		if err != nil || info.state == 'Z' || info.state == 'X' || len(info.cmdline) < 2 || info.cmdline[1] != "runtime" {
			continue
		}
		for _, a := range info.cmdline {
			if strings.HasPrefix(a, prefix) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
