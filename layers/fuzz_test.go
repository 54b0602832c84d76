package layers_test

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/sim"
	"github.com/conclave/conclave/stack"
)

// A script is what one member's stack receives, in order, as FuzzStackRecv
// replays it: the member m<slot>.1 at address m<slot> starts at time 0 and
// asks to join through m0..m<n-1>, then each operation of the script is
// stepped into its stack, and the effects collected, as a runtime would.
// Operations (the first byte, modulo the number of operations):
//
//	opAdvance uvarint µs      time passes (at most a minute per step)
//	opTick                    a tick at the stack's deadline (or now, if later)
//	opRecv from uvarint n [n] a message from member "from", in its wire form
//	opLost from               the connections with "from" ended
//	opSend uvarint n [n]      the application sends n bytes (sends in a row
//	                          are one batch, as the runtime steps queued sends)
//	opLeave                   the application leaves
//
// A from byte names member m<from&7>.<(from>>3&7)+1> at address
// m<from&7>; for opLost, bit 7 means only the address is known.
const (
	opAdvance byte = iota
	opTick
	opRecv
	opLost
	opSend
	opLeave
	nops
)

// scriptMember returns the member a from byte names, and whether only its
// address is known.
func scriptMember(b byte) (stack.Member, bool) {
	slot, inc := b&7, b>>3&7+1
	return stack.Member{ID: fmt.Sprintf("m%d.%d", slot, inc), Addr: fmt.Sprintf("m%d", slot)}, b&0x80 != 0
}

// scriptFrom is the from byte of member id "m<slot>.<inc>" (slot < 8,
// 1 <= inc <= 8), or false.
func scriptFrom(id string) (byte, bool) {
	s, i, ok := strings.Cut(strings.TrimPrefix(id, "m"), ".")
	slot, err1 := strconv.Atoi(s)
	inc, err2 := strconv.Atoi(i)
	if !ok || err1 != nil || err2 != nil || slot < 0 || slot > 7 || inc < 1 || inc > 8 {
		return 0, false
	}
	return byte(slot) | byte(inc-1)<<3, true
}

// scriptWriter records a member's inputs as a script.
type scriptWriter struct {
	b   []byte
	now time.Duration
}

func (w *scriptWriter) at(now time.Duration) {
	if now-w.now >= time.Microsecond {
		w.b = append(w.b, opAdvance)
		w.b = binary.AppendUvarint(w.b, uint64((now-w.now)/time.Microsecond))
		w.now += (now - w.now) / time.Microsecond * time.Microsecond
	}
}

// add records in at now; it reports false for inputs a script cannot hold.
func (w *scriptWriter) add(now time.Duration, in stack.Event) bool {
	switch e := in.(type) {
	case stack.Start, stack.Join:
		return true // the replay starts and joins by itself
	case stack.Tick:
		w.at(now)
		w.b = append(w.b, opTick)
	case stack.Recv:
		from, ok := scriptFrom(e.From.ID)
		if !ok {
			return false
		}
		w.at(now)
		msg := stack.AppendMsg(nil, e.Msg)
		w.b = append(w.b, opRecv, from)
		w.b = binary.AppendUvarint(w.b, uint64(len(msg)))
		w.b = append(w.b, msg...)
	case stack.Lost:
		from, ok := scriptFrom(e.ID)
		if e.ID == "" {
			from, ok = scriptFrom(e.Addr + ".1")
			from |= 0x80
		}
		if !ok {
			return false
		}
		w.at(now)
		w.b = append(w.b, opLost, from)
	case stack.Send:
		w.at(now)
		w.b = append(w.b, opSend)
		w.b = binary.AppendUvarint(w.b, uint64(len(e.Msg.Data)))
		w.b = append(w.b, e.Msg.Data...)
	case stack.Leave:
		w.at(now)
		w.b = append(w.b, opLeave)
	default:
		return false
	}
	return true
}

// maxAdvance bounds the time one opAdvance lets pass.
const maxAdvance = time.Minute

// replay runs a script against a fresh stack called name (vsync or total)
// of member m<slot>.1 among n slots, and fails t if the stack misbehaves:
// a panic, an effect that is not well formed, a deadline that does not
// move on after a tick, or a stack that never stops ticking at once.
func replay(t *testing.T, name string, n, slot int, script []byte) (views, delivered int) {
	desc, err := layers.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	me := stack.Member{ID: fmt.Sprintf("m%d.1", slot), Addr: fmt.Sprintf("m%d", slot)}
	st, err := layers.Registry().Build(desc, me)
	if err != nil {
		t.Fatal(err)
	}
	var now time.Duration
	var tokens uint64
	var nviews, ndelivered int
	stepOnly := func(in stack.Event) {
		if err := st.Step(now, in); err != nil {
			t.Fatalf("step %T: %v", in, err)
		}
	}
	step := func(in stack.Event) {
		stepOnly(in)
		effs := st.Ready()
		checkEffects(t, effs)
		for _, e := range effs {
			switch e.(type) {
			case stack.Install:
				nviews++
			case stack.Deliver:
				ndelivered++
			}
		}
	}
	// tick ticks at the deadline and checks that the deadline moves on.
	tick := func() {
		d := st.Deadline()
		if d == stack.Never {
			step(stack.Tick{})
			return
		}
		now = max(now, d)
		step(stack.Tick{})
		if d2 := st.Deadline(); d2 <= now {
			t.Fatalf("after a tick at %v the deadline is %v: the runtime would spin", now, d2)
		}
	}
	var contacts []string
	for i := range n {
		contacts = append(contacts, fmt.Sprintf("m%d", i))
	}
	step(stack.Start{})
	step(stack.Join{Contacts: contacts})
	r := scriptReader{b: script}
	for !r.done() {
		switch r.op() {
		case opAdvance:
			us := r.uvarint()
			now += time.Duration(min(us, uint64(maxAdvance/time.Microsecond))) * time.Microsecond
		case opTick:
			tick()
		case opRecv:
			from, _ := scriptMember(r.byte())
			raw := r.bytes()
			if r.bad {
				break
			}
			msg, err := stack.ParseMsg(raw)
			if err != nil {
				continue // the runtime drops it
			}
			step(stack.Recv{From: from, Msg: msg})
		case opLost:
			m, addrOnly := scriptMember(r.byte())
			if r.bad {
				break
			}
			if addrOnly {
				m.ID = ""
			}
			step(stack.Lost{ID: m.ID, Addr: m.Addr, Reason: "eof"})
		case opSend:
			data := r.bytes()
			if r.bad {
				break
			}
			tokens++
			in := stack.Send{Msg: stack.Msg{Data: data}, Token: tokens}
			if !r.done() && r.b[0]%nops == opSend {
				stepOnly(in) // one batch with the next
			} else {
				step(in)
			}
		case opLeave:
			step(stack.Leave{})
		}
	}
	views, delivered = nviews, ndelivered
	// Let the timers run a while: retries, heartbeats, suspicions.
	for range 64 {
		if st.Deadline() == stack.Never {
			break
		}
		tick()
	}
	return views, delivered
}

// scriptReader reads a script; a truncated script ends it.
type scriptReader struct {
	b   []byte
	bad bool
}

func (r *scriptReader) done() bool { return r.bad || len(r.b) == 0 }

func (r *scriptReader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *scriptReader) op() byte { return r.byte() % nops }

func (r *scriptReader) uvarint() uint64 {
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *scriptReader) bytes() []byte {
	l := r.uvarint()
	if r.bad || l > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	out := r.b[:l:l]
	r.b = r.b[l:]
	return out
}

// checkEffects fails t on an effect a runtime could not carry out.
func checkEffects(t *testing.T, effs []stack.Event) {
	for _, e := range effs {
		switch e := e.(type) {
		case stack.Multicast:
			for _, to := range e.To {
				checkEffects(t, []stack.Event{stack.Out{To: to, Msg: e.Msg}})
			}
		case stack.Out:
			if e.To.Addr == "" && e.To.ID == "" {
				t.Fatalf("Out to nobody: %+v", e)
			}
			if len(e.Msg.Hdrs) > stack.MaxHeaders {
				t.Fatalf("Out with %d headers", len(e.Msg.Hdrs))
			}
			if _, err := stack.ParseMsg(stack.AppendMsg(nil, e.Msg)); err != nil {
				t.Fatalf("Out does not parse: %v", err)
			}
		case stack.Install:
			if len(e.View.Members) == 0 {
				t.Fatalf("Install of an empty view %v", e.View.ID)
			}
		case stack.Close, stack.Deliver, stack.Acked, stack.Left, stack.Log:
		default:
			t.Fatalf("unexpected effect %T", e)
		}
	}
}

// FuzzStackRecv feeds a member's vsync or total stack scripts of network
// input, timers and application requests (see replay): whatever arrives,
// the stack must not panic, allocate without bound or spin. The seed
// corpus holds scripts recorded from group simulations (regenerate with
// go test ./layers -run TestStackRecvCorpus -gen-corpus), with valid
// messages of every header kind, and every crasher found.
func FuzzStackRecv(f *testing.F) {
	f.Add(uint8(0), uint8(1), uint8(0), []byte{opTick, opRecv, 1, 3, 1, 1, detectBeatForTest, opTick})
	f.Fuzz(func(t *testing.T, stk, n, slot uint8, script []byte) {
		nn := 2 + int(n%6)
		replay(t, []string{"vsync", "total"}[stk%2], nn, int(slot)%nn, script)
	})
}

// detectBeatForTest is the detect layer's heartbeat header byte.
const detectBeatForTest = 1

var genCorpus = flag.Bool("gen-corpus", false, "write FuzzStackRecv's seed corpus of recorded scripts to testdata/fuzz")

// corpusScenario is a short group simulation whose member at slot is
// recorded as a script.
type corpusScenario struct {
	name  string
	stack string
	n     int
	slot  int
	run   func(s *sim.GroupSim)

	views, delivered int // what the member installed and delivered
}

// trafficFor has every running member send a message every 2ms for d,
// and every other time a burst of three (one bundle).
func trafficFor(s *sim.GroupSim, n int, d time.Duration) {
	end := s.Now() + d
	for k := 0; s.Now() < end; k++ {
		for i := range n {
			if (i+k)%2 == 0 {
				s.SendBurst(i, 3)
			} else {
				s.Send(i)
			}
		}
		s.RunFor(2 * time.Millisecond)
	}
}

func formed(s *sim.GroupSim, n int, slots ...int) {
	if len(slots) == 0 {
		for i := range n {
			slots = append(slots, i)
		}
	}
	for _, i := range slots {
		s.Start(i)
	}
	s.RunUntil(s.Now()+5*time.Second, s.Agreed)
}

var corpusScenarios = []corpusScenario{
	{name: "form-vsync", stack: "vsync", n: 3, slot: 0, run: func(s *sim.GroupSim) {
		formed(s, 3)
		trafficFor(s, 3, 30*time.Millisecond)
		s.RunFor(150 * time.Millisecond)
	}},
	{name: "form-total", stack: "total", n: 3, slot: 1, run: func(s *sim.GroupSim) {
		formed(s, 3)
		trafficFor(s, 3, 30*time.Millisecond)
		s.RunFor(150 * time.Millisecond)
	}},
	{name: "crash-coordinator-total", stack: "total", n: 4, slot: 2, run: func(s *sim.GroupSim) {
		formed(s, 4)
		trafficFor(s, 4, 10*time.Millisecond)
		s.Crash(0)
		trafficFor(s, 4, 20*time.Millisecond)
		s.RunFor(300 * time.Millisecond)
	}},
	{name: "leave-vsync", stack: "vsync", n: 4, slot: 0, run: func(s *sim.GroupSim) {
		formed(s, 4)
		trafficFor(s, 4, 10*time.Millisecond)
		s.Leave(3)
		trafficFor(s, 4, 20*time.Millisecond)
		s.RunFor(100 * time.Millisecond)
		s.Leave(1)
		s.RunFor(300 * time.Millisecond)
		s.Leave(0)
		s.RunFor(300 * time.Millisecond)
	}},
	{name: "merge-vsync", stack: "vsync", n: 4, slot: 3, run: func(s *sim.GroupSim) {
		// A partition splits the group in two of two; once it heals,
		// the one with the higher addresses dissolves into the other.
		formed(s, 4)
		trafficFor(s, 4, 10*time.Millisecond)
		s.Partition([]int{0, 1}, []int{2, 3})
		s.RunFor(800 * time.Millisecond)
		s.Heal()
		s.RunUntil(s.Now()+3*time.Second, s.Agreed)
		trafficFor(s, 4, 10*time.Millisecond)
		s.RunFor(100 * time.Millisecond)
	}},
	{name: "join-late-total", stack: "total", n: 3, slot: 2, run: func(s *sim.GroupSim) {
		formed(s, 3, 0, 1)
		trafficFor(s, 3, 10*time.Millisecond)
		s.Start(2)
		trafficFor(s, 3, 20*time.Millisecond)
		s.RunFor(400 * time.Millisecond)
	}},
	{name: "restart-vsync", stack: "vsync", n: 3, slot: 0, run: func(s *sim.GroupSim) {
		formed(s, 3)
		trafficFor(s, 3, 10*time.Millisecond)
		s.Crash(1)
		s.RunFor(20 * time.Millisecond)
		s.Start(1)
		trafficFor(s, 3, 20*time.Millisecond)
		s.RunFor(400 * time.Millisecond)
	}},
	{name: "pause-total", stack: "total", n: 3, slot: 2, run: func(s *sim.GroupSim) {
		formed(s, 3)
		trafficFor(s, 3, 10*time.Millisecond)
		s.Pause(2)
		trafficFor(s, 3, 10*time.Millisecond)
		s.RunFor(800 * time.Millisecond)
		s.Resume(2)
		s.RunFor(1500 * time.Millisecond)
	}},
	{name: "refused-total", stack: "total", n: 3, slot: 0, run: func(s *sim.GroupSim) {
		formed(s, 3)
		trafficFor(s, 3, 10*time.Millisecond)
	}},
}

// synthetic are messages added at the end of a recorded script, of kinds
// the scenarios do not produce, given the member's view then: the refusal
// of a member taken in by two groups, and the answer to a join with another
// stack; a data message that leaves a gap, and a nack.
var synthetic = map[string]func(v stack.ViewID) []stack.Msg{
	"refused-total": func(stack.ViewID) []stack.Msg {
		other := (&stack.Enc{B: []byte{gmsOtherStackForTest}}).Str("vsync#0123456789abcdef").B
		contacts := (&stack.Enc{B: []byte{gmsContactsForTest}}).Uint(2).Str("m3").Str("m4").B
		excluded := (&stack.Enc{B: []byte{gmsExcludedForTest}}).ViewID(stack.ViewID{Seq: 1, Coord: "m1.1"}).B
		refuse := (&stack.Enc{B: []byte{gmsRefuseForTest}}).ViewID(stack.ViewID{Seq: 1, Coord: "m1.1"}).B
		return []stack.Msg{{Hdrs: [][]byte{refuse, {detectDataForTest}}}, {Hdrs: [][]byte{other, {detectDataForTest}}},
			{Hdrs: [][]byte{contacts, {detectDataForTest}}}, {Hdrs: [][]byte{excluded, {detectDataForTest}}}}
	},
	"form-vsync": func(v stack.ViewID) []stack.Msg {
		gap := (&stack.Enc{B: []byte{vsDataForTest}}).ViewID(v).Uint(1 << 20).Uint(0).B
		nack := (&stack.Enc{B: []byte{vsNackForTest}}).ViewID(v).Uint(1).B
		return []stack.Msg{
			{Hdrs: [][]byte{gap, {gmsDataForTest}, {detectDataForTest}}, Data: []byte("gap")},
			{Hdrs: [][]byte{nack, {gmsDataForTest}, {detectDataForTest}}},
		}
	},
}

// Header bytes of the layers, for the messages above.
const (
	detectDataForTest    = 0
	gmsDataForTest       = 0
	gmsRefuseForTest     = 9
	gmsOtherStackForTest = 11
	gmsContactsForTest   = 12
	gmsExcludedForTest   = 13
	vsDataForTest        = 0
	vsNackForTest        = 2
)

// record runs a scenario and returns the script of its member's inputs.
func (sc *corpusScenario) record(t *testing.T) []byte {
	desc, err := layers.Load(sc.stack)
	if err != nil {
		t.Fatal(err)
	}
	reg := layers.Registry()
	w := &scriptWriter{}
	cfg := sim.GroupConfig{N: sc.n, Seed: 1, Stack: func(me stack.Member) *stack.Stack {
		st, err := reg.Build(desc, me)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}, Trace: func(slot int, inc uint64, now time.Duration, in stack.Event) {
		if slot == sc.slot && inc == 1 && !w.add(now, in) {
			t.Fatalf("%s: cannot record %T", sc.name, in)
		}
	}}
	s := sim.NewGroup(cfg)
	sc.run(s)
	if f := synthetic[sc.name]; f != nil {
		v, _ := s.View(sc.slot)
		for _, m := range f(v.ID) {
			w.add(s.Now(), stack.Recv{From: stack.Member{ID: "m1.1", Addr: "m1"}, Msg: m})
		}
	}
	views, delivered := 0, 0
	me := fmt.Sprintf("m%d.1", sc.slot)
	for _, e := range s.History() {
		if e.Str("member") == me {
			switch e.Ev {
			case "view":
				views++
			case "deliver":
				delivered++
			}
		}
	}
	sc.views, sc.delivered = views, delivered
	return w.b
}

// headerKinds returns the header kinds of the messages a script receives,
// named layer:kind, as the stack name's layers read them.
func headerKinds(script []byte, total bool) map[string]int {
	kinds := map[string]int{}
	b := script
	for len(b) > 0 {
		op := b[0]
		b = b[1:]
		switch op {
		case opAdvance:
			_, k := binary.Uvarint(b)
			b = b[k:]
		case opLost:
			b = b[1:]
		case opSend, opRecv:
			if op == opRecv {
				b = b[1:]
			}
			l, k := binary.Uvarint(b)
			raw := b[k : k+int(l)]
			b = b[k+int(l):]
			if op == opSend {
				continue
			}
			m, err := stack.ParseMsg(raw)
			if err != nil {
				kinds["unparsable"]++
				continue
			}
			h, m, _ := m.Pop()
			if h[0] == 1 {
				kinds["detect:beat"]++
				continue
			}
			kinds["detect:data"]++
			h, m, _ = m.Pop()
			gms := []string{"data", "join", "nack", "leave", "flush", "flush-ok", "install", "probe", "dissolve", "refuse", "suspect", "other-stack", "contacts", "excluded"}
			kinds["membership:"+gms[h[0]]]++
			if h[0] != 0 {
				continue
			}
			h, m, _ = m.Pop()
			kinds["vsync:"+[]string{"data", "ack", "nack"}[h[0]]]++
			if h[0] != 0 {
				continue
			}
			if total {
				h, m, _ = m.Pop()
				kinds["total:"+[]string{"data", "order"}[h[0]]]++
				if h[0] != 0 {
					continue
				}
			}
			if h, _, ok := m.Pop(); ok && len(h) == 1 && h[0] < 2 {
				kinds["bundle:"+[]string{"one", "many"}[h[0]]]++
			}
		}
	}
	return kinds
}

// TestStackRecvCorpus records the scripts of FuzzStackRecv's seed corpus
// from group simulations, checks that they replay cleanly and hold a
// message of every header kind, and with -gen-corpus writes them.
func TestStackRecvCorpus(t *testing.T) {
	all := map[string]int{}
	for _, sc := range corpusScenarios {
		script := sc.record(t)
		views, delivered := replay(t, sc.stack, sc.n, sc.slot, script)
		if views != sc.views || delivered != sc.delivered {
			t.Errorf("%s: the replay installed %d views and delivered %d messages, the simulation %d and %d",
				sc.name, views, delivered, sc.views, sc.delivered)
		}
		for k, v := range headerKinds(script, sc.stack == "total") {
			all[k] += v
		}
		if *genCorpus {
			stk := map[string]int{"vsync": 0, "total": 1}[sc.stack]
			body := fmt.Sprintf("go test fuzz v1\nuint8(%d)\nuint8(%d)\nuint8(%d)\n[]byte(%q)\n", stk, sc.n-2, sc.slot, script)
			path := filepath.Join("testdata", "fuzz", "FuzzStackRecv", "rec-"+sc.name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d bytes", path, len(script))
		}
	}
	t.Logf("header kinds: %v", all)
	for _, k := range []string{"detect:beat", "detect:data", "membership:data", "membership:join", "membership:nack",
		"membership:leave", "membership:flush", "membership:flush-ok", "membership:install", "membership:probe",
		"membership:dissolve", "membership:refuse", "membership:suspect", "membership:other-stack", "membership:contacts", "membership:excluded", "vsync:data", "vsync:ack", "vsync:nack", "total:data", "total:order", "bundle:one", "bundle:many"} {
		if all[k] == 0 {
			t.Errorf("no %s message in the recorded scripts", k)
		}
	}
}
