package group

import (
	"os"

	"github.com/conclave/conclave/layers"
	"github.com/conclave/conclave/stack"
)

// LoadStack returns the stack description called name: a shipped stack
// (see layers.Shipped), or, if name ends in .xml or contains a slash, the
// file at path name, read up to stack.MaxDescription bytes.
func LoadStack(name string) (*stack.Description, error) {
	if !layers.IsFile(name) {
		return layers.Load(name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return layers.Read(name, f)
}
