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
	labelDial   = "conclave v2 dial\x00"
	labelAccept = "conclave v2 accept\x00"
)

// dialerProof is the HMAC-SHA256 under k of the dialer's label, the
// channel's binding (what ties it to one TLS channel, or nothing) and the
// dialer's Hello without its proof.
func (k Key) dialerProof(binding []byte, dialer wire.Hello) []byte {
	dialer.Proof = nil
	return k.mac(labelDial, binding, wire.Append(nil, dialer))
}

// acceptorProof is the HMAC-SHA256 under k of the acceptor's label, the
// binding and both Hellos (the answer without its proof): everything the
// two ends claimed, and both nonces.
func (k Key) acceptorProof(binding []byte, dialer, answer wire.Hello) []byte {
	answer.Proof = nil
	return k.mac(labelAccept, binding, wire.Append(wire.Append(nil, dialer), answer))
}

func (k Key) mac(label string, binding, msg []byte) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(label))
	m.Write(binary.AppendUvarint(nil, uint64(len(binding))))
	m.Write(binding)
	m.Write(msg)
	return m.Sum(nil)
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
