package layers_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
)

// memNet runs member stacks in memory: every Out is encoded as the
// runtime encodes it (once per message, however many members it goes
// to) and parsed again at the receiver, and each member's inputs are
// stepped in a batch before its effects are collected, as the runtime's
// loop does. No sockets, goroutines or clocks.
type memNet struct {
	sts       []*stack.Stack
	byAddr    map[string]int
	byID      map[string]int
	queue     [][]wireMsg // per receiver
	now       time.Duration
	views     []int // members in each member's last view
	delivered int
	record    bool                    // keep what follows
	delivers  map[int][]stack.Deliver // by member
	acks      map[int][]stack.Acked   // by member
	frames    map[[2]int]int          // messages sent, by sender and receiver
	last      struct {
		msg stack.Msg
		b   []byte
	}
}

type wireMsg struct {
	from stack.Member
	b    []byte
}

func newMemNet(tb testing.TB, stackName string, n int) *memNet {
	d, err := layers.Load(stackName)
	if err != nil {
		tb.Fatal(err)
	}
	net := &memNet{byAddr: map[string]int{}, byID: map[string]int{}, queue: make([][]wireMsg, n), views: make([]int, n)}
	for i := range n {
		me := stack.Member{ID: fmt.Sprintf("m%d.1", i), Addr: fmt.Sprintf("m%d", i)}
		st, err := layers.Registry().Build(d, me)
		if err != nil {
			tb.Fatal(err)
		}
		net.sts = append(net.sts, st)
		net.byAddr[me.Addr], net.byID[me.ID] = i, i
	}
	for i, st := range net.sts {
		var contacts []string
		if i > 0 {
			contacts = []string{"m0"}
		}
		st.Step(net.now, stack.Start{})
		st.Step(net.now, stack.Join{Contacts: contacts})
		net.collect(i)
		// Let the group take i in before the next joins.
		for deadline := net.now + 10*time.Second; net.views[i] != i+1; {
			if net.now > deadline {
				tb.Fatalf("member %d is in a view of %d members", i, net.views[i])
			}
			if !net.run() {
				net.now += time.Millisecond
				for j, st := range net.sts {
					if st.Deadline() <= net.now {
						st.Step(net.now, stack.Tick{})
						net.collect(j)
					}
				}
			}
		}
	}
	for !allIn(net.views, n) {
		if !net.run() {
			tb.Fatalf("views %v", net.views)
		}
	}
	return net
}

func allIn(views []int, n int) bool {
	for _, v := range views {
		if v != n {
			return false
		}
	}
	return true
}

// collect carries out member i's effects.
func (net *memNet) collect(i int) {
	for _, e := range net.sts[i].Ready() {
		switch e := e.(type) {
		case stack.Out:
			net.send(i, e)
		case stack.Multicast:
			for _, to := range e.To {
				net.send(i, stack.Out{To: to, Msg: e.Msg})
			}
		case stack.Deliver:
			net.delivered++
			if net.record {
				net.delivers[i] = append(net.delivers[i], e)
			}
		case stack.Acked:
			if net.record {
				net.acks[i] = append(net.acks[i], e)
			}
		case stack.Install:
			net.views[i] = len(e.View.Members)
		}
	}
}

func (net *memNet) send(i int, e stack.Out) {
	j, ok := net.byID[e.To.ID]
	if !ok {
		j, ok = net.byAddr[e.To.Addr]
	}
	if ok {
		net.queue[j] = append(net.queue[j], wireMsg{net.sts[i].Me(), net.encode(e.Msg)})
		if net.record {
			net.frames[[2]int{i, j}]++
		}
	}
}

// encode is the runtime's: one encoding per message, reused while the
// Outs of one multicast share it.
func (net *memNet) encode(m stack.Msg) []byte {
	l := &net.last
	if len(m.Hdrs) > 0 && len(l.msg.Hdrs) == len(m.Hdrs) && &l.msg.Hdrs[0] == &m.Hdrs[0] &&
		len(l.msg.Data) == len(m.Data) && (len(m.Data) == 0 || &l.msg.Data[0] == &m.Data[0]) {
		return l.b
	}
	l.msg, l.b = m, stack.AppendMsg(nil, m)
	return l.b
}

// run steps every member's queued messages, a batch per member, and
// reports whether there were any.
func (net *memNet) run() bool {
	any := false
	for j, q := range net.queue {
		if len(q) == 0 {
			continue
		}
		any = true
		net.queue[j] = nil
		for _, w := range q {
			m, err := stack.ParseMsg(w.b)
			if err != nil {
				panic(err)
			}
			net.sts[j].Step(net.now, stack.Recv{From: w.from, Msg: m})
		}
		net.collect(j)
	}
	return any
}

// BenchmarkTotalPath sends 1 KiB messages through the total stack of 4
// members in memory, each member sending in turn, 16 at a time as a batch;
// an op is one message sent at one member and delivered at all 4.
// allocs/delivery is per message per member.
func BenchmarkTotalPath(b *testing.B) { benchPath(b, "total", 4) }

// BenchmarkVsyncPath is BenchmarkTotalPath under the vsync stack.
func BenchmarkVsyncPath(b *testing.B) { benchPath(b, "vsync", 4) }

func benchPath(b *testing.B, stackName string, n int) {
	net := newMemNet(b, stackName, n)
	payload := make([]byte, 1024)
	const batch = 16
	net.delivered = 0
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		for i, st := range net.sts {
			for range min(batch, b.N-sent) {
				st.Step(net.now, stack.Send{Msg: stack.Msg{Data: payload}, Token: uint64(sent + 1)})
				sent++
			}
			net.collect(i)
		}
		for net.run() {
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	if net.delivered != n*sent {
		b.Fatalf("%d deliveries of %d messages at %d members", net.delivered, sent, n)
	}
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(net.delivered), "allocs/delivery")
}
