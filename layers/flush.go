package layers

import (
	"slices"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/stack"
)

// maybeFlush starts (or restarts) a view change if this member is the
// coordinator and the view should change.
func (g *membership) maybeFlush(c *stack.Ctx) {
	if !g.inView || g.coord() != g.me.ID {
		return
	}
	var survivors, proposal []stack.Member
	for _, m := range g.view.Members {
		if g.suspects[m.ID] {
			continue
		}
		survivors = append(survivors, m)
		if !g.leavers[m.ID] {
			proposal = append(proposal, m)
		}
	}
	for _, m := range g.joins {
		if !g.view.Has(m.ID) {
			proposal = append(proposal, m)
		}
	}
	if len(survivors) == len(g.view.Members) && len(proposal) == len(g.view.Members) {
		return // nothing to change
	}
	if g.flush != nil && slices.Equal(g.flush.proposal, proposal) && len(g.flush.wait) <= len(survivors) {
		still := true
		for id := range g.flush.wait {
			if g.suspects[id] {
				still = false
			}
		}
		if still {
			return
		}
	}
	g.attempt++
	f := &flushRun{id: stack.FlushID{View: g.view.ID, Coord: g.me.ID, Attempt: g.attempt}, proposal: proposal,
		wait: map[string]bool{}, contribs: map[string][][]byte{}}
	for _, m := range survivors {
		f.wait[m.ID] = true
	}
	g.flush = f
	c.Log(eventlog.Flush, eventlog.FieldView, g.view.ID.String(), eventlog.FieldAttempt, g.attempt, eventlog.FieldProposal, ids(proposal))
	g.nextRetry = c.Now() + g.retry
	for _, m := range survivors {
		if m.ID != g.me.ID {
			g.send(c, m, g.flushMsg())
		}
	}
	g.answered = f.id
	g.blocked = true
	c.Up(stack.Block{Flush: f.id})
}

func (g *membership) flushMsg() []byte {
	return (&stack.Enc{B: []byte{gmsFlush}}).ViewID(g.flush.id.View).Uint(g.flush.id.Attempt).B
}

func (g *membership) flushOk(c *stack.Ctx, from string, id stack.FlushID, parts [][]byte) {
	f := g.flush
	if f == nil || f.id != id || !f.wait[from] {
		return
	}
	delete(f.wait, from)
	f.contribs[from] = parts
	if len(f.wait) > 0 {
		return
	}
	v := stack.View{ID: g.nextID(), Members: f.proposal}
	var contribs []stack.Contrib
	for _, m := range g.view.Members {
		if p, ok := f.contribs[m.ID]; ok {
			contribs = append(contribs, stack.Contrib{From: m.ID, Parts: p})
		}
	}
	enc := (&stack.Enc{B: []byte{gmsInstall}}).ViewID(id.View).Uint(id.Attempt).ViewID(v.ID).Members(v.Members)
	enc.Uint(uint64(len(contribs)))
	for _, ct := range contribs {
		enc.Str(ct.From).Uint(uint64(len(ct.Parts)))
		for _, p := range ct.Parts {
			enc.Bytes(p)
		}
	}
	for _, m := range v.Members {
		if m.ID != g.me.ID {
			g.send(c, m, enc.B)
		}
	}
	var out []byte
	for _, m := range g.view.Members {
		_, ok := f.contribs[m.ID]
		switch {
		case m.ID == g.me.ID || v.Has(m.ID):
		case ok:
			g.send(c, m, enc.B) // leavers learn they are out
		default:
			// An excluded member learns it is out, if it can hear.
			if out == nil {
				out = (&stack.Enc{B: []byte{gmsExcluded}}).ViewID(g.view.ID).B
			}
			g.send(c, m, out)
		}
	}
	g.onInstall(c, id, v, contribs)
}

func (g *membership) onInstall(c *stack.Ctx, id stack.FlushID, v stack.View, contribs []stack.Contrib) {
	g.see(v.ID.Seq)
	switch {
	case g.left:
		return
	case g.inView && !g.alone() || g.inView && g.blocked:
		// Any flush of the view this member contributed to will do: it
		// has delivered nothing since its first contribution, and the
		// Install carries its contribution to this one, as it does to
		// every member that installs the view.
		if !g.contributed[id] || !g.blocked {
			if v.Has(g.me.ID) && id.View != g.view.ID {
				// Taken in by a group this member does not belong to
				// (it asked several while joining): say so.
				g.send(c, g.memberOf(v, v.ID.Coord), refuseMsg(v.ID))
			}
			return // not the flush this member took part in
		}
	case !v.Has(g.me.ID):
		return
	case g.inView && v.ID.Seq <= g.view.ID.Seq:
		// Taken in by a view numbered below the one this member is in:
		// it asked to join, then went on to views of its own. View
		// numbers increase along a member's life (vsync tells a coming
		// view from a past one by them): refuse, so the coordinator
		// excludes it, and ask again with the number it has reached.
		g.send(c, g.memberOf(v, v.ID.Coord), refuseMsg(v.ID))
		return
	default:
		// Joining, or merging from a view of one: the previous view's
		// messages are not this member's business.
		contribs = nil
	}
	if !v.Has(g.me.ID) {
		if g.leaving {
			g.leave(c, "left")
			return
		}
		// Excluded: carry on alone and ask to be let in again.
		c.Log(eventlog.Excluded, eventlog.FieldView, v.ID.String())
		g.install(c, stack.View{ID: g.nextID(), Members: []stack.Member{g.me}}, g.view.ID, nil)
		return
	}
	g.install(c, v, g.view.ID, contribs)
}

func (g *membership) install(c *stack.Ctx, v stack.View, prev stack.ViewID, contribs []stack.Contrib) {
	if len(v.Members) > 1 {
		g.former = g.former[:0]
		for _, m := range v.Members {
			if m.ID != g.me.ID && m.Addr != "" && m.Addr != g.me.Addr {
				g.former = append(g.former, m.Addr)
			}
		}
	}
	g.view = v
	g.inView = true
	g.joining = false
	g.status = nil
	g.blocked = false
	g.answered = stack.FlushID{}
	g.orphaned = 0
	clear(g.contributed)
	g.flush = nil
	for id := range g.suspects {
		if !v.Has(id) {
			delete(g.suspects, id)
		}
	}
	for id := range g.leavers {
		if !v.Has(id) {
			delete(g.leavers, id)
		}
	}
	g.joins = slices.DeleteFunc(g.joins, func(m stack.Member) bool { return v.Has(m.ID) })
	var others []stack.Member
	for _, m := range v.Members {
		if m.ID != g.me.ID {
			others = append(others, m)
		}
	}
	c.Down(Watch{Members: others})
	c.Up(stack.Install{View: v, Prev: prev, Contribs: contribs})
	g.nextRetry = c.Now() + g.retry
	// A suspicion reported to a member that was not yet coordinator was
	// dropped: tell the coordinator of the new view, or the two members
	// stay in the group together, unable to talk.
	if c2 := g.coord(); c2 != "" && c2 != g.me.ID {
		for _, m := range v.Members {
			if g.suspects[m.ID] {
				g.send(c, g.member(c2), (&stack.Enc{B: []byte{gmsSuspect}}).Str(m.ID).B)
			}
		}
	}
	if g.leaving && g.coord() == g.me.ID {
		g.leavers[g.me.ID] = true
	}
	if g.leaving && g.coord() != g.me.ID {
		g.send(c, g.member(g.coord()), []byte{gmsLeave})
	}
	g.maybeFlush(c)
}

func (g *membership) leave(c *stack.Ctx, reason string) {
	g.left = true
	g.inView = false
	c.Down(Watch{})
	c.Up(stack.Left{Reason: reason})
}

// wellFormed reports whether a view received from the network can be
// installed: it has members, each with an ID, none twice.
func wellFormed(v stack.View) bool {
	if len(v.Members) == 0 || v.ID.Seq >= maxViewSeq {
		return false
	}
	seen := make(map[string]bool, len(v.Members))
	for _, m := range v.Members {
		if m.ID == "" || seen[m.ID] {
			return false
		}
		seen[m.ID] = true
	}
	return true
}

func ids(ms []stack.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}
