package layers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/stack"
)

// membership keeps the group's views. The coordinator, the oldest member
// not suspected, changes the view when members join, leave or are
// suspected: it runs a flush (Flush to every surviving member, whose layers
// block and contribute their state on the way down, FlushOk back), then
// sends Install with every contribution to the members of the new view. A
// failure during the flush restarts it; the failure of the coordinator
// hands the flush to the next oldest member.
//
// A member that finds itself alone (everyone else suspected, or excluded by
// the others) carries on in a view of its own and asks its contacts to let
// it in again; merges flow towards the member with the lowest address.
type membership struct {
	retry time.Duration

	me       stack.Member
	stack    string // the ID of this member's stack (stack.Description.ID)
	contacts []string
	former   []string // addresses of the others in the last view this member shared
	view     stack.View
	inView   bool
	maxSeq   uint64 // the highest view sequence number seen
	suspects map[string]bool
	leaving  bool // this member asked to leave
	left     bool

	// Joining (or rejoining from a view of one).
	joining   bool
	joinOnly  bool              // never found the group: give up if no contact answers
	status    map[string]string // contact address → "asked", "unreachable" or "joining"
	why       map[string]string // contact address → why it is unreachable
	nextRetry time.Duration

	// Coordinator.
	joins   []stack.Member
	leavers map[string]bool
	flush   *flushRun
	attempt uint64

	// Member side of a flush.
	answered    stack.FlushID          // the last flush answered
	contributed map[stack.FlushID]bool // the flushes of the view contributed to
	blocked     bool
	orphaned    int           // retries spent waiting for the Install of answered, its coordinator suspected
	blockedAt   time.Duration // when it answered the flush answered
	sleptAt     time.Duration // stack.Ctx.Slept then, or when blockedAt last moved
}

type flushRun struct {
	id       stack.FlushID
	proposal []stack.Member
	wait     map[string]bool
	contribs map[string][][]byte
	tries    int // resends
}

// flushPatience is how many times a flush is sent again to a member that
// does not answer before it is suspected.
const flushPatience = 5

// stuckPatience is how many retry intervals a member waits for the Install
// of a flush it answered, whatever the state of its coordinator, before it
// goes on alone: twice the longest a coordinator takes to send a new
// attempt while it waits for others (flushPatience resends and one more).
const stuckPatience = 2 * (flushPatience + 1)

// Membership message kinds (the first byte of its header).
const (
	gmsData byte = iota
	gmsJoin
	gmsNack
	gmsLeave
	gmsFlush
	gmsFlushOk
	gmsInstall
	gmsProbe
	gmsDissolve
	gmsRefuse
	gmsSuspect
	gmsOtherStack // a join of a member whose stack is not the group's
	gmsContacts   // addresses a member was given (stack.Contacts), for its coordinator to probe
	gmsExcluded   // the next view of the view named was installed without the receiver
)

// gmsDataHdr is the header of every data message (never written to).
var gmsDataHdr = []byte{gmsData}

func newMembership(p stack.Params) stack.Layer {
	return &membership{retry: p.Duration("retry"), suspects: map[string]bool{}, leavers: map[string]bool{}}
}

func (g *membership) Start(c *stack.Ctx) { g.me, g.stack = c.Me(), c.StackID() }

func (g *membership) Deadline() time.Duration {
	d := stack.Never
	if g.retrying() {
		d = g.nextRetry
	}
	if g.stuck() {
		d = min(d, g.blockedAt+stuckPatience*g.retry)
	}
	return d
}

// retrying reports whether the retry timer runs.
func (g *membership) retrying() bool {
	return g.joining || g.flush != nil || g.probing() || g.orphan()
}

// alone reports whether this member is in a view of its own that it may
// merge into a larger group.
func (g *membership) alone() bool {
	return g.inView && len(g.view.Members) == 1 && !g.left
}

// refuseMsg refuses view v: this member is in another.
func refuseMsg(v stack.ViewID) []byte {
	return (&stack.Enc{B: []byte{gmsRefuse}}).ViewID(v).B
}

// maxContacts bounds the contacts a member keeps.
const maxContacts = 64

// addContacts adds addresses to the contacts, up to maxContacts, and
// returns those it added.
func (g *membership) addContacts(addrs []string) []string {
	var added []string
	for _, a := range addrs {
		if len(g.contacts) >= maxContacts {
			break
		}
		if a != "" && a != g.me.Addr && !slices.Contains(g.contacts, a) {
			g.contacts = append(g.contacts, a)
			added = append(added, a)
		}
	}
	return added
}

// targets are the addresses this member probes when it coordinates: its
// contacts and, while alone, the members of the last view it shared, so an
// excluded member finds its way back even if its contacts are gone (or it
// founded the group and has none).
func (g *membership) targets() []string {
	if !g.alone() || len(g.former) == 0 {
		return g.contacts
	}
	out := slices.Clone(g.contacts)
	for _, a := range g.former {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (g *membership) Tick(c *stack.Ctx) {
	if slept := c.Slept() - g.sleptAt; g.stuck() && slept > 0 {
		// This process did not run for that long: its own pause is not
		// its coordinator's silence.
		g.blockedAt += slept
		g.sleptAt += slept
	}
	if g.stuck() && c.Now() >= g.blockedAt+stuckPatience*g.retry {
		// No Install and no new attempt for that long, though its
		// coordinator seems well: the coordinator has moved on to a view
		// made by another flush, whose Install this member lost (a
		// leaving coordinator's, closed with the connection on which it
		// came), and waits for nothing more from it.
		g.abandon(c, eventlog.CauseWaited)
		return
	}
	if !g.retrying() || c.Now() < g.nextRetry {
		return
	}
	g.nextRetry = c.Now() + g.retry
	switch {
	case g.joining:
		g.askToJoin(c)
	case g.flush != nil:
		// Resend to those that have not answered: the Flush may have
		// reached them before the view it flushes. Past patience, they
		// are suspected: a member that heartbeats but never answers
		// (it lost the Install of the view flushed, say, and waits for
		// a flush of the previous one) would block the group for good.
		g.flush.tries++
		for _, m := range g.view.Members {
			if m.ID == g.me.ID || !g.flush.wait[m.ID] {
				continue
			}
			if g.flush.tries > flushPatience {
				c.Log(eventlog.FlushTimeout, eventlog.FieldOf, m.ID, eventlog.FieldAttempt, g.flush.id.Attempt)
				g.suspects[m.ID] = true
				continue
			}
			g.send(c, m, g.flushMsg())
		}
		if g.flush.tries > flushPatience {
			g.maybeFlush(c)
		}
	case g.orphan():
		// The coordinator of the flush this member answered is suspected,
		// and no other coordinator has flushed the view since: it may
		// have sent the Install and gone (a leaver does) before the
		// Install arrived, and the others moved on without this member.
		// Past patience, it goes on alone and asks to be let in again.
		g.orphaned++
		if g.orphaned > flushPatience {
			g.abandon(c, eventlog.CauseSuspected)
		}
	case g.probing():
		// Look for another group of ours among the contacts: the smaller
		// one dissolves into the larger (ties: the lower address wins).
		for _, a := range g.targets() {
			if !slices.ContainsFunc(g.view.Members, func(m stack.Member) bool { return m.Addr == a }) {
				g.send(c, stack.Member{Addr: a}, g.probeMsg())
			}
		}
	}
}

// orphan reports whether this member waits for the Install of a flush
// whose coordinator it suspects, with no other flush of its view since.
func (g *membership) orphan() bool {
	return g.stuck() && g.suspects[g.answered.Coord]
}

// stuck reports whether this member waits for the Install of a flush it
// answered, a flush it does not coordinate itself.
func (g *membership) stuck() bool {
	return g.inView && !g.left && g.blocked && g.flush == nil
}

// abandon gives up the flush this member answered, for cause: it goes on
// alone and asks to be let in again.
func (g *membership) abandon(c *stack.Ctx, cause string) {
	c.Log(eventlog.FlushAbandoned, eventlog.FieldView, g.view.ID.String(), eventlog.FieldOf, g.answered.Coord, eventlog.FieldCause, cause)
	g.install(c, stack.View{ID: g.nextID(), Members: []stack.Member{g.me}}, g.view.ID, nil)
}

// probing reports whether this member, a coordinator at rest, looks for
// other groups to merge with.
func (g *membership) probing() bool {
	return g.atRest() && len(g.targets()) > 0
}

// atRest reports whether this member coordinates a view and changes
// nothing in it: it may merge with another group.
func (g *membership) atRest() bool {
	return g.inView && !g.left && !g.leaving && g.flush == nil && !g.blocked && g.coord() == g.me.ID
}

// probeMsg offers this member's group, of its size and stack, to merge.
func (g *membership) probeMsg() []byte {
	return (&stack.Enc{B: []byte{gmsProbe}}).Uint(uint64(len(g.view.Members))).Str(g.me.Addr).Str(g.stack).B
}

// dissolve ends this member's view to join the group at addr.
func (g *membership) dissolve(c *stack.Ctx, addr string) {
	c.Log(eventlog.Dissolve, eventlog.FieldView, g.view.ID.String(), eventlog.FieldInto, addr)
	g.install(c, stack.View{ID: g.nextID(), Members: []stack.Member{g.me}}, g.view.ID, nil)
	g.send(c, stack.Member{Addr: addr}, g.joinMsg(g.me, g.maxSeq, g.stack))
}

// joinMsg asks to let j, which runs stack st, in. seq is the highest view
// sequence number j has seen: the view that takes it in is numbered above,
// so that the views a member installs are numbered in increasing order,
// whichever group they come from (vsync relies on it to tell a coming view
// from a past one).
func (g *membership) joinMsg(j stack.Member, seq uint64, st string) []byte {
	return (&stack.Enc{B: []byte{gmsJoin}}).Member(j).Uint(seq).Str(st).B
}

// sameStack reports whether stack IDs a and b (stack.Description.ID) name
// the same stack: their hashes are equal. An unknown ID (empty) matches any.
func sameStack(a, b string) bool {
	_, ha, _ := strings.Cut(a, "#")
	_, hb, _ := strings.Cut(b, "#")
	return a == "" || b == "" || ha == hb
}

// stackName formats a stack ID for a sentence: "total" (1a2b3c4d5e6f7a8b).
func stackName(id string) string {
	name, hash, _ := strings.Cut(id, "#")
	return fmt.Sprintf("%q (%s)", name, hash)
}

// askToJoin founds the group if no contact has a group to offer, and asks
// them all otherwise.
func (g *membership) askToJoin(c *stack.Ctx) {
	if g.status != nil && g.joinOnly && len(g.contacts) > 0 && g.unanswered() {
		var why []string
		for _, a := range g.contacts {
			why = append(why, fmt.Sprintf("%s (%s)", a, g.why[a]))
		}
		g.joining = false
		g.leave(c, "no member of the group answered at "+strings.Join(why, ", ")+", and this member may not found it")
		return
	}
	if g.status != nil && (!g.joinOnly || len(g.contacts) == 0) && g.mayFound() {
		c.Log(eventlog.Found)
		g.install(c, stack.View{ID: g.nextID(), Members: []stack.Member{g.me}}, stack.ViewID{}, nil)
		return
	}
	g.status = map[string]string{}
	for _, a := range g.contacts {
		g.status[a] = "asked"
		g.send(c, stack.Member{Addr: a}, g.joinMsg(g.me, g.maxSeq, g.stack))
	}
}

// unanswered reports whether, in the last round, every contact was
// unreachable.
func (g *membership) unanswered() bool {
	for _, a := range g.contacts {
		if g.status[a] != "unreachable" {
			return false
		}
	}
	return true
}

// mayFound reports whether, in the last round, every contact was
// unreachable or itself joining with a higher address: the lowest address
// among those starting together founds the group.
func (g *membership) mayFound() bool {
	for _, a := range g.contacts {
		switch g.status[a] {
		case "unreachable":
		case "joining":
			if a < g.me.Addr {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (g *membership) nextID() stack.ViewID {
	g.maxSeq++
	return stack.ViewID{Seq: g.maxSeq, Coord: g.me.ID}
}

// maxViewSeq bounds the view sequence numbers taken from the network, far
// from overflow.
const maxViewSeq = 1 << 62

// see notes a view sequence number heard of.
func (g *membership) see(seq uint64) {
	if seq > g.maxSeq && seq < maxViewSeq {
		g.maxSeq = seq
	}
}

func (g *membership) coord() string {
	for _, m := range g.view.Members {
		if !g.suspects[m.ID] {
			return m.ID
		}
	}
	return ""
}

func (g *membership) member(id string) stack.Member {
	if i := g.view.Rank(id); i >= 0 {
		return g.view.Members[i]
	}
	for _, m := range g.joins {
		if m.ID == id {
			return m
		}
	}
	return stack.Member{ID: id}
}

func (g *membership) memberOf(v stack.View, id string) stack.Member {
	if i := v.Rank(id); i >= 0 {
		return v.Members[i]
	}
	return stack.Member{ID: id}
}

func (g *membership) send(c *stack.Ctx, to stack.Member, hdr []byte) {
	c.Down(stack.Out{To: to, Msg: stack.Msg{Hdrs: [][]byte{hdr}}})
}

func (g *membership) Down(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case stack.Join:
		g.addContacts(e.Contacts)
		g.joining = true
		g.joinOnly = e.JoinOnly
		g.why = map[string]string{}
		if len(g.contacts) == 0 {
			g.status = map[string]string{}
		}
		g.askToJoin(c)
		g.nextRetry = c.Now() + g.retry
	case stack.Contacts:
		// The coordinator probes its contacts: another member passes
		// them on to it, so two parts of a split group merge though
		// neither coordinator knew of the other.
		g.addContacts(e.Addrs)
		if g.inView && !g.left && g.coord() != g.me.ID && g.coord() != "" && len(e.Addrs) > 0 {
			enc := (&stack.Enc{B: []byte{gmsContacts}}).Uint(uint64(min(len(e.Addrs), maxContacts)))
			for _, a := range e.Addrs[:min(len(e.Addrs), maxContacts)] {
				enc.Str(a)
			}
			g.send(c, g.member(g.coord()), enc.B)
		}
	case stack.Leave:
		g.leaving = true
		switch {
		case !g.inView:
			g.joining = false
			g.leave(c, "left")
		case g.coord() == g.me.ID:
			g.leavers[g.me.ID] = true
			g.maybeFlush(c)
		default:
			g.send(c, g.member(g.coord()), []byte{gmsLeave})
		}
	case stack.BlockOk:
		if e.Flush != g.answered || !g.blocked {
			return
		}
		if g.contributed == nil {
			g.contributed = map[stack.FlushID]bool{}
		}
		g.contributed[e.Flush] = true
		if e.Flush.Coord == g.me.ID {
			g.flushOk(c, g.me.ID, e.Flush, e.Parts)
			return
		}
		enc := (&stack.Enc{B: []byte{gmsFlushOk}}).ViewID(e.Flush.View).Str(e.Flush.Coord).Uint(e.Flush.Attempt)
		enc.Uint(uint64(len(e.Parts)))
		for _, p := range e.Parts {
			enc.Bytes(p)
		}
		g.send(c, g.member(e.Flush.Coord), enc.B)
	case Suspect:
		g.suspect(c, e.ID) // vsync: a gap that did not fill
	case stack.Out:
		c.Down(stack.Out{To: e.To, Msg: e.Msg.Push(gmsDataHdr)})
	case stack.Multicast:
		c.Down(stack.Multicast{To: e.To, Msg: e.Msg.Push(gmsDataHdr)})
	default:
		c.Down(ev)
	}
}

func (g *membership) Up(c *stack.Ctx, ev stack.Event) {
	switch e := ev.(type) {
	case stack.Recv:
		g.recv(c, e)
	case Suspect:
		g.suspect(c, e.ID)
	case stack.Lost:
		if g.joining && e.ID == "" {
			if _, ok := g.status[e.Addr]; ok {
				g.status[e.Addr] = "unreachable"
				g.why[e.Addr] = e.Reason
			}
		}
	default:
		c.Up(ev)
	}
}

// suspect acts on a suspicion of member id, from detect below or vsync
// above: the coordinator excludes it at its next flush; any other member
// reports it to the coordinator.
func (g *membership) suspect(c *stack.Ctx, id string) {
	if !g.inView || !g.view.Has(id) {
		return
	}
	wasCoord := g.coord()
	g.suspects[id] = true
	if g.coord() == "" {
		return
	}
	// The coordinator decides: tell it, or the new one everything.
	switch c2 := g.coord(); {
	case c2 == g.me.ID:
	case c2 != wasCoord:
		for _, m := range g.view.Members {
			if g.suspects[m.ID] {
				g.send(c, g.member(c2), (&stack.Enc{B: []byte{gmsSuspect}}).Str(m.ID).B)
			}
		}
	default:
		g.send(c, g.member(c2), (&stack.Enc{B: []byte{gmsSuspect}}).Str(id).B)
	}
	if g.leaving && g.coord() != wasCoord && g.coord() != g.me.ID {
		g.send(c, g.member(g.coord()), []byte{gmsLeave})
	}
	if g.leaving && g.coord() == g.me.ID {
		g.leavers[g.me.ID] = true
	}
	g.maybeFlush(c)
}

func (g *membership) recv(c *stack.Ctx, e stack.Recv) {
	h, rest, ok := e.Msg.Pop()
	if !ok || len(h) == 0 || e.From.ID == g.me.ID || e.From.ID == "" {
		// A member never hears from itself through the network: a
		// message that claims to would make it act on its own behalf
		// (a Leave from itself, say, would exclude it from every view).
		c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From.ID, eventlog.FieldLayer, "membership")
		return
	}
	d := &stack.Dec{B: h[1:]}
	switch h[0] {
	case gmsData:
		c.Up(stack.Recv{From: e.From, Msg: rest})
		return
	case gmsJoin:
		j, seq, st := d.Member(), d.Uint(), d.Str()
		if d.Done() != nil || j.ID == "" {
			break
		}
		g.onJoin(c, j, seq, st)
		return
	case gmsOtherStack:
		st := d.Str()
		if d.Done() != nil {
			break
		}
		if g.joining && !g.inView && !sameStack(st, g.stack) {
			g.joining = false
			g.leave(c, fmt.Sprintf("the group runs stack %s, this member stack %s", stackName(st), stackName(g.stack)))
		}
		return
	case gmsNack:
		if d.Done() == nil && g.joining {
			g.status[e.From.Addr] = "joining"
		}
		return
	case gmsLeave:
		if d.Done() == nil && g.inView && g.view.Has(e.From.ID) {
			g.leavers[e.From.ID] = true
			g.maybeFlush(c)
		}
		return
	case gmsFlush:
		id := stack.FlushID{View: d.ViewID(), Coord: e.From.ID, Attempt: d.Uint()}
		if d.Done() != nil {
			break
		}
		if g.inView && !g.left && id.View != g.view.ID && id.View.Seq <= g.view.ID.Seq {
			// A view this member has left (views are numbered in
			// increasing order along a member's life): the flusher
			// waits for it in vain. It must go on without it.
			g.send(c, e.From, refuseMsg(id.View))
			return
		}
		if !g.inView || id.View != g.view.ID || g.suspects[e.From.ID] || !g.view.Has(e.From.ID) {
			return
		}
		g.answered = id
		g.blocked = true
		g.orphaned = 0
		g.blockedAt, g.sleptAt = c.Now(), c.Slept()
		c.Up(stack.Block{Flush: id})
		return
	case gmsFlushOk:
		id := stack.FlushID{View: d.ViewID(), Coord: d.Str(), Attempt: d.Uint()}
		n := d.Count(1)
		parts := make([][]byte, 0, n)
		for range n {
			parts = append(parts, d.Bytes())
		}
		if d.Done() != nil {
			break
		}
		g.flushOk(c, e.From.ID, id, parts)
		return
	case gmsProbe:
		size, addr, st := d.Uint(), d.Str(), d.Str()
		if d.Done() != nil {
			break
		}
		// The prober is known by the address it gives, not by who sent
		// the probe: a member passes a probe on to its coordinator.
		ours := slices.ContainsFunc(g.view.Members, func(m stack.Member) bool { return m.Addr == addr })
		switch {
		case !sameStack(st, g.stack): // another group of the same name: never one
		case ours || !g.atRest():
			if g.inView && !g.left && g.coord() != g.me.ID && g.coord() != "" && !ours {
				g.send(c, g.member(g.coord()), h) // forward to the coordinator
			}
		case addr == g.me.Addr:
		case size < uint64(len(g.view.Members)) || size == uint64(len(g.view.Members)) && addr > g.me.Addr:
			// The prober's group is to dissolve into this one. Unless
			// this member probes it anyway, answer with a probe: the
			// prober may have no other way to learn of this group (its
			// founder, say, had no contacts, and probes nobody).
			if !slices.Contains(g.targets(), addr) {
				g.send(c, stack.Member{Addr: addr}, g.probeMsg())
			}
		default:
			dis := (&stack.Enc{B: []byte{gmsDissolve}}).Str(addr).B
			for _, m := range g.view.Members {
				if m.ID != g.me.ID {
					g.send(c, m, dis)
				}
			}
			g.dissolve(c, addr)
		}
		return
	case gmsRefuse:
		// A member we installed is in another view: exclude it. The
		// refusal names the view it refuses (the one flushed, or the one
		// it was taken into): one of a view this member has since left
		// is stale (a flush it started, then gave up for another's
		// Install) and excludes nobody.
		vid := d.ViewID()
		if d.Done() == nil && g.inView && g.view.ID == vid && g.view.Has(e.From.ID) && !g.suspects[e.From.ID] {
			c.Log(eventlog.Refused, eventlog.FieldOf, e.From.ID)
			g.suspects[e.From.ID] = true
			g.maybeFlush(c)
		}
		return
	case gmsContacts:
		n := d.Count(1)
		addrs := make([]string, 0, min(n, maxContacts))
		for range n {
			addrs = append(addrs, d.Str())
		}
		if d.Done() != nil {
			break
		}
		if g.inView && !g.left && g.view.Has(e.From.ID) {
			g.addContacts(addrs)
		}
		return
	case gmsExcluded:
		vid := d.ViewID()
		if d.Done() != nil {
			break
		}
		// A member of this view installed the next one without this
		// member: it is out, and others no longer listen to it. It goes
		// on alone at once and asks to be let in again, rather than
		// talk to nobody until it suspects them all by their silence.
		if g.inView && !g.left && !g.leaving && g.view.ID == vid && g.view.Has(e.From.ID) && !g.alone() {
			c.Log(eventlog.FlushAbandoned, eventlog.FieldView, g.view.ID.String(), eventlog.FieldOf, e.From.ID, eventlog.FieldCause, eventlog.CauseExcluded)
			g.install(c, stack.View{ID: g.nextID(), Members: []stack.Member{g.me}}, g.view.ID, nil)
		}
		return
	case gmsSuspect:
		// A member suspects another: the coordinator excludes it, unless
		// the member is itself suspected (a cut between two members
		// makes each suspect the other: one goes).
		id := d.Str()
		if d.Done() != nil {
			break
		}
		if g.inView && !g.left && g.coord() == g.me.ID && g.view.Has(e.From.ID) && !g.suspects[e.From.ID] &&
			id != g.me.ID && g.view.Has(id) && !g.suspects[id] {
			c.Log(eventlog.SuspectReport, eventlog.FieldOf, id, eventlog.FieldBy, e.From.ID)
			g.suspects[id] = true
			g.maybeFlush(c)
		}
		return
	case gmsDissolve:
		addr := d.Str()
		if d.Done() != nil {
			break
		}
		if g.inView && !g.left && e.From.ID == g.coord() && !g.blocked {
			g.dissolve(c, addr)
		}
		return
	case gmsInstall:
		id := stack.FlushID{View: d.ViewID(), Coord: e.From.ID, Attempt: d.Uint()}
		v := stack.View{ID: d.ViewID(), Members: d.Members()}
		n := d.Count(2)
		contribs := make([]stack.Contrib, 0, n)
		for range n {
			ct := stack.Contrib{From: d.Str()}
			k := d.Count(1)
			for range k {
				ct.Parts = append(ct.Parts, d.Bytes())
			}
			contribs = append(contribs, ct)
		}
		if d.Done() != nil || v.ID.Coord != e.From.ID || !wellFormed(v) {
			break
		}
		g.onInstall(c, id, v, contribs)
		return
	}
	c.Log(eventlog.BadMsg, eventlog.FieldFrom, e.From.ID, eventlog.FieldLayer, "membership", eventlog.FieldKind, int(h[0]))
}

func (g *membership) onJoin(c *stack.Ctx, j stack.Member, seq uint64, st string) {
	switch {
	case g.left:
	case !sameStack(st, g.stack):
		// It would be taken in, then excluded at its first message.
		c.Log(eventlog.JoinRefused, eventlog.FieldOf, j.ID, eventlog.FieldAddr, j.Addr, eventlog.FieldStack, st)
		g.send(c, j, (&stack.Enc{B: []byte{gmsOtherStack}}).Str(g.stack).B)
		return
	}
	g.see(seq)
	switch {
	case g.left:
	case !g.inView:
		g.send(c, j, []byte{gmsNack}) // no group to offer
	case g.view.Has(j.ID):
	case g.coord() == g.me.ID:
		if !slices.ContainsFunc(g.joins, func(m stack.Member) bool { return m.ID == j.ID }) {
			g.joins = append(g.joins, j)
			c.Log(eventlog.JoinRequest, eventlog.FieldOf, j.ID, eventlog.FieldAddr, j.Addr)
		}
		g.maybeFlush(c)
	default:
		g.send(c, g.member(g.coord()), g.joinMsg(j, seq, st))
	}
}
