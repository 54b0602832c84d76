// Package netuser is a pure package that reaches for the network and the
// operating system.
package netuser

import (
	"net"
	"net/netip"
	sig "os/signal"
	"syscall"
)

// Dial dials addr.
func Dial(addr netip.AddrPort) (net.Conn, error) { return net.Dial("tcp", addr.String()) }

// Ignore ignores SIGPIPE.
func Ignore() { sig.Ignore(syscall.SIGPIPE) }
