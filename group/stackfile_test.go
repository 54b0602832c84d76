package group

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
