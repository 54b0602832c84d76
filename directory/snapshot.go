package directory

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/conclave/conclave/stack"
)

// snapshotMagic and snapshotVersion begin every snapshot. Version 3 adds
// moves and the clients' reports to version 1; Restore still reads
// version 1 (the snapshots of directories before them), and Snapshot
// writes version 3.
const (
	snapshotMagic   = "cdir"
	snapshotVersion = 3
)

// Snapshot encodes the whole state. The encoding is canonical: equal
// states give equal bytes, and Restore accepts nothing else of version 3,
// so that Snapshot after Restore gives back the bytes restored.
//
// Layout (numbers are minimal uvarints, strings and byte strings are
// length-prefixed, lists are count-prefixed):
//
//	"cdir" version(3) max-groups max-sessions move-spacing+1 applied last-move
//	QoS, by hash:        hash name xml
//	groups, g0 first:    qos-hash contacts
//	topics, by name:     name group publishers subscribers moves [from at switching following pending]
//	sessions, by client: client seq index result
//	reports, by client:  client index millis (topic delivered filtered)*, by topic
//
// Version 1 had no move-spacing, last-move, moves (and what follows them)
// nor reports.
func (s *State) Snapshot() []byte {
	e := enc{b: make([]byte, 0, 256)}
	e.b = append(e.b, snapshotMagic...)
	e.byte(snapshotVersion)
	e.uint(uint64(s.cfg.MaxGroups))
	e.uint(uint64(s.cfg.MaxSessions))
	e.uint(uint64(s.cfg.MoveSpacing + 1))
	e.uint(s.applied)
	e.uint(s.lastMove)
	e.uint(uint64(len(s.qos)))
	for _, h := range slices.Sorted(maps.Keys(s.qos)) {
		q := s.qos[h]
		e.str(q.hash)
		e.str(q.name)
		e.bytes(q.xml)
	}
	e.uint(uint64(len(s.groups)))
	for _, g := range s.groups {
		e.str(g.qos)
		e.strs(g.contacts)
	}
	e.uint(uint64(len(s.topics)))
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		t := s.topics[name]
		e.str(name)
		e.uint(uint64(t.group))
		e.strs(keys(t.pubs))
		e.strs(keys(t.subs))
		e.uint(t.moves)
		if t.moves > 0 {
			e.uint(uint64(t.from))
			e.uint(t.at)
			e.strs(keys(t.switching))
			e.strs(keys(t.following))
			e.strs(keys(t.pending))
		}
	}
	e.uint(uint64(len(s.sessions)))
	for _, c := range slices.Sorted(maps.Keys(s.sessions)) {
		ss := s.sessions[c]
		e.str(c)
		e.uint(ss.seq)
		e.uint(ss.index)
		ss.result.append(&e)
	}
	s.appendReports(&e)
	return e.b
}

// Restore replaces the state with the one snap encodes. It refuses,
// leaving the state as it was, a snapshot that is not one Snapshot could
// have written for this configuration: another MaxGroups or MaxSessions, a
// QoS whose XML does not give its hash, lists out of order, references to
// nothing, bytes left over. It never panics.
func (s *State) Restore(snap []byte) error {
	n, err := s.decodeSnapshot(snap)
	if err != nil {
		return fmt.Errorf("directory snapshot: %w", err)
	}
	if err := n.CheckInvariants(); err != nil {
		return fmt.Errorf("directory snapshot: %w", err)
	}
	s.applied, s.lastMove, s.qos, s.groups, s.topics, s.sessions, s.reports = n.applied, n.lastMove, n.qos, n.groups, n.topics, n.sessions, n.reports
	return nil
}

func (s *State) decodeSnapshot(snap []byte) (*State, error) {
	if !bytes.HasPrefix(snap, []byte(snapshotMagic)) {
		return nil, fmt.Errorf("not a directory snapshot (it does not begin with %q)", snapshotMagic)
	}
	d := dec{b: snap[len(snapshotMagic):]}
	version := d.byte("version")
	if d.err == nil && version != 1 && version != snapshotVersion {
		return nil, fmt.Errorf("snapshot of version %d; this directory knows versions 1 and %d", version, snapshotVersion)
	}
	v1 := version == 1
	mg, ms := d.uint("max groups"), d.uint("max sessions")
	sp := uint64(s.cfg.MoveSpacing + 1)
	if !v1 {
		sp = d.uint("move spacing")
	}
	if d.err == nil && (mg != uint64(s.cfg.MaxGroups) || ms != uint64(s.cfg.MaxSessions) || sp != uint64(s.cfg.MoveSpacing+1)) {
		return nil, fmt.Errorf("taken with %d groups, %d sessions and move spacing %d; this directory is configured for %d, %d and %d",
			mg, ms, int64(sp)-1, s.cfg.MaxGroups, s.cfg.MaxSessions, s.cfg.MoveSpacing)
	}
	n := &State{cfg: s.cfg, reg: s.reg, shipped: s.shipped}
	n.reset()
	n.applied = d.uint("applied index")
	if !v1 {
		n.lastMove = d.uint("last move")
	}
	if d.err == nil && n.lastMove > n.applied {
		return nil, fmt.Errorf("last move at index %d, after the applied index %d", n.lastMove, n.applied)
	}

	// QoS
	prev := ""
	for i, count := 0, d.count("QoS", 3, s.cfg.MaxGroups); i < count && d.err == nil; i++ {
		q := qos{hash: d.str("QoS hash", MaxName), name: d.str("QoS name", MaxName), xml: d.bytes("QoS XML", stack.MaxDescription)}
		if d.err != nil {
			break
		}
		if i > 0 && q.hash <= prev {
			return nil, fmt.Errorf("QoS %s listed after %s", q.hash, prev)
		}
		prev = q.hash
		p, err := n.parseQoS("snapshot", q.xml)
		if err != nil {
			return nil, fmt.Errorf("QoS %s: %w", q.hash, err)
		}
		if p.hash != q.hash || p.name != q.name || !bytes.Equal(p.xml, q.xml) {
			return nil, fmt.Errorf("QoS %s: its XML is the canonical form of %s (hash %s)", q.hash, p.name, p.hash)
		}
		n.qos[q.hash] = &q
	}

	// groups
	if count := d.count("groups", 2, s.cfg.MaxGroups); d.err == nil && count != s.cfg.MaxGroups {
		return nil, fmt.Errorf("%d groups listed; %d expected", count, s.cfg.MaxGroups)
	}
	for i := 0; i < s.cfg.MaxGroups && d.err == nil; i++ {
		g := &n.groups[i]
		g.qos = d.str("group QoS", MaxName)
		g.contacts = d.strs("contacts", MaxContacts, MaxName)
		if d.err == nil && !strictlySorted(g.contacts) {
			return nil, fmt.Errorf("group %s: contacts not sorted, repeated or empty", groupName(i))
		}
		if _, ok := n.qos[g.qos]; d.err == nil && g.qos != "" && !ok {
			return nil, fmt.Errorf("group %s carries QoS %s, which is not listed", groupName(i), g.qos)
		}
	}

	// topics
	prev = ""
	for i, count := 0, d.count("topics", 5, len(snap)); i < count && d.err == nil; i++ {
		name := d.str("topic", MaxName)
		gi := d.uint("topic group")
		pubs := d.strs("publishers", len(snap), MaxName)
		subs := d.strs("subscribers", len(snap), MaxName)
		var moves, from, at uint64
		if !v1 {
			moves = d.uint("moves")
		}
		var switching, following, pending []string
		if moves > 0 {
			from, at = d.uint("moved from"), d.uint("moved at")
			switching = d.strs("switching publishers", len(snap), MaxName)
			following = d.strs("following subscribers", len(snap), MaxName)
			pending = d.strs("pending publishers", len(snap), MaxName)
		}
		switch {
		case d.err != nil:
		case name == "" || i > 0 && name <= prev:
			return nil, fmt.Errorf("topic %q listed after %q", name, prev)
		case gi >= uint64(len(n.groups)) || n.groups[gi].qos == "":
			return nil, fmt.Errorf("topic %q in group %d, which is not a group carrying a QoS", name, gi)
		case !strictlySorted(pubs) || !strictlySorted(subs) || !strictlySorted(switching) || !strictlySorted(following) || !strictlySorted(pending):
			return nil, fmt.Errorf("topic %q: clients not sorted, repeated or empty", name)
		case moves > 0 && (from >= uint64(len(n.groups)) || from == gi || n.groups[from].qos != n.groups[gi].qos):
			return nil, fmt.Errorf("topic %q moved from group %d, which is not another group of its QoS", name, from)
		case moves > 0 && (at == 0 || at > n.lastMove):
			return nil, fmt.Errorf("topic %q moved at index %d, not within the last move's index %d", name, at, n.lastMove)
		default:
			prev = name
			t := n.addTopic(name, *n.qos[n.groups[gi].qos], int(gi))
			for _, c := range pubs {
				n.interest(t, c, false, true)
			}
			for _, c := range subs {
				n.interest(t, c, true, true)
			}
			t.moves, t.from, t.at = moves, int(from), at
			for _, c := range switching {
				t.switching[c] = struct{}{}
			}
			for _, c := range following {
				t.following[c] = struct{}{}
			}
			for _, c := range pending {
				t.pending[c] = struct{}{}
			}
		}
	}

	// sessions
	prev = ""
	for i, count := 0, d.count("sessions", 10, s.cfg.MaxSessions); i < count && d.err == nil; i++ {
		c := d.str("client", MaxName)
		ss := &session{seq: d.uint("sequence number"), index: d.uint("session index")}
		ss.result = readResult(&d, !v1)
		switch {
		case d.err != nil:
		case c == "" || i > 0 && c <= prev:
			return nil, fmt.Errorf("client %q listed after %q", c, prev)
		default:
			prev = c
			n.sessions[c] = ss
		}
	}
	if !v1 && d.err == nil {
		if err := n.readReports(&d); err != nil {
			return nil, err
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return n, nil
}

// strictlySorted reports whether ss is sorted, without repeats or empty
// strings.
func strictlySorted(ss []string) bool {
	for i, s := range ss {
		if s == "" || i > 0 && s <= ss[i-1] {
			return false
		}
	}
	return true
}
