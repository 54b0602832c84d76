package dirclient

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/conclave/conclave/directory"
)

// command has op applied as this client's next command. Commands of one
// client are applied one at a time, in order: the directory applies each
// once, however often it is retried, by its sequence number.
func (c *Client) command(ctx context.Context, op directory.Op) (directory.Result, error) {
	c.cmdMu.Lock()
	defer c.cmdMu.Unlock()
	c.seq++
	kind, topic, group, qos := describe(op)
	l := c.logCall(kind, topic, group, qos, c.seq)
	b, err := c.Propose(ctx, directory.EncodeCommand(directory.Command{Client: c.cfg.Name, Seq: c.seq, Op: op}))
	if err != nil {
		l.failed(err)
		return directory.Result{}, err
	}
	r, err := directory.DecodeResult(b)
	if err != nil {
		err = fmt.Errorf("the directory's answer: %w", err)
		l.failed(err)
		return directory.Result{}, err
	}
	l.result(r)
	return r, r.Err()
}

// Announce declares this client a publisher of topic with a QoS: a
// shipped stack's name (xml nil), or a stack description (qos is then
// the file name its errors cite). It returns the topic's QoS and group.
func (c *Client) Announce(ctx context.Context, topic, qos string, xml []byte) (directory.Result, error) {
	return c.command(ctx, directory.Announce{Topic: topic, QoS: qos, XML: xml})
}

// Subscribe declares this client a subscriber of topic and returns the
// topic's QoS and group; a topic nobody announced is ErrUnknownTopic.
func (c *Client) Subscribe(ctx context.Context, topic string) (directory.Result, error) {
	return c.command(ctx, directory.Subscribe{Topic: topic})
}

// Unsubscribe ends this client's subscription to topic.
func (c *Client) Unsubscribe(ctx context.Context, topic string) error {
	_, err := c.command(ctx, directory.Unsubscribe{Topic: topic})
	return err
}

// Withdraw ends this client's publishing of topic.
func (c *Client) Withdraw(ctx context.Context, topic string) error {
	_, err := c.command(ctx, directory.Withdraw{Topic: topic})
	return err
}

// SetContacts replaces the contact addresses of group, and returns those
// it replaced that addrs does not list.
func (c *Client) SetContacts(ctx context.Context, group string, addrs []string) ([]string, error) {
	r, err := c.command(ctx, directory.Contacts{Group: group, Addrs: addrs})
	return r.Contacts, err
}

// AddContact adds addr to the contacts of group and returns those it had
// before: empty for exactly one of the members joining at once, which
// founds the group.
func (c *Client) AddContact(ctx context.Context, group, addr string) ([]string, error) {
	r, err := c.command(ctx, directory.AddContact{Group: group, Addr: addr})
	return r.Contacts, err
}

// RemoveContact removes addr from the contacts of group, if it is there.
func (c *Client) RemoveContact(ctx context.Context, group, addr string) error {
	_, err := c.command(ctx, directory.RemoveContact{Group: group, Addr: addr})
	return err
}

// Report sends this client's cumulative counts of the events that reached
// it, per topic (sorted by topic, at most directory.MaxReportTopics), and
// the time its counting covers; the directory keeps the latest.
func (c *Client) Report(ctx context.Context, covers time.Duration, topics []directory.TopicCount) error {
	_, err := c.command(ctx, directory.Report{Millis: uint64(max(covers.Milliseconds(), 0)), Topics: topics})
	return err
}

// Move asks the directory to move topic to group, and returns the topic's
// QoS and group as they are then.
func (c *Client) Move(ctx context.Context, topic, group string) (directory.Result, error) {
	return c.command(ctx, directory.Move{Topic: topic, Group: group})
}

// MoveDone tells the directory this publisher of topic has switched to
// the group of the topic's move number moves.
func (c *Client) MoveDone(ctx context.Context, topic string, moves uint64) error {
	_, err := c.command(ctx, directory.MoveDone{Topic: topic, Moves: moves})
	return err
}

// Lookup reads topic at a linearizable point.
func (c *Client) Lookup(ctx context.Context, topic string) (directory.Found, error) {
	var f directory.Found
	l := c.logCall(opLookup, topic, "", "", 0)
	if err := c.query(ctx, directory.LookupQuery(topic), &f); err != nil {
		l.failed(err)
		return f, err
	}
	if f.Error != "" {
		err := fmt.Errorf("directory: %s", f.Error)
		l.failed(err)
		return f, err
	}
	if !f.Found {
		l.answered(directory.CodeUnknownTopic.String(), "", "", 0)
	} else {
		l.answered(directory.CodeOK.String(), f.Topic.QoS, f.Topic.Group, f.Topic.Moves)
	}
	return f, nil
}

// Contacts reads the contacts of group at a linearizable point: the
// addresses of its members, sorted; ok is false if there is no such group.
func (c *Client) Contacts(ctx context.Context, group string) (addrs []string, ok bool, err error) {
	var g directory.GroupFound
	if err := c.query(ctx, directory.GroupQuery(group), &g); err != nil {
		return nil, false, err
	}
	if g.Error != "" {
		return nil, false, fmt.Errorf("directory: %s", g.Error)
	}
	return g.Group.Contacts, g.Found, nil
}

// LastMove reads the log index of the directory's last move of a topic
// (0 if none) at a linearizable point.
func (c *Client) LastMove(ctx context.Context) (uint64, error) {
	var m directory.Moves
	if err := c.query(ctx, []byte{directory.QueryMoves}, &m); err != nil {
		return 0, err
	}
	if m.Error != "" {
		return 0, fmt.Errorf("directory: %s", m.Error)
	}
	return m.Last, nil
}

// List reads every topic and group at a linearizable point.
func (c *Client) List(ctx context.Context) (directory.Listing, error) {
	var l directory.Listing
	if err := c.query(ctx, []byte{directory.QueryList}, &l); err != nil {
		return l, err
	}
	if l.Error != "" {
		return l, fmt.Errorf("directory: %s", l.Error)
	}
	return l, nil
}

func (c *Client) query(ctx context.Context, q []byte, v any) error {
	b, err := c.Read(ctx, q)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("the directory's answer: %w", err)
	}
	return nil
}
