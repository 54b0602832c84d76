package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/conclave/conclave/eventlog"
)

// eventsFlag adds --events-fd to fs.
func eventsFlag(fs *flag.FlagSet) *int {
	return fs.Int("events-fd", 0, "write every logged event as a JSON line to this inherited file descriptor, as in the event log "+
		"(1: standard output, instead of the human lines; 0: none)")
}

// eventStream writes events to the file descriptor of --events-fd, from
// a goroutine of its own: the node or member tees the lines of its event
// log to it (node.Config.Events, group.Config.Events).
type eventStream struct {
	fd int
	s  *eventlog.Stream
}

// openEvents returns the stream for --events-fd fd, nil for 0. stdout is
// the stream for fd 1; write errors, and lines the reader is too slow
// for, are reported on stderr at once.
func openEvents(fd int, stdout, stderr io.Writer) (*eventStream, error) {
	var out io.Writer
	switch {
	case fd == 0:
		return nil, nil
	case fd < 0:
		return nil, usagef("--events-fd must be a file descriptor number, not %d", fd)
	case fd == 1:
		out = stdout
	default:
		f := os.NewFile(uintptr(fd), fmt.Sprintf("/dev/fd/%d", fd))
		if _, err := f.Stat(); err != nil {
			return nil, usagef("--events-fd %d is not an open file descriptor", fd)
		}
		out = f
	}
	s := eventlog.NewStream(out, eventlog.DefaultStreamBuffer)
	s.OnLoss(func(err error) {
		fmt.Fprintf(stderr, "conclave: writing events to file descriptor %d: %v: the events that cannot be written are lost, and counted\n", fd, err)
	})
	return &eventStream{fd: fd, s: s}, nil
}

// Close writes what waits and reports the events that could not be
// written.
func (s *eventStream) Close() error {
	if err := s.s.Close(); err != nil {
		return fmt.Errorf("writing events to file descriptor %d: %w", s.fd, err)
	}
	return nil
}
