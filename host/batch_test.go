package host

import (
	"strings"
	"testing"
	"time"
)

// TestDoNCountsInputs: an f posted with DoN counts as n inputs of a
// batch, so the effects are collected after as many inputs as if each
// had been posted alone.
func TestDoNCountsInputs(t *testing.T) {
	m := &counter{deadline: Never}
	var log []string
	var l *Loop[string, string]
	l = NewLoop[string, string](m, LoopConfig[string, string]{Tick: "tick", Batch: 4,
		Apply:      func(e string) { log = append(log, e) },
		AfterBatch: func() { log = append(log, "|") }})
	step := func(in string) func() { return func() { l.Step(in) } }
	l.Do(step("a"))
	l.DoN(3, step("b"))
	l.Do(step("c"))
	done := make(chan struct{})
	l.Do(func() { close(done) })
	l.Start(nil)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not run what was posted")
	}
	l.Stop()
	<-l.Done()
	if got, want := strings.Join(log, " "), "| did a did b | did c |"; got != want {
		t.Errorf("effects and batches %q, want %q", got, want)
	}
}
