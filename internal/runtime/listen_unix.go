//go:build unix

package runtime

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort sets SO_REUSEPORT on the listening socket before bind, so that
// several replicas of a runtime can listen on one port and the kernel
// spreads connections between them; a new generation starts listening
// before the old one stops, and no connection is refused in between.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
