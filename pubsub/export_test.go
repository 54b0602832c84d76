package pubsub

import (
	"context"

	"github.com/conclave/conclave/group"
)

// BreakDeliveries makes c pass what its members deliver through f before
// it dispatches it. Call it before c joins a group.
func BreakDeliveries(c *Client, f func(<-chan group.Delivery) <-chan group.Delivery) {
	c.fault = &fault{deliveries: f}
}

// BreakFilter makes c hand the events of topic t to the subscriptions of
// route(t). Call it before c joins a group.
func BreakFilter(c *Client, route func(t string) string) { c.fault = &fault{route: route} }

// Crash stops c as a crash would: its members stop without leaving, and
// it tells the directory nothing more.
func (c *Client) Crash() {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	c.closed = true
	c.stop()
	ms := c.groups
	c.groups = map[string]*member{}
	c.mu.Unlock()
	<-c.watched
	c.dir.Close()
	for _, m := range ms {
		m.stopContacts(context.Background())
		m.g.Close()
		<-m.done
	}
	if c.rep.stop != nil {
		close(c.rep.stop)
		<-c.rep.done
	}
	c.host.Close()
}

// SkipMoveWait makes subscribers switch groups without waiting for the
// publishers' markers: the mutation the move tests must catch.
var SkipMoveWait = &skipMoveWait

// SetBeforeSwitch has f run in each publisher's move just before it
// switches groups (nil: nothing).
func SetBeforeSwitch(f func()) {
	if f == nil {
		beforeSwitch.Store(nil)
	} else {
		beforeSwitch.Store(&f)
	}
}
