// Package transport carries wire frames between peers over TCP: socket
// options, urgent data, the Hello handshake, and a connection with its own
// reader and writer goroutines.
//
// Urgent data is handled as measurements on Linux showed it must be: with
// SO_OOBINLINE off, an urgent byte alone does not wake Go's netpoller, and a
// read that reaches it discards it. So SO_OOBINLINE is set right after dial
// or accept and never changed, and the urgent byte stays in the ordered
// stream, where the framing reads it as a one-byte wire.Hint.
// The leader-change frame itself travels as ordinary data, so nothing depends
// on the urgent flag surviving the path.
package transport

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// SetOOBInline turns SO_OOBINLINE on. Call it before any data flows.
func SetOOBInline(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_OOBINLINE, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("setsockopt SO_OOBINLINE: %w", serr)
	}
	return nil
}

// SendUrgent sends b as one byte of TCP urgent data (MSG_OOB). It holds the
// connection's write lock, so the byte lands between whole writes.
func SendUrgent(c *net.TCPConn, b byte) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgN(int(fd), []byte{b}, nil, nil, unix.MSG_OOB|unix.MSG_NOSIGNAL)
		return !errors.Is(serr, unix.EAGAIN)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("send urgent byte: %w", serr)
	}
	return nil
}

// AtMark reports whether the next byte to read from c is the urgent byte
// (ioctl SIOCATMARK). With SO_OOBINLINE set, a read stops just before the
// urgent mark, so this tells whether a byte really arrived flagged urgent.
func AtMark(c *net.TCPConn) (bool, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return false, err
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = unix.IoctlGetInt(int(fd), unix.SIOCATMARK)
	}); err != nil {
		return false, err
	}
	if serr != nil {
		return false, fmt.Errorf("ioctl SIOCATMARK: %w", serr)
	}
	return v != 0, nil
}
