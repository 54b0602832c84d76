package layers

import (
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/stack"
)

// Events between detect and the layers above.
type (
	// Watch tells the failure detector which members to watch: those of
	// the current view but this one.
	Watch struct {
		Members []stack.Member
	}
	// Suspect reports a watched member down. Cause is "conn_closed" or
	// "silence", as in the peer core.
	Suspect struct {
		ID    string
		Cause string
	}
)

// detect is the failure detector: the peer core's rules for a dynamic set
// of members. It sends a heartbeat to every watched member each interval; a
// member whose connection is lost is suspected at once, one silent for
// longer than suspect-after is suspected and its connections closed.
type detect struct {
	hb, suspectAfter time.Duration
	watched          map[string]*watched
	order            []string
	nextBeat         time.Duration
	last             time.Duration // when the timer last ran
	started          bool
}

type watched struct {
	m         stack.Member
	heard     time.Duration
	suspected bool
}

const (
	detectData byte = iota
	detectBeat
)

// Headers shared by every message that carries them: headers are never
// written to once made.
var (
	detectDataHdr = []byte{detectData}
	detectBeatHdr = []byte{detectBeat}
)

func newDetect(p stack.Params) stack.Layer {
	return &detect{hb: p.Duration("heartbeat"), suspectAfter: p.Duration("suspect-after"), watched: map[string]*watched{}}
}

func (d *detect) Start(c *stack.Ctx) {
	d.started = true
	d.nextBeat = c.Now() + d.hb
	d.last = c.Now()
}

func (d *detect) Deadline() time.Duration {
	if !d.started {
		return stack.Never
	}
	return d.nextBeat
}

func (d *detect) Tick(c *stack.Ctx) {
	now := c.Now()
	// A process that was paused wakes up late: the silence it slept
	// through is its own, not its peers'.
	if late := now - d.nextBeat; late > d.hb {
		for _, w := range d.watched {
			w.heard += late
		}
		c.Log(eventlog.Paused, eventlog.FieldForMS, ms(late))
	}
	for _, id := range d.order {
		w := d.watched[id]
		if w.suspected {
			continue
		}
		if now-w.heard > d.suspectAfter {
			d.suspect(c, w, eventlog.CauseSilence)
			continue
		}
		c.Down(stack.Out{To: w.m, Msg: stack.Msg{Hdrs: [][]byte{detectBeatHdr}}})
	}
	d.nextBeat = now + d.hb
	d.last = now
}

func (d *detect) suspect(c *stack.Ctx, w *watched, cause string) {
	w.suspected = true
	c.Log(eventlog.Suspect, eventlog.FieldOf, w.m.ID, eventlog.FieldCause, cause)
	c.Down(stack.Close{ID: w.m.ID, KeepIn: cause == eventlog.CauseConnClosed})
	c.Up(Suspect{ID: w.m.ID, Cause: cause})
}

func (d *detect) Up(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case stack.Recv:
		h, rest, ok := e.Msg.Pop()
		if !ok || len(h) != 1 || h[0] > detectBeat {
			c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From.ID, eventlog.FieldLayer, "detect")
			return
		}
		// Only heartbeats count: a member that has moved to another
		// group may still talk to this one (probes, joins) but no longer
		// watches it.
		if w := d.watched[e.From.ID]; w != nil && !w.suspected && h[0] == detectBeat {
			w.heard = c.Now()
		}
		if h[0] == detectData {
			c.Up(stack.Recv{From: e.From, Msg: rest})
		}
	case stack.Lost:
		if w := d.watched[e.ID]; w != nil && !w.suspected {
			d.suspect(c, w, eventlog.CauseConnClosed)
		}
		c.Up(ev)
	default:
		c.Up(ev)
	}
}

func (d *detect) Down(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case Watch:
		next := map[string]*watched{}
		d.order = d.order[:0]
		for _, m := range e.Members {
			w := d.watched[m.ID]
			if w == nil {
				w = &watched{m: m, heard: c.Now()}
			}
			next[m.ID] = w
			d.order = append(d.order, m.ID)
		}
		d.watched = next
	case stack.Out:
		c.Down(stack.Out{To: e.To, Msg: e.Msg.Push(detectDataHdr)})
	case stack.Multicast:
		c.Down(stack.Multicast{To: e.To, Msg: e.Msg.Push(detectDataHdr)})
	default:
		c.Down(ev)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
