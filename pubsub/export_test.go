package pubsub

// SkipMoveWait makes subscribers switch groups without waiting for the
// publishers' markers: the mutation the move tests must catch.
var SkipMoveWait = &skipMoveWait

// SetBeforeSwitch has f run in each publisher's move just before it
// switches groups (nil: nothing).
func SetBeforeSwitch(f func()) {
	if f == nil {
		beforeSwitch.Store(nil)
	} else {
		beforeSwitch.Store(&f)
	}
}
