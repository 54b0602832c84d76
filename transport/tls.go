package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"time"
)

// TLS is a Network whose streams are encrypted with TLS 1.3 over another
// Network's (TCP's, by default). There are no certificates to manage: each
// process makes a throwaway one, nobody checks it, and the handshake that
// follows proves the cluster key over the TLS channel itself (its exported
// keying material is part of both proofs), so a man in the middle, who
// holds two different channels, cannot pass. TLS therefore needs a key.
//
// No urgent byte is sent on an encrypted stream: it would land inside the
// TLS record stream and break it, unauthenticated. A leader-change notice
// travels, encrypted, in the ordered stream, where it always travels; the
// urgent byte after it is only a hint.
type TLS struct {
	// Network carries the encrypted bytes (default TCP).
	Network Network

	server, client *tls.Config
}

// NewTLS returns a TLS network over nw (nil: TCP), with a fresh
// throwaway certificate.
func NewTLS(nw Network) (*TLS, error) {
	if nw == nil {
		nw = TCP{}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(100 * 365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	return &TLS{
		Network: nw,
		server:  &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}},
		// The certificate proves nothing; the cluster key, bound to the
		// channel, does (see Dial).
		client: &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true},
	}, nil
}

// Listen listens on the inner network; accepted streams do their TLS
// handshake on first use, in the goroutine that reads them.
func (t *TLS) Listen(addr string) (Listener, error) {
	ln, err := t.Network.Listen(addr)
	if err != nil {
		return nil, err
	}
	return tlsListener{ln, t.server}, nil
}

// Dial connects on the inner network and completes the TLS handshake.
func (t *TLS) Dial(ctx context.Context, addr string) (Stream, error) {
	s, err := t.Network.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(streamConn{s}, t.client)
	if err := c.HandshakeContext(ctx); err != nil {
		s.Close()
		return nil, tlsError(err)
	}
	return &tlsStream{c, s}, nil
}

type tlsListener struct {
	Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (Stream, error) {
	s, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tlsStream{tls.Server(streamConn{s}, l.cfg), s}, nil
}

// tlsStream is a Stream over a TLS connection.
type tlsStream struct {
	*tls.Conn
	inner Stream
}

// SendUrgent sends nothing: see TLS.
func (s *tlsStream) SendUrgent(byte) error { return nil }

func (s *tlsStream) RemoteAddr() string { return s.inner.RemoteAddr() }

func (s *tlsStream) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	return n, tlsError(err)
}

// Binding returns what ties a proof to this TLS channel: keying material
// both ends derive from it, which a man in the middle cannot make equal on
// his two channels.
func (s *tlsStream) Binding() ([]byte, error) {
	if err := s.Conn.Handshake(); err != nil {
		return nil, tlsError(err)
	}
	st := s.Conn.ConnectionState()
	return st.ExportKeyingMaterial("EXPORTER-conclave-v2", nil, 32)
}

// tlsError says in words what a TLS failure usually means here.
func tlsError(err error) error {
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) {
		return errors.New("the other end does not speak TLS (is --tls on at one end only?)")
	}
	return err
}

// streamConn makes a Stream a net.Conn for crypto/tls.
type streamConn struct{ Stream }

func (c streamConn) LocalAddr() net.Addr  { return addr("local") }
func (c streamConn) RemoteAddr() net.Addr { return addr(c.Stream.RemoteAddr()) }
func (c streamConn) SetDeadline(t time.Time) error {
	c.Stream.SetReadDeadline(t)
	return c.Stream.SetWriteDeadline(t)
}

type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }
