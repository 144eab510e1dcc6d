//go:build !unix

package runtime

import "syscall"

// reusePort is a no-op where SO_REUSEPORT does not exist: one replica per
// port.
func reusePort(network, address string, c syscall.RawConn) error { return nil }
