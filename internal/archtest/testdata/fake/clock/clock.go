// Package clock is a pure package that reads the real clock and global
// randomness.
package clock

import (
	"math/rand/v2"
	t "time"
)

// Now returns the real time.
func Now() t.Time { return t.Now() }

// Wait waits a second.
func Wait() { t.Sleep(t.Second) }

// Clock reads the real clock when called.
var Clock = t.Now

// Elapsed is allowed: durations and times are values.
func Elapsed(a, b t.Time) t.Duration { return b.Sub(a) }

// Shadow is allowed: its t is not the package.
func Shadow() int {
	t := struct{ Now int }{1}
	return t.Now
}

// Roll draws from the global source.
func Roll() int { return rand.IntN(6) }

// Seeded is allowed: it draws from a generator made from a seed.
func Seeded(seed uint64) int { return rand.New(rand.NewPCG(seed, 1)).IntN(6) }
