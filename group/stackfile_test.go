package group

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLoadStack(t *testing.T) {
	if d, err := LoadStack("total"); err != nil || d.Name != "total" {
		t.Errorf("LoadStack(total): %v, %v", d, err)
	}
	file := filepath.Join(t.TempDir(), "mine.xml")
	os.WriteFile(file, []byte(`<stack name="mine"><layer kind="detect" heartbeat="20ms"/></stack>`), 0o644)
	if d, err := LoadStack(file); err != nil || d.Name != "mine" || d.File != file {
		t.Errorf("LoadStack(%s): %v, %v", file, d, err)
	}
	if _, err := LoadStack(file + ".missing.xml"); err == nil || !os.IsNotExist(err) {
		t.Errorf("LoadStack of a missing file: %v", err)
	}
	if _, err := LoadStack("fifo"); err == nil || !strings.Contains(err.Error(), `no stack "fifo"`) {
		t.Errorf("LoadStack(fifo): %v", err)
	}
}

// TestLoadStackNeverWaitsOnAFile checks that a FIFO nobody writes to is
// not waited for, one whose writer never finishes is given up after
// pipeWait, and devices and directories are refused at once.
func TestLoadStackNeverWaitsOnAFile(t *testing.T) {
	dir := t.TempDir()
	fifo, silent := filepath.Join(dir, "stack.xml"), filepath.Join(dir, "silent.xml")
	for _, p := range []string{fifo, silent} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Skip(err)
		}
	}
	// A writer that holds the FIFO open and writes nothing.
	w, err := os.OpenFile(silent, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	defer func(d time.Duration) { pipeWait = d }(pipeWait)
	pipeWait = 200 * time.Millisecond
	cases := []struct{ name, want string }{
		{fifo, "no <stack> element"}, // nobody writes: empty
		{silent, "the pipe did not end within 200ms"},
		{"/dev/zero", "/dev/zero is a device"},
		{dir + "/", "is a directory"},
	}
	for _, c := range cases {
		done := make(chan error, 1)
		go func() {
			_, err := LoadStack(c.name)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("LoadStack(%s) = %v, want an error saying %q", c.name, err, c.want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("LoadStack(%s) is still waiting", c.name)
		}
	}
}
