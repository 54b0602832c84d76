package group

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
)

// pipeWait is how long LoadStack waits for a pipe to deliver a stack
// description.
var pipeWait = 5 * time.Second

// LoadStack returns the stack description called name: a shipped stack
// (see layers.Shipped), or, if name ends in .xml or contains a slash, the
// file at path name, read up to stack.MaxDescription bytes. The file must
// be a regular file or a pipe (a FIFO, the shell's <(...)), which is read
// for at most 5 s and not waited for if nobody writes to it; devices and
// directories are refused.
func LoadStack(name string) (*stack.Description, error) {
	if !layers.IsFile(name) {
		return layers.Load(name)
	}
	// Without O_NONBLOCK, opening a FIFO waits for a writer.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch mode := st.Mode(); {
	case mode.IsRegular():
	case mode&os.ModeNamedPipe != 0:
		if err := f.SetReadDeadline(time.Now().Add(pipeWait)); err != nil {
			return nil, fmt.Errorf("stack file %s: %w", name, err)
		}
	default:
		return nil, fmt.Errorf("stack file %s is %s", name, kind(mode))
	}
	d, err := layers.Read(name, f)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, fmt.Errorf("stack file %s: the pipe did not end within %v", name, pipeWait)
	}
	return d, err
}

// kind names a type of file that is neither regular nor a pipe.
func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}
