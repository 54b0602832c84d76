package directory

import (
	"fmt"

	"github.com/conclave/conclave/stack"
)

// Limits on what a command may carry. The decoder refuses a command over
// them, so a command from the network costs at most what its size says.
const (
	// MaxName bounds topics, client ids, group names, contact addresses
	// and QoS names, in bytes.
	MaxName = 256
	// MaxContacts bounds the contact addresses of a group.
	MaxContacts = 1024
	// MaxMessage bounds the message of a result, in bytes; longer ones
	// are cut.
	MaxMessage = 1024
)

// commandVersion is the first byte of every encoded command; a replica
// refuses commands of another version.
const commandVersion = 1

// opcodes of the encoded commands. Append only.
const (
	opAnnounce byte = 1 + iota
	opSubscribe
	opUnsubscribe
	opWithdraw
	opContacts
	opAddContact
	opReport
	opRemoveContact
	opMove
	opMoveDone
)

// A Command is what a client asks of the directory: an Op, with the
// client's id and the command's sequence number, which make a retried
// command apply once.
type Command struct {
	// Client identifies the client; commands of one client are numbered
	// 1, 2, 3... in the order it sends them, one at a time.
	Client string
	Seq    uint64
	Op     Op
}

// An Op is one of Announce, Subscribe, Unsubscribe, Withdraw, Contacts,
// AddContact, RemoveContact, Report, Move, MoveDone.
type Op interface {
	opcode() byte
}

// Announce declares the client a publisher of Topic, with the QoS it
// needs: a stack shipped with conclave named by QoS (XML empty), or the
// XML of a stack description (then QoS, if set, names the file it came
// from in errors). The first announce of a topic places it in a group.
type Announce struct {
	Topic string
	QoS   string
	XML   []byte
}

// Subscribe declares the client a subscriber of Topic, which must have
// been announced.
type Subscribe struct{ Topic string }

// Unsubscribe ends the client's subscription to Topic.
type Unsubscribe struct{ Topic string }

// Withdraw ends the client's publishing of Topic. The topic keeps its QoS
// and group.
type Withdraw struct{ Topic string }

// Contacts replaces the contact addresses of Group: where its current
// members accept connections.
type Contacts struct {
	Group string
	Addrs []string
}

// AddContact adds Addr to the contact addresses of Group, and returns
// those it had before: commands are applied one at a time, so of the
// members that join a group at once exactly one is told there is nobody
// to join, and founds it, and every other is told of a member before it.
type AddContact struct {
	Group string
	Addr  string
}

// RemoveContact removes Addr from the contacts of Group, if it is there:
// a member leaving cleanly removes its own address, and nobody else's.
type RemoveContact struct {
	Group string
	Addr  string
}

func (RemoveContact) opcode() byte { return opRemoveContact }
func (Announce) opcode() byte      { return opAnnounce }
func (Subscribe) opcode() byte     { return opSubscribe }
func (Unsubscribe) opcode() byte   { return opUnsubscribe }
func (Withdraw) opcode() byte      { return opWithdraw }
func (Contacts) opcode() byte      { return opContacts }
func (AddContact) opcode() byte    { return opAddContact }

// EncodeCommand returns the binary form of c. A command with a nil Op
// encodes, and is refused when decoded.
func EncodeCommand(c Command) []byte {
	e := enc{b: make([]byte, 0, 32)}
	e.byte(commandVersion)
	var code byte
	if c.Op != nil {
		code = c.Op.opcode()
	}
	e.byte(code)
	e.str(c.Client)
	e.uint(c.Seq)
	switch op := c.Op.(type) {
	case Announce:
		e.str(op.Topic)
		e.str(op.QoS)
		e.bytes(op.XML)
	case Subscribe:
		e.str(op.Topic)
	case Unsubscribe:
		e.str(op.Topic)
	case Withdraw:
		e.str(op.Topic)
	case Contacts:
		e.str(op.Group)
		e.strs(op.Addrs)
	case AddContact:
		e.str(op.Group)
		e.str(op.Addr)
	case RemoveContact:
		e.str(op.Group)
		e.str(op.Addr)
	case Report:
		e.uint(op.Millis)
		e.uint(uint64(len(op.Topics)))
		for _, tc := range op.Topics {
			e.str(tc.Topic)
			e.uint(tc.Delivered)
			e.uint(tc.Filtered)
		}
	case Move:
		e.str(op.Topic)
		e.str(op.Group)
	case MoveDone:
		e.str(op.Topic)
		e.uint(op.Moves)
	}
	return e.b
}

// DecodeCommand parses an encoded command. It refuses input of another
// version, an unknown operation, fields over the limits (MaxName,
// MaxContacts, MaxReportTopics, stack.MaxDescription), strings that are not UTF-8 and
// bytes left over; it never panics, and allocates no more than the input
// holds.
func DecodeCommand(b []byte) (Command, error) {
	d := dec{b: b}
	var c Command
	if v := d.byte("version"); d.err == nil && v != commandVersion {
		return c, fmt.Errorf("command of version %d; this directory knows version %d", v, commandVersion)
	}
	code := d.byte("operation")
	c.Client = d.str("client", MaxName)
	c.Seq = d.uint("sequence number")
	switch code {
	case opAnnounce:
		c.Op = Announce{Topic: d.str("topic", MaxName), QoS: d.str("QoS", MaxName), XML: d.bytes("XML", stack.MaxDescription)}
	case opSubscribe:
		c.Op = Subscribe{Topic: d.str("topic", MaxName)}
	case opUnsubscribe:
		c.Op = Unsubscribe{Topic: d.str("topic", MaxName)}
	case opWithdraw:
		c.Op = Withdraw{Topic: d.str("topic", MaxName)}
	case opContacts:
		c.Op = Contacts{Group: d.str("group", MaxName), Addrs: d.strs("contacts", MaxContacts, MaxName)}
	case opAddContact:
		c.Op = AddContact{Group: d.str("group", MaxName), Addr: d.str("contact", MaxName)}
	case opRemoveContact:
		c.Op = RemoveContact{Group: d.str("group", MaxName), Addr: d.str("contact", MaxName)}
	case opReport:
		r := Report{Millis: d.uint("milliseconds")}
		if n := d.count("report topics", 3, MaxReportTopics); n > 0 {
			r.Topics = make([]TopicCount, 0, n)
			for range n {
				r.Topics = append(r.Topics, TopicCount{Topic: d.str("topic", MaxName), Delivered: d.uint("delivered"), Filtered: d.uint("filtered")})
			}
		}
		c.Op = r
	case opMove:
		c.Op = Move{Topic: d.str("topic", MaxName), Group: d.str("group", MaxName)}
	case opMoveDone:
		c.Op = MoveDone{Topic: d.str("topic", MaxName), Moves: d.uint("moves")}
	default:
		if d.err == nil {
			d.failf("unknown operation %d", code)
		}
	}
	if err := d.done(); err != nil {
		return Command{}, fmt.Errorf("bad command: %w", err)
	}
	return c, nil
}
