package adversary

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conclave/conclave/check"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
	"github.com/conclave/conclave/stack"
	"github.com/conclave/conclave/transport"
	"github.com/conclave/conclave/wire"
)

// groupName is the group the members of TestOutsidersCannotJoinSplitOrForge
// form.
const groupName = "club"

// env returns the environment without the variables named.
func env(without ...string) []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(without, k)
	})
}

// lastView returns the full ids, by name (m<i>), of the members of the
// last view member i logged, and that view's id.
func lastView(c *launch.Cluster, i int) (map[string]string, stack.ViewID) {
	vs := eventsOf(c, i, eventlog.View, nil)
	if len(vs) == 0 {
		return nil, stack.ViewID{}
	}
	e := vs[len(vs)-1]
	ids := map[string]string{}
	ms, _ := e.Fields[eventlog.FieldMembers].([]any)
	for _, m := range ms {
		id, _ := m.(string)
		name, _, _ := strings.Cut(id, ".")
		ids[name] = id
	}
	seq, coord, _ := strings.Cut(e.Str(eventlog.FieldView), "@")
	s, _ := strconv.ParseUint(seq, 10, 64)
	return ids, stack.ViewID{Seq: s, Coord: coord}
}

// The frames an outsider forges, shaped as the layers of the total stack
// (detect, membership, vsync, total, bottom first) encode their messages:
// a message's headers are listed top layer first. The header bytes are
// those of package layers; the point is that no member ever parses them,
// for they come on a connection that has not proved the key.
const (
	detectData  = 0 // layers/detect.go
	gmsData     = 0 // layers/membership.go
	gmsLeave    = 3
	gmsDissolve = 8
	gmsSuspect  = 10
	vsData      = 0 // layers/vsync.go
	totData     = 0 // layers/total.go
)

// forgedGroupFrames are what issue 9 sent as an outsider: a data message
// numbered 1,000,000 in the current view (which froze deliveries), a data
// message with the attacker's content, a Leave and a Suspect (which
// excluded members) and a Dissolve towards the attacker (which moved
// members under its coordinator); every frame carries Lamport clock 2⁶³.
func forgedGroupFrames(view stack.ViewID, victim, attacker string) []wire.Frame {
	data := func(seq uint64, text string) stack.Msg {
		vs := (&stack.Enc{B: []byte{vsData}}).ViewID(view).Uint(seq).Uint(0).B
		return stack.Msg{Hdrs: [][]byte{{totData}, vs, {gmsData}, {detectData}}, Data: []byte(text)}
	}
	ctl := func(hdr []byte) stack.Msg { return stack.Msg{Hdrs: [][]byte{hdr, {detectData}}} }
	msgs := []stack.Msg{
		data(1_000_000, "forged: a gap that never fills"),
		data(1, "forged: the attacker's content"),
		ctl([]byte{gmsLeave}),
		ctl((&stack.Enc{B: []byte{gmsSuspect}}).Str(victim).B),
		ctl((&stack.Enc{B: []byte{gmsDissolve}}).Str(attacker).B),
	}
	var fs []wire.Frame
	for _, m := range msgs {
		fs = append(fs, wire.GroupMsg{LC: 1 << 63, Data: stack.AppendMsg(nil, m)})
	}
	return fs
}

// groupHello is a Hello claiming member from (at addr) of the group, to
// member to.
func groupHello(from, addr, to string, lc uint64) wire.Hello {
	return wire.Hello{Version: wire.Version, Kind: wire.KindGroup, Scope: groupName, From: from, Addr: addr, To: to, LC: lc, Nonce: nonce()}
}

// TestOutsidersCannotJoinSplitOrForge runs three real members of a group
// with the total stack under steady traffic, and attacks them as issue 9
// did: `conclave group` processes that join through the members, without
// the key and with another; raw connections claiming a member's id,
// closed at once; forged data, Leave, Suspect and Dissolve messages sent
// without authenticating. The outsiders never enter the members' views
// and deliver only their own messages; the members never deliver a
// forged message, install no new view (nothing split), and go on
// delivering; check.Group passes on their merged logs.
func TestOutsidersCannotJoinSplitOrForge(t *testing.T) {
	ctx := timeout(t, 60*time.Second)
	const n = 3
	root := t.TempDir()
	dir, odir := filepath.Join(root, "members"), filepath.Join(root, "outsiders")
	must(t, os.Mkdir(odir, 0o755))
	t.Cleanup(func() {
		if t.Failed() {
			launchtest.Keep(t, root)
		}
	})
	c, err := launch.Start(launch.Config{Binary: bin, N: n, Dir: dir, Stdin: true, Args: launch.GroupArgs(groupName, "total", dir)})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	names := []string{"m0", "m1", "m2"}
	must(t, c.StartPeer(0))
	must(t, c.WaitOutput(ctx, 0, "joined group"))
	for i := 1; i < n; i++ {
		must(t, c.StartPeer(i))
	}
	for i := range n {
		must(t, c.WaitView(ctx, i, names...))
	}
	ids, view := lastView(c, 0)
	viewCounts := func() []int {
		var k []int
		for i := range n {
			k = append(k, len(eventsOf(c, i, eventlog.View, nil)))
		}
		return k
	}
	before := viewCounts()
	tr := launch.NewTraffic()
	defer func() {
		if tr != nil {
			tr.Stop()
		}
	}()
	for i := range n {
		tr.Send(c, i, names[i], 5*time.Millisecond)
	}
	for i := range n {
		must(t, c.WaitDelivered(ctx, i, fmt.Sprintf("m%d-20", (i+1)%n)))
	}
	t.Logf("members %v in view %s, each sending a message every 5 ms", ids, view)

	// Outsiders: conclave group processes, without the key and with another.
	// With --found they go on alone once refused (without it they exit,
	// saying no member answered them).
	otherKey := filepath.Join(odir, "other.key")
	must(t, transport.WriteKeyFile(otherKey, transport.NewKey()))
	o, err := launch.Start(launch.Config{Binary: bin, N: 2, Dir: odir, Stdin: true, Unauthenticated: true,
		Args: func(i int, _ []string) []string {
			return []string{"group", "--group", groupName, "--stack", "total", "--contacts", strings.Join(c.Addrs(), ","),
				"--member", fmt.Sprintf("outsider%d", i), "--log-dir", odir, "--log-deliveries", "--found"}
		},
		Command: func(i int, args []string) *exec.Cmd {
			if i == 1 {
				args = append(args, "--key-file", otherKey)
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = env("CONCLAVE_KEY_FILE")
			return cmd
		}})
	must(t, err)
	t.Cleanup(func() { o.Close() })
	outsiders := []string{"outsider0 (no key)", "outsider1 (another key)"}
	for i := range 2 {
		must(t, o.StartPeer(i))
	}
	otr := launch.NewTraffic()
	for i := range 2 {
		if err := o.WaitOutput(ctx, i, "joined group"); err != nil {
			t.Fatalf("%s: %v; it printed %q", outsiders[i], err, o.Output(i))
		}
		if err := o.WaitView(ctx, i, fmt.Sprintf("outsider%d", i)); err != nil {
			t.Errorf("%s: %v", outsiders[i], err)
		}
		otr.Send(o, i, fmt.Sprintf("outsider%d", i), 5*time.Millisecond)
	}
	for i := range 2 {
		must(t, o.WaitDelivered(ctx, i, fmt.Sprintf("outsider%d-50", i)))
	}
	otr.Stop()
	// Each member refused both, for want of a proof, and said so.
	for i, why := range []string{"no proof of the cluster key", "no proof of the cluster key"} {
		if len(eventsOf(o, i, eventlog.DialFailed, func(e eventlog.Event) bool { return strings.Contains(e.Str(eventlog.FieldError), why) })) == 0 {
			t.Errorf("%s logged no failed dial naming %q", outsiders[i], why)
		}
	}
	for i := range n {
		waitRefusals(t, c, i, eventlog.ConnRefused, 2)
	}
	for i := range 2 {
		for _, e := range eventsOf(o, i, eventlog.Deliver, nil) {
			if !strings.HasPrefix(e.Str(eventlog.FieldFrom), fmt.Sprintf("outsider%d.", i)) {
				t.Errorf("%s delivered a member's message: %s", outsiders[i], eventlog.Format(e))
				break
			}
		}
		t.Logf("%s joined through the members' addresses: it stayed alone in its own view and delivered only its own %d messages", outsiders[i], len(eventsOf(o, i, eventlog.Deliver, nil)))
	}
	must(t, o.Close())

	// Raw connections claiming m1's id, closed at once.
	addrs := c.Addrs()
	claims := 0
	for _, to := range []int{0, 2} {
		for k := range 5 {
			h := groupHello(ids["m1"], addrs[1], ids[names[to]], 1<<64-4)
			oc, err := dialOutsider(addrs[to])
			must(t, err)
			switch k % 3 {
			case 0: // the Hello, with no proof
				must(t, oc.send(h))
			case 1: // the Hello but its last byte
				b := wire.Append(nil, h)
				must(t, oc.write(b[:len(b)-1]))
			case 2: // a proof under another key, the refusal read
				h.Proof = dialProof(transport.NewKey(), h)
				must(t, oc.send(h))
				oc.refusal()
			}
			oc.close()
			claims++
		}
	}
	t.Logf("%d connections to m0 and m2 claiming m1's id, closed at once: after the Hello, before its end, after a refused proof", claims)

	// Forged group messages, without authenticating.
	var mu sync.Mutex
	forged := 0
	var wg sync.WaitGroup
	for _, to := range []int{0, 2} {
		for _, a := range []struct {
			what, want string
			a          attempt
		}{
			{"after a Hello with no proof", "no proof of the cluster key",
				attempt{then: forgedGroupFrames(view, ids["m2"], "127.0.0.1:1")}},
			{"right after a proof under another key", "no proof of the cluster key",
				attempt{key: transport.NewKey(), then: forgedGroupFrames(view, ids["m2"], "127.0.0.1:1")}},
		} {
			wg.Go(func() {
				a.a.hello = groupHello(ids["m1"], addrs[1], ids[names[to]], 1<<63)
				r, err := try(addrs[to], a.a)
				if err != nil || !strings.Contains(r.reason, a.want) {
					t.Errorf("m%d, forged messages %s: %v, refused with %q; want a refusal naming %q", to, a.what, err, r.reason, a.want)
					return
				}
				mu.Lock()
				for _, f := range a.a.then {
					if f.Type() == wire.TypeGroupMsg {
						forged++
					}
				}
				mu.Unlock()
				t.Logf("to m%d as m1, a data message numbered 1,000,000, one with the attacker's content, a Leave, a Suspect of m2, a Dissolve, %s: refused (%q)", to, a.what, r.reason)
			})
		}
		// And with no Hello at all.
		wg.Go(func() {
			oc, err := dialOutsider(addrs[to])
			if err != nil {
				t.Error(err)
				return
			}
			defer oc.close()
			oc.send(forgedGroupFrames(view, ids["m2"], "127.0.0.1:1")...)
			if reason, err := oc.refusal(); err != nil || !strings.Contains(reason, "expected hello") {
				t.Errorf("m%d, forged messages without a Hello: %v, refused with %q", to, err, reason)
			}
		})
	}
	wg.Wait()

	// The group goes on, whole: every member delivers every member's
	// message sent after the attacks, in the view it had, and the traffic
	// of the next second and more — longer than the stack takes to
	// suspect a silent member (500 ms) — in that view too.
	for i := range n {
		must(t, c.Write(i, fmt.Sprintf("after-attacks-%d", i)))
	}
	for i := range n {
		for j := range n {
			must(t, c.WaitDelivered(ctx, i, fmt.Sprintf("after-attacks-%d", j)))
		}
	}
	for j := range n {
		next := fmt.Sprintf("m%d-%d", j, lastSent(c, j, names[j])+200) // 200 × 5 ms
		for i := range n {
			must(t, c.WaitDelivered(ctx, i, next))
		}
	}
	if after := viewCounts(); !slices.Equal(after, before) {
		t.Errorf("the members installed views during the attacks: %v views each before, %v after", before, after)
	}
	for i := range n {
		if v := c.View(i); !slices.Equal(v, names) {
			t.Errorf("m%d's view is %v", i, v)
		}
		for _, e := range eventsOf(c, i, eventlog.Deliver, nil) {
			if from, msg := e.Str(eventlog.FieldFrom), e.Str(eventlog.FieldMsg); !slices.Contains(slices.Collect(maps.Values(ids)), from) || strings.Contains(msg, "forged") {
				t.Errorf("m%d delivered %q from %s", i, msg, from)
			}
		}
	}
	t.Logf("after the attacks: every member delivered everyone's marker and the next second of traffic in the same view (%v views installed by m0, m1, m2 before the attacks and after); nothing forged delivered", before)

	tr.Stop()
	tr = nil
	for i := range n {
		c.CloseStdin(i)
	}
	for i := range n {
		if err := c.WaitExit(ctx, i); err != nil {
			t.Errorf("m%d: %v", i, err)
		}
	}
	h, err := eventlog.MergeDir(dir)
	must(t, err)
	delivered := 0
	for _, e := range h {
		if e.Ev == eventlog.Deliver {
			delivered++
		}
	}
	for _, v := range check.Group(h, check.GroupOptions{Total: true}) {
		t.Error(v)
	}
	t.Logf("check.Group (total order) on the members' %d events, %d deliveries: %d forged frames and %d outsider processes left no trace", len(h), delivered, forged, 2)
	checkClocks(t, dir)
	checkClocks(t, odir)
}

// lastSent returns the number k of the last "<prefix>-<k>" member i logged
// as sent.
func lastSent(c *launch.Cluster, i int, prefix string) int {
	last := 0
	for _, e := range eventsOf(c, i, eventlog.Send, nil) {
		if k, err := strconv.Atoi(strings.TrimPrefix(e.Str(eventlog.FieldMsg), prefix+"-")); err == nil {
			last = max(last, k)
		}
	}
	return last
}
