package netns

import (
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDialFromHost listens inside host 1 and dials it from inside host
// 0, from the test process: the connection comes from host 0's address,
// a cut from 0 to 1 stops new ones, and the test process itself stays
// in its own namespace however many times it entered the hosts'.
func TestDialFromHost(t *testing.T) {
	nw := newNet(t, 2)
	addr := net.JoinHostPort(nw.Addr(1), "7400")
	var ln net.Listener
	var err error
	if derr := nw.Do(1, func() { ln, err = net.Listen("tcp", addr) }); derr != nil || err != nil {
		t.Fatal(derr, err)
	}
	defer ln.Close()
	from := make(chan string, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			from <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	for range 20 { // enough for one to run on the main thread, likely
		c, err := nw.DialContext(ctx(t), 0, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if host, _, _ := net.SplitHostPort(<-from); host != nw.Addr(0) {
			t.Fatalf("the connection came from %s, want host 0's %s", host, nw.Addr(0))
		}
	}
	out, err := exec.Command("ip", "netns", "pids", nw.Namespace(0)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(strings.Fields(string(out)), strconv.Itoa(os.Getpid())) {
		t.Fatal("the test process is in host 0's namespace after dialling from it")
	}
	if err := nw.Cut(0, 1); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	if c, err := nw.DialContext(cctx, 0, "tcp", addr); err == nil {
		c.Close()
		t.Fatal("dialled host 1 from host 0 through a cut")
	}
}
