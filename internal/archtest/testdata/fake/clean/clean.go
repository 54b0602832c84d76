// Package clean is a pure package that keeps the rules.
package clean

import "time"

// Deadline returns when a timer started at now for d fires.
func Deadline(now time.Time, d time.Duration) time.Time { return now.Add(d) }
