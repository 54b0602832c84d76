package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// tcpBuffer is the size of the floor's read and write buffers.
const tcpBuffer = 64 << 10

// writeFrame writes p with a 4-byte length in front.
func writeFrame(w *bufio.Writer, p []byte) error {
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(p)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

// readFrame reads a frame into buf, which must be large enough.
func readFrame(r *bufio.Reader, buf []byte) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if int(n) > len(buf) {
		return nil, fmt.Errorf("frame of %d bytes, over %d", n, len(buf))
	}
	_, err := io.ReadFull(r, buf[:n])
	return buf[:n], err
}

// tcpMesh measures the floor under a group: n nodes on loopback, each
// sending frames of o.size bytes to each of the others over a connection
// of its own, as fast as TCP takes them. A node delivers what it receives
// and what it sends itself. It returns delivered/s at the slowest node.
func tcpMesh(o options, n int) (float64, error) {
	lns := make([]net.Listener, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		lns[i] = ln
	}
	counts := make([]*counter, n)
	for i := range counts {
		counts[i] = newCounter()
	}
	var readers sync.WaitGroup
	errs := make(chan error, n*n)
	for i, ln := range lns {
		readers.Add(n - 1)
		go func() {
			for range n - 1 {
				c, err := ln.Accept()
				if err != nil {
					errs <- err
					readers.Done()
					continue
				}
				go func() {
					defer readers.Done()
					defer c.Close()
					r := bufio.NewReaderSize(c, tcpBuffer)
					buf := make([]byte, o.size)
					for {
						if _, err := readFrame(r, buf); err != nil {
							if !errors.Is(err, io.EOF) {
								errs <- err
							}
							return
						}
						counts[i].add()
					}
				}()
			}
		}()
	}
	// outs[i] are node i's connections to the others.
	outs := make([][]net.Conn, n)
	for i := range n {
		for j := range n {
			if j == i {
				continue
			}
			c, err := net.Dial("tcp", lns[j].Addr().String())
			if err != nil {
				return 0, err
			}
			defer c.Close()
			outs[i] = append(outs[i], c)
		}
	}
	w := newWindow(o)
	startAll(w, counts...)
	var senders sync.WaitGroup
	for i := range n {
		senders.Add(1)
		go func() {
			defer senders.Done()
			ws := make([]*bufio.Writer, len(outs[i]))
			for k, c := range outs[i] {
				ws[k] = bufio.NewWriterSize(c, tcpBuffer)
			}
			payload := make([]byte, o.size)
			for seq := uint64(1); time.Now().Before(w.end); seq++ {
				stamp(payload, seq)
				for _, bw := range ws {
					if err := writeFrame(bw, payload); err != nil {
						errs <- err
						return
					}
				}
				counts[i].add()
			}
			for k, bw := range ws {
				if err := bw.Flush(); err != nil {
					errs <- err
				}
				outs[i][k].Close()
			}
		}()
	}
	senders.Wait()
	readers.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return slowest(w, counts), nil
}

// tcpRTT measures round trips of o.size-byte frames over one loopback
// connection, echoed by the other end, and returns their median.
func tcpRTT(o options) (time.Duration, error) { return tcpFanoutRTT(o, 1) }

// tcpFanoutRTT measures round trips of o.size-byte frames written to n
// loopback connections at once, each echoed by its other end, and returns
// their median, until the last echo is read: with n = 3, the floor under a
// synchronous send among 4 members, which waits until every other member
// has the message and has said so.
func tcpFanoutRTT(o options, n int) (time.Duration, error) {
	type end struct {
		c net.Conn
		r *bufio.Reader
		w *bufio.Writer
	}
	ends := make([]end, n)
	for i := range ends {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			r, w := bufio.NewReaderSize(c, tcpBuffer), bufio.NewWriterSize(c, tcpBuffer)
			buf := make([]byte, o.size)
			for {
				p, err := readFrame(r, buf)
				if err != nil || writeFrame(w, p) != nil || w.Flush() != nil {
					return
				}
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return 0, err
		}
		defer c.Close()
		ends[i] = end{c, bufio.NewReaderSize(c, tcpBuffer), bufio.NewWriterSize(c, tcpBuffer)}
	}
	payload, buf := make([]byte, o.size), make([]byte, o.size)
	w := newWindow(o)
	var lat []time.Duration
	for seq := uint64(1); time.Now().Before(w.end); seq++ {
		stamp(payload, seq)
		t0 := time.Now()
		for _, e := range ends {
			if err := writeFrame(e.w, payload); err != nil {
				return 0, err
			}
			if err := e.w.Flush(); err != nil {
				return 0, err
			}
		}
		for _, e := range ends {
			if _, err := readFrame(e.r, buf); err != nil {
				return 0, err
			}
		}
		if !t0.Before(w.start) {
			lat = append(lat, time.Since(t0))
		}
	}
	if len(lat) == 0 {
		return 0, errors.New("no round trip in the window")
	}
	slices.Sort(lat)
	return pct(lat, 50), nil
}
