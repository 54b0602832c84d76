package launch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
)

// What launch knows of its processes comes from the events they write to
// file descriptor 3 (--events-fd 3): the same JSON lines as their event
// logs.

// head is what launch follows of an event as it arrives; the whole event
// is decoded only when asked for (decode), since a full decoding of every
// line would compete for the CPU with the processes being measured.
type head struct {
	Ev      string          `json:"ev"`
	Leader  json.RawMessage `json:"leader"`
	Members json.RawMessage `json:"members"`
	Msg     json.RawMessage `json:"msg"`
}

// observe takes in a line of an event the process logged, which arrived
// at now.
func (p *proc) observe(line []byte, h head, now time.Time) {
	p.raw = append(p.raw, line)
	p.learnNode(line)
	switch h.Ev {
	case eventlog.LeaderChange:
		var l int
		if json.Unmarshal(h.Leader, &l) == nil {
			p.leader, p.since = l, now
		}
	case eventlog.View:
		var ids []string
		json.Unmarshal(h.Members, &ids)
		p.view = []string{}
		for _, id := range ids {
			name, _, _ := strings.Cut(id, ".")
			p.view = append(p.view, name)
		}
		slices.Sort(p.view)
	case eventlog.Deliver:
		var msg string
		json.Unmarshal(h.Msg, &msg)
		p.delivered[msg] = true
	}
}

// decode turns the lines not yet decoded into events; call it with c.mu
// held.
func (p *proc) decode() {
	for _, line := range p.raw {
		var e eventlog.Event
		if json.Unmarshal(line, &e) == nil {
			p.events = append(p.events, e)
		}
	}
	p.raw = nil
}

// readEvents reads the events p writes until it exits. A line that is not
// an event is skipped. The lines that arrive together are taken in
// together, with one notification.
func (c *Cluster) readEvents(p *proc, r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	var lines [][]byte
	for {
		line, err := br.ReadBytes('\n')
		now := time.Now() // when the lines arrived, before the work of reading them
		lines = append(lines[:0], line)
		for err == nil && lineBuffered(br) {
			line, err = br.ReadBytes('\n')
			lines = append(lines, line)
		}
		c.mu.Lock()
		seen := false
		for _, line := range lines {
			if h, ok := readHead(line); ok {
				p.observe(line, h, now)
				seen = true
			}
		}
		if seen {
			c.notifyLocked()
		}
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// lineBuffered reports whether br holds a whole line already.
func lineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// readHead reads what launch follows of an event line. The name is read
// where eventlog writes it, after the header's other keys; encoding/json
// decodes only the lines of the events launch follows, and those written
// otherwise.
func readHead(line []byte) (head, bool) {
	ev := evName(line)
	switch ev {
	case "", eventlog.LeaderChange, eventlog.View, eventlog.Deliver:
	default:
		return head{Ev: ev}, true
	}
	var h head
	if json.Unmarshal(line, &h) != nil || h.Ev == "" {
		return head{}, false
	}
	return h, true
}

// evName returns the event name of a whole line as eventlog writes it
// ({"ts":...,"ev":"name",...}), or "" for another line. Before "ev" come
// only the time, the node's name, whose quotes are escaped, and numbers,
// so the first `,"ev":"` is the key.
func evName(line []byte) string {
	const key = `,"ev":"`
	line = bytes.TrimRight(line, "\n")
	if !bytes.HasPrefix(line, []byte(`{"ts":"`)) || !bytes.HasSuffix(line, []byte("}")) {
		return ""
	}
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return ""
	}
	name := line[i+len(key):]
	j := bytes.IndexByte(name, '"')
	if j <= 0 || bytes.IndexByte(name[:j], '\\') >= 0 {
		return ""
	}
	return string(name[:j])
}

// Leader returns the leader peer i last logged (-1 for none) and when
// that event arrived.
func (c *Cluster) Leader(i int) (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[i]; p != nil {
		return p.leader, p.since
	}
	return -1, time.Time{}
}

// WaitLeader waits until every peer in ids has logged want as its leader
// and returns the latest arrival time of those events.
func (c *Cluster) WaitLeader(ctx context.Context, want int, ids ...int) (time.Time, error) {
	for {
		c.mu.Lock()
		ch := c.changed
		var last time.Time
		done := true
		for _, i := range ids {
			p := c.procs[i]
			if p == nil || isDone(p.exited) {
				c.mu.Unlock()
				return time.Time{}, fmt.Errorf("waiting for leader %d: peer %d: %w", want, i, ErrExited)
			}
			if p.leader != want {
				done = false
				break
			}
			if p.since.After(last) {
				last = p.since
			}
		}
		c.mu.Unlock()
		if done {
			return last, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for leader %d on peers %v: %w (leaders: %v)", want, ids, ctx.Err(), c.leaders())
		}
	}
}

// WaitEvent waits until the current process of peer i has logged an event
// for which match holds, and returns it. match must not call c.
func (c *Cluster) WaitEvent(ctx context.Context, i int, match func(eventlog.Event) bool) (eventlog.Event, error) {
	var found eventlog.Event
	var seen *proc
	next := 0
	err := c.waitProc(ctx, i, func(p *proc) bool {
		if p != seen {
			seen, next = p, 0
		}
		p.decode()
		for ; next < len(p.events); next++ {
			if match(p.events[next]) {
				found = p.events[next]
				return true
			}
		}
		return false
	})
	return found, err
}

// Events returns what the current process of peer i has logged.
func (c *Cluster) Events(i int) []eventlog.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[i]; p != nil {
		p.decode()
		return slices.Clone(p.events)
	}
	return nil
}

func (c *Cluster) leaders() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[int]int{}
	for i, p := range c.procs {
		if p != nil && !isDone(p.exited) {
			m[i] = p.leader
		}
	}
	return m
}
