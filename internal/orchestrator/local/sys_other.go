//go:build !unix

package local

import (
	"errors"
	"syscall"
)

// supported says whether runtimes can run as local processes here: the
// backend relies on sessions, signals and process tables of Unix systems.
const supported = false

var errUnsupported = errors.New("local: runtimes as local processes need a Unix system")

func detached() *syscall.SysProcAttr { return nil }

func sendSignal(int, syscall.Signal) error { return errUnsupported }

func readProc(int) (procInfo, error) { return procInfo{}, errUnsupported }

func runtimesUnder(string) []int { return nil }
