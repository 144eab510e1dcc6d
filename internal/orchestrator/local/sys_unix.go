//go:build unix

package local

import "syscall"

// supported says whether runtimes can run as local processes here.
const supported = true

// detached gives a runtime a session of its own: signals to the control
// plane's process group (a terminal's Ctrl-C, a kill of the group) do not
// reach it, and it keeps running when the control plane dies.
func detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

func sendSignal(pid int, sig syscall.Signal) error {
	return syscall.Kill(pid, sig)
}
