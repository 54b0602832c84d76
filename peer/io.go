package peer

import "github.com/conclave/conclave/wire"

// ConnID names one connection for the life of the process. The driver picks
// them; they must be unique and non-zero.
type ConnID uint64

// Input is something that happened to the peer: the driver calls Step with
// one of the types below.
type Input interface{ isInput() }

// Start is the first input: the process has started.
type Start struct{}

// Tick means time has passed; the driver sends it at Deadline or later.
type Tick struct{}

// Handshake is a connection whose Hello checked out (cluster, version, id in
// range). Dialed says this peer dialed it. Step returns an error if the
// connection must be refused; the driver then sends that reason and closes.
type Handshake struct {
	Peer        int
	Conn        ConnID
	Incarnation uint64
	Dialed      bool
	Addr        string // remote address, for the log
}

// DialFailed reports that a Dial effect did not produce a connection.
type DialFailed struct {
	Peer int
	Err  string
}

// Closed reports that a connection is gone: end of stream, reset, a failed
// write or bad framing. Reason says which.
type Closed struct {
	Peer   int
	Conn   ConnID
	Reason string
}

// Recv is a frame received on an admitted connection.
type Recv struct {
	Peer  int
	Conn  ConnID
	Frame wire.Frame
}

// Stop asks the peer to leave: it says goodbye on every connection.
type Stop struct{}

func (Start) isInput()      {}
func (Tick) isInput()       {}
func (Handshake) isInput()  {}
func (DialFailed) isInput() {}
func (Closed) isInput()     {}
func (Recv) isInput()       {}
func (Stop) isInput()       {}

// Effect is something the driver must do, in the order given.
type Effect interface{ isEffect() }

// Send writes a frame on a connection. Urgent asks for one byte of TCP
// urgent data (a wire.Hint) right after the frame.
type Send struct {
	Peer   int
	Conn   ConnID
	Frame  wire.Frame
	Urgent bool
}

// Close closes a connection after the frames already sent on it. The driver
// reports nothing more about it.
type Close struct {
	Peer   int
	Conn   ConnID
	Reason string
}

// Dial asks the driver to connect to a peer and report a Handshake or a
// DialFailed.
type Dial struct{ Peer int }

// Log is an event for the event log (docs/events.md).
type Log struct {
	Ev     string
	Fields map[string]any
}

func (Send) isEffect()  {}
func (Close) isEffect() {}
func (Dial) isEffect()  {}
func (Log) isEffect()   {}
