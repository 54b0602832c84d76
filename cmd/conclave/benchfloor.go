package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// runBenchFloorPeer is one process of the floor of "bench failover": it
// connects to every other process as a peer does (ids in order, lower
// dials higher), sends a byte on each connection every heartbeat interval
// and checks nothing, and reports as its leader the lowest id among itself
// and the processes it has a connection with, in the leader_change events
// a peer writes to --events-fd. What it does is what every peer must do at
// least: wake up to heartbeat, be woken by the kernel for a closed
// connection and say so; what a crash costs it is the machine's floor for
// a crash failover.
func runBenchFloorPeer(args []string) error {
	fs := newFlags("bench floor-peer", "bench floor-peer --id I --peers A0,A1,... --events-fd 3")
	id := fs.Int("id", -1, "this process's id, from 0 to N-1")
	peers := fs.String("peers", "", "comma-separated host:port of every process, in id order")
	hb := fs.Duration("heartbeat", 100*time.Millisecond, "interval between the bytes sent on each connection")
	eventsFD := eventsFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	addrs := strings.Split(*peers, ",")
	if *id < 0 || *id >= len(addrs) || *peers == "" {
		return usagef("--id must be from 0 to N-1 and --peers must list the N addresses")
	}
	if err := positive("heartbeat", *hb); err != nil {
		return err
	}
	if *eventsFD < 3 {
		return usagef("--events-fd must name an inherited descriptor (3 or more)")
	}
	out := os.NewFile(uintptr(*eventsFD), "events")
	ln, err := net.Listen("tcp", addrs[*id])
	if err != nil {
		return err
	}
	f := &floorPeer{id: *id, out: out, open: map[int]int{}, leader: -1, hb: *hb}
	go f.accept(ln)
	for j := *id + 1; j < len(addrs); j++ {
		go f.dial(j, addrs[j])
	}
	f.mu.Lock()
	f.report()
	f.mu.Unlock()
	select {}
}

// floorPeer is the state of a floor process.
type floorPeer struct {
	id     int
	out    io.Writer
	hb     time.Duration
	mu     sync.Mutex
	open   map[int]int // connections open, by the other end's id
	leader int
}

func (f *floorPeer) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				c.Close()
				return
			}
			f.watch(int(b[0]), c)
		}()
	}
}

func (f *floorPeer) dial(j int, addr string) {
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			if _, err = c.Write([]byte{byte(f.id)}); err == nil {
				f.watch(j, c)
				return
			}
			c.Close()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watch counts c open until it closes, and heartbeats on it.
func (f *floorPeer) watch(j int, c net.Conn) {
	f.mu.Lock()
	f.open[j]++
	f.report()
	f.mu.Unlock()
	go func() {
		for {
			time.Sleep(f.hb)
			if _, err := c.Write([]byte{0}); err != nil {
				return
			}
		}
	}()
	var b [512]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			break
		}
	}
	c.Close()
	f.mu.Lock()
	if f.open[j]--; f.open[j] == 0 {
		delete(f.open, j)
	}
	f.report()
	f.mu.Unlock()
}

// report writes a leader_change event if the leader changed; call it with
// f.mu held.
func (f *floorPeer) report() {
	l := f.id
	for j := range f.open {
		l = min(l, j)
	}
	if l == f.leader {
		return
	}
	prev := f.leader
	f.leader = l
	line, _ := json.Marshal(map[string]any{"ts": time.Now().UTC(), "node": eventlog.PeerName(f.id), "ev": eventlog.LeaderChange,
		eventlog.FieldLeader: l, eventlog.FieldPrev: prev})
	if _, err := f.out.Write(append(line, '\n')); err != nil {
		fmt.Fprintf(os.Stderr, "conclave bench floor-peer: %v\n", err)
		os.Exit(1)
	}
}
