package pubsub

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/conclave/conclave/stack"
)

// contactKeeper keeps a group's contacts in the directory equal to the
// members of the views this member coordinates (docs/directory.md,
// "Contacts follow the views"). Its zero value is ready; its loop starts
// with the first view to publish.
type contactKeeper struct {
	mu           sync.Mutex
	latest       []string      // addresses of the latest view this member coordinates, to be sent
	pending      bool          // latest not sent yet
	coordinating bool          // the member coordinates the latest view it installed
	wake         chan struct{} // room for one; nil until the loop starts
	stop         chan struct{}
	done         chan struct{}
	stopped      bool
}

// contactsRefresh is how often a coordinator reads its group's contacts,
// and sets them to its view's again if they differ: another coordinator's
// list (a stale one, of a part cut off, which may then have left and
// emptied it) may have replaced them, and no view change would set them
// back.
const contactsRefresh = time.Second

// followView notes a view this member installed: if it is the view's
// coordinator (its first member), the group's contacts become the
// addresses of the view's members. Views are sent in order, one at a
// time; one not yet sent when a newer comes is skipped.
func (m *member) followView(v stack.View) {
	coordinating := len(v.Members) > 0 && v.Members[0].ID == m.g.Me().ID
	if !coordinating {
		m.ct.mu.Lock()
		m.ct.coordinating = false
		m.ct.mu.Unlock()
		return
	}
	addrs := make([]string, 0, len(v.Members))
	for _, mb := range v.Members {
		if mb.Addr != "" {
			addrs = append(addrs, mb.Addr)
		}
	}
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	k := &m.ct
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	k.latest, k.pending, k.coordinating = addrs, true, true
	if k.wake == nil {
		k.wake, k.stop, k.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go m.sendContacts()
	}
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// sendContacts sends the latest coordinated view's addresses whenever
// there is one, and every contactsRefresh while the member coordinates it
// reads the group's contacts and sends them again if they differ, until
// stopContacts. A failed send is retried with the
// next view, or after a second if none came.
func (m *member) sendContacts() {
	k := &m.ct
	defer close(k.done)
	var sent []string
	var refresh <-chan time.Time // after the last send that went through
	for {
		force := false
		select {
		case <-k.stop:
			return
		case <-k.wake:
		case <-refresh:
			m.mu.Lock()
			force = m.ended == nil // a member that stopped lists nobody
			m.mu.Unlock()
			refresh = nil
		}
		k.mu.Lock()
		addrs, fresh := k.latest, k.pending
		pending := fresh || force && k.coordinating
		k.pending = false
		k.mu.Unlock()
		if !pending || !force && sent != nil && slices.Equal(addrs, sent) {
			continue
		}
		if !fresh {
			// A refresh: read first, and write only if the list
			// changed behind this member's back, so that a group at
			// rest costs the directory's log nothing.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			listed, _, err := m.c.dir.Contacts(ctx, m.name)
			cancel()
			if err == nil && sameAddrs(listed, addrs) {
				refresh = time.After(contactsRefresh)
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		replaced, err := m.c.dir.SetContacts(ctx, m.name, addrs)
		cancel()
		if err == nil {
			sent = addrs
			refresh = time.After(contactsRefresh)
			// Members the list named that this view does not: another
			// part of the group, perhaps, which the member may merge with.
			m.c.note(m.name, replaced)
			m.g.AddContacts(replaced)
			continue
		}
		sent = nil // the directory's list is unknown: the retry goes even if equal
		t := time.NewTimer(time.Second)
		select {
		case <-k.stop:
			t.Stop()
			return
		case <-t.C:
		}
		k.mu.Lock()
		if !k.pending {
			k.pending = true
			select {
			case k.wake <- struct{}{}:
			default:
			}
		}
		k.mu.Unlock()
	}
}

// sameAddrs reports whether a and b hold the same addresses.
func sameAddrs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// stopContacts ends the sending of contacts, letting a send under way
// finish (for a second at most), so that it lands before the commands of
// the coordinators after this member leaves.
func (m *member) stopContacts(ctx context.Context) {
	k := &m.ct
	k.mu.Lock()
	k.stopped = true
	done := k.done
	if done != nil {
		close(k.stop)
	}
	k.mu.Unlock()
	if done == nil {
		return
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// removeContact removes this member's address from the group's contacts,
// once it has left: the next coordinator sets them anyway, but if it was
// the last member nobody else would. It gives up after a second, so that
// a directory out of reach does not hold up the leaves that follow.
func (m *member) removeContact(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	m.c.dir.RemoveContact(ctx, m.name, m.g.Me().Addr)
}

// maxSeen bounds the addresses a client remembers of a group.
const maxSeen = 64

// note remembers addresses of members of group, the latest kept.
func (c *Client) note(group string, addrs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noteLocked(group, addrs)
}

func (c *Client) noteLocked(group string, addrs []string) {
	seen := c.seen[group]
	for _, a := range addrs {
		if a == "" || slices.Contains(seen, a) {
			continue
		}
		if len(seen) >= maxSeen {
			seen = seen[1:]
		}
		seen = append(seen, a)
	}
	if c.seen == nil {
		c.seen = map[string][]string{}
	}
	c.seen[group] = seen
}

// seenOf returns the addresses this client remembers of group.
func (c *Client) seenOf(group string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.seen[group])
}
