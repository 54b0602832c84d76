package pubsub

import "context"

// Crash stops c as a crash would: its members stop without leaving, and
// it tells the directory nothing more.
func (c *Client) Crash() {
	c.joinMu.Lock()
	defer c.joinMu.Unlock()
	c.mu.Lock()
	c.closed = true
	ms := c.groups
	c.groups = map[string]*member{}
	c.mu.Unlock()
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
