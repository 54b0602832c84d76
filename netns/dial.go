package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` mounts the namespaces it names.
const netnsDir = "/run/netns"

// Do runs f on an OS thread that has entered host i's network namespace,
// and waits for it: the sockets f creates belong to host i, and keep to
// it whichever thread uses them later. So a process in the root
// namespace, a test say, can dial into the Net as if from host i (give it
// a host of its own, and faults between the other hosts leave it
// reaching all of them; see Bridge).
//
// Only f's own goroutine is inside the namespace; goroutines it starts
// are not. The thread is thrown away once f returns, never to run
// anything else.
func (n *Net) Do(i int, f func()) error {
	if err := n.check(i); err != nil {
		return err
	}
	ns, err := os.Open(filepath.Join(netnsDir, n.hosts[i]))
	if err != nil {
		return fmt.Errorf("netns: host %d: %w", i, err)
	}
	defer ns.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread: a goroutine that exits locked to it wedges
			// it rather than ending it, and its namespace is the
			// process's, the one `ip netns pids` reports (and Close
			// kills). Hold it, so that the goroutine Do starts now runs
			// on another thread.
			done <- n.Do(i, f)
			runtime.UnlockOSThread()
			return
		}
		// No UnlockOSThread: a thread whose goroutine exits locked is
		// terminated, so no other goroutine ever runs in the namespace.
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("netns: entering host %d: %w", i, err)
			return
		}
		f()
		done <- nil
	}()
	return <-done
}

// DialContext connects to addr over network ("tcp", say) from inside
// host i, as Do does.
func (n *Net) DialContext(ctx context.Context, i int, network, addr string) (net.Conn, error) {
	var c net.Conn
	var err error
	if derr := n.Do(i, func() {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
	}); derr != nil {
		return nil, derr
	}
	return c, err
}
