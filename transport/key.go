package transport

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/conclave/conclave/wire"
)

// Key is a cluster secret: the processes that hold it prove it to each
// other on every connection, and nothing from a connection that has not
// proved it is acted on. A nil Key means unauthenticated connections.
type Key []byte

// KeySize is the size of a key made by NewKey, in bytes.
const KeySize = 32

// MinKeySize is the smallest key accepted.
const MinKeySize = 16

// NewKey returns a fresh random key.
func NewKey() Key {
	k := make(Key, KeySize)
	rand.Read(k)
	return k
}

// String returns the key's file form: hexadecimal.
func (k Key) String() string { return hex.EncodeToString(k) }

// ParseKey reads a key in its file form: hexadecimal, surrounding space
// ignored.
func ParseKey(s string) (Key, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("a key is hexadecimal (make one with conclave keygen)")
	}
	if len(b) < MinKeySize {
		return nil, fmt.Errorf("a key of %d bytes is too short: at least %d", len(b), MinKeySize)
	}
	return Key(b), nil
}

// ReadKeyFile reads a key file written by WriteKeyFile (or conclave
// keygen). It reads at most 4 KiB.
func ReadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFile writes k to a new file at path, readable by its owner only.
func WriteKeyFile(path string, k Key) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, k); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Labels of the two proofs, so neither can stand for the other.
const (
	labelAccept = "conclave v2 accept\x00"
	labelDial   = "conclave v2 dial\x00"
)

// proof is the HMAC-SHA256 under k of label, the channel's binding (what
// ties it to one TLS channel, or nothing) and both Hellos (without the
// answer's proof): everything the two ends claimed, and both nonces.
func (k Key) proof(label string, binding []byte, dialer, answer wire.Hello) []byte {
	answer.Proof = nil
	dialer.Proof = nil
	m := hmac.New(sha256.New, k)
	m.Write([]byte(label))
	b := binary.AppendUvarint(nil, uint64(len(binding)))
	b = append(b, binding...)
	b = wire.Append(b, dialer)
	m.Write(wire.Append(b, answer))
	return m.Sum(nil)
}

// check reports whether p is the proof under k; without a key every proof
// is taken.
func (k Key) check(p []byte, label string, binding []byte, dialer, answer wire.Hello) bool {
	return k == nil || hmac.Equal(p, k.proof(label, binding, dialer, answer))
}

// Binder is a Stream over a channel that proofs must be bound to, such as
// a TLS channel. A Stream that wraps another must forward Binding.
type Binder interface {
	// Binding returns bytes both ends derive from the channel and a man
	// in the middle cannot make equal on his two channels; nil for none.
	Binding() ([]byte, error)
}

// binding returns what ties proofs to s's channel: TLS keying material,
// or nothing for a plain stream.
func binding(s Stream) ([]byte, error) {
	if b, ok := s.(Binder); ok {
		return b.Binding()
	}
	return nil, nil
}

func nonce() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}
