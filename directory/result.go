package directory

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/conclave/conclave/stack"
)

// Errors a command can end with; Result.Err wraps them, so a client tests
// them with errors.Is.
var (
	// ErrBadCommand: the command could not be decoded, or is invalid
	// (an empty topic, an unknown group, sequence number 0...).
	ErrBadCommand = errors.New("directory: bad command")
	// ErrStale: the command's sequence number is below the last one
	// applied for its client: a retry overtaken by a later command.
	ErrStale = errors.New("directory: stale sequence")
	// ErrQoSConflict: the topic exists with another QoS.
	ErrQoSConflict = errors.New("directory: QoS conflict")
	// ErrUnknownTopic: the topic was never announced.
	ErrUnknownTopic = errors.New("directory: topic not announced")
	// ErrNoGroup: no group can take a new topic of this QoS.
	ErrNoGroup = errors.New("directory: no group left")
	// ErrBadQoS: the QoS names no shipped stack, or its XML is invalid.
	ErrBadQoS = errors.New("directory: bad QoS")
)

// Code says how a command ended. Append only: codes are part of the
// encoded results.
type Code uint8

// Result codes.
const (
	CodeOK Code = iota
	CodeBadCommand
	CodeStale
	CodeQoSConflict
	CodeUnknownTopic
	CodeNoGroup
	CodeBadQoS
	numCodes
)

var codeErrs = [numCodes]error{nil, ErrBadCommand, ErrStale, ErrQoSConflict, ErrUnknownTopic, ErrNoGroup, ErrBadQoS}

var codeNames = [numCodes]string{"ok", "bad-command", "stale", "qos-conflict", "unknown-topic", "no-group", "bad-qos"}

// String returns a short name of c, as "qos-conflict".
func (c Code) String() string {
	if c < numCodes {
		return codeNames[c]
	}
	return fmt.Sprintf("code-%d", uint8(c))
}

// Result is what a command returns. Announce and Subscribe fill QoS, Hash,
// XML, Group and Contacts; the other commands return only a Code.
type Result struct {
	Code Code
	// Msg says what went wrong, in a sentence; empty when Code is CodeOK.
	Msg string
	// QoS is the name of the topic's QoS, Hash the hash of its canonical
	// stack description (stack.Description.Hash), and XML that
	// description in canonical form.
	QoS  string
	Hash string
	XML  []byte
	// Group is the topic's group, and Contacts the addresses of its
	// current members, sorted.
	Group    string
	Contacts []string
	// Moves counts the topic's moves between groups, and From is the
	// group it last moved from (empty if it never moved).
	Moves uint64
	From  string
}

// Err returns nil if r.Code is CodeOK, and otherwise an *Error.
func (r Result) Err() error {
	if r.Code == CodeOK {
		return nil
	}
	return &Error{Code: r.Code, Msg: r.Msg}
}

// Error is a command's failure, as the directory described it.
// errors.Is(err, ErrQoSConflict) and the like test its Code.
type Error struct {
	Code Code
	Msg  string
}

// Error returns the directory's message, or the text of the code's
// sentinel error if there is none.
func (e *Error) Error() string {
	if e.Msg == "" {
		if err := e.Unwrap(); err != nil {
			return err.Error()
		}
		return "directory: " + e.Code.String()
	}
	return e.Msg
}

// Unwrap returns the sentinel error of e's Code (nil for an unknown code).
func (e *Error) Unwrap() error {
	if e.Code < numCodes {
		return codeErrs[e.Code]
	}
	return nil
}

// fail returns a result with code c and a message, made valid UTF-8 (a
// parse error may quote bytes that are not) and cut to MaxMessage.
func fail(c Code, format string, args ...any) Result {
	msg := strings.ToValidUTF8(fmt.Sprintf(format, args...), "\uFFFD")
	return Result{Code: c, Msg: cut(msg, MaxMessage)}
}

// cut returns s shortened to at most max bytes, on a character boundary,
// ending in "…" if it was cut.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const ell = "…"
	n := max - len(ell)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ell
}

const resultVersion = 2

// EncodeResult returns the binary form of r.
func EncodeResult(r Result) []byte {
	e := enc{b: make([]byte, 0, 32+len(r.XML))}
	e.byte(resultVersion)
	r.append(&e)
	return e.b
}

func (r Result) append(e *enc) {
	e.uint(uint64(r.Code))
	e.str(r.Msg)
	e.str(r.QoS)
	e.str(r.Hash)
	e.bytes(r.XML)
	e.str(r.Group)
	e.strs(r.Contacts)
	e.uint(r.Moves)
	e.str(r.From)
}

// DecodeResult parses an encoded result; like DecodeCommand it never
// panics and allocates no more than the input holds. An unknown Code is
// kept: its Err wraps no sentinel.
func DecodeResult(b []byte) (Result, error) {
	d := dec{b: b}
	if v := d.byte("version"); d.err == nil && v != resultVersion {
		return Result{}, fmt.Errorf("result of version %d; this client knows version %d", v, resultVersion)
	}
	r := readResult(&d, true)
	if err := d.done(); err != nil {
		return Result{}, fmt.Errorf("bad result: %w", err)
	}
	return r, nil
}

// readResult reads a result; without moves, one written before results
// carried Moves and From (in a version 1 snapshot).
func readResult(d *dec, moves bool) Result {
	var r Result
	code := d.uint("code")
	if code > 255 {
		d.failf("code %d", code)
	}
	r.Code = Code(code)
	r.Msg = d.str("message", MaxMessage)
	r.QoS = d.str("QoS", MaxName)
	r.Hash = d.str("hash", MaxName)
	r.XML = d.bytes("XML", stack.MaxDescription)
	r.Group = d.str("group", MaxName)
	r.Contacts = d.strs("contacts", MaxContacts, MaxName)
	if moves {
		r.Moves = d.uint("moves")
		r.From = d.str("from", MaxName)
	}
	return r
}
