package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/conclave/conclave/group"
)

// rateResult is what the fixed-rate mode measures: the rate reached, and
// the latencies from each message's scheduled send time to its delivery
// at the last member (everywhere) and to its stability (every member
// acknowledged it).
type rateResult struct {
	rate       float64
	everywhere []time.Duration
	stable     []time.Duration
	missing    int // messages sent in the window that some member did not deliver in it
}

// runRate starts a group and has every member send at a fixed rate,
// together rate messages per second, open loop: each message is sent at
// its scheduled time (or at once, if the sender is late) without waiting
// for the ones before, and its latencies count from the scheduled time,
// so that a sender that falls behind does not hide the delay.
func (b groupBench) runRate(ctxParent context.Context, gsStart func(context.Context) ([]*group.Group, error), rate int) (rateResult, error) {
	ctx, cancel := context.WithTimeout(ctxParent, 30*time.Second+b.warmup+b.duration)
	defer cancel()
	gs, err := gsStart(ctx)
	defer func() {
		for _, g := range gs {
			g.Close()
		}
	}()
	if err != nil {
		return rateResult{}, err
	}
	n := len(gs)
	t0 := time.Now()
	start, end := t0.Add(b.warmup), t0.Add(b.warmup+b.duration)
	every := time.Duration(float64(time.Second) * float64(n) / float64(rate)) // per sender
	if every <= 0 {
		return rateResult{}, fmt.Errorf("--rate %d is too high for %d senders", rate, n)
	}
	// A message is named by its sender and number; each member records
	// when it delivered the messages scheduled within the window.
	type msgID struct{ from, seq uint64 }
	delivered := make([]map[msgID]time.Time, n)
	var readers sync.WaitGroup
	drain := end.Add(5 * time.Second) // the most time the last messages get to arrive
	// Once the senders are done, expected is how many messages were
	// scheduled in the window: a reader that has them all stops.
	sendersDone := make(chan struct{})
	var expected int
	for i, g := range gs {
		delivered[i] = map[msgID]time.Time{}
		readers.Add(1)
		go func() {
			defer readers.Done()
			stop := time.NewTimer(time.Until(drain))
			defer stop.Stop()
			done := sendersDone
			for {
				select {
				case m, ok := <-g.Deliveries():
					if !ok {
						return
					}
					if len(m.Data) < 24 {
						continue
					}
					sched := time.Unix(0, int64(binary.BigEndian.Uint64(m.Data[16:])))
					if sched.Before(start) || !sched.Before(end) {
						continue
					}
					delivered[i][msgID{binary.BigEndian.Uint64(m.Data), binary.BigEndian.Uint64(m.Data[8:])}] = time.Now()
				case <-done:
					done = nil
				case <-stop.C:
					return
				}
				if done == nil && len(delivered[i]) >= expected {
					return
				}
			}
		}()
	}
	type sent struct {
		id     msgID
		sched  time.Time
		stable time.Duration // 0 if it never became stable
	}
	sentBy := make([][]sent, n)
	var sendErr error
	var errMu sync.Mutex
	var senders, waiters sync.WaitGroup
	for i, g := range gs {
		senders.Add(1)
		go func() {
			defer senders.Done()
			payload := make([]byte, b.size)
			// Senders start spread over one interval, not all at once.
			next := t0.Add(every * time.Duration(i) / time.Duration(n))
			var mu sync.Mutex // guards sentBy[i]'s stable fields
			for seq := uint64(1); next.Before(end); seq++ {
				if d := time.Until(next); d > 0 {
					time.Sleep(d) // the schedule itself, not a wait for an event
				}
				binary.BigEndian.PutUint64(payload, uint64(i))
				binary.BigEndian.PutUint64(payload[8:], seq)
				binary.BigEndian.PutUint64(payload[16:], uint64(next.UnixNano()))
				done, err := g.Go(payload)
				if err != nil {
					errMu.Lock()
					sendErr = errors.Join(sendErr, err)
					errMu.Unlock()
					return
				}
				if !next.Before(start) {
					mu.Lock()
					sentBy[i] = append(sentBy[i], sent{id: msgID{uint64(i), seq}, sched: next})
					k := len(sentBy[i]) - 1
					mu.Unlock()
					sched := next
					waiters.Add(1)
					go func() {
						defer waiters.Done()
						select {
						case err := <-done:
							if err == nil {
								at := time.Since(sched)
								mu.Lock()
								sentBy[i][k].stable = at
								mu.Unlock()
							}
						case <-ctx.Done():
						}
					}()
				}
				next = next.Add(every)
			}
		}()
	}
	senders.Wait()
	for _, ss := range sentBy {
		expected += len(ss)
	}
	close(sendersDone)
	waiters.Wait()
	readers.Wait()
	if sendErr != nil {
		return rateResult{}, sendErr
	}
	var r rateResult
	total := 0
	for _, ss := range sentBy {
		for _, s := range ss {
			total++
			last, ok := time.Time{}, true
			for i := range gs {
				at, got := delivered[i][s.id]
				if !got {
					ok = false
					break
				}
				if at.After(last) {
					last = at
				}
			}
			if !ok {
				r.missing++
			} else {
				r.everywhere = append(r.everywhere, last.Sub(s.sched))
			}
			if s.stable > 0 {
				r.stable = append(r.stable, s.stable)
			}
		}
	}
	if total == 0 || len(r.everywhere) == 0 {
		return r, errors.New("nothing was delivered everywhere")
	}
	r.rate = float64(total) / b.duration.Seconds()
	slices.Sort(r.everywhere)
	slices.Sort(r.stable)
	return r, nil
}

// pctf returns the p-th percentile (0 < p ≤ 100) of sorted xs.
func pctf(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	k := int(p*float64(len(xs))/100+0.999999) - 1
	return xs[min(max(k, 0), len(xs)-1)]
}
