package boltstore

import (
	"path/filepath"
	"testing"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/directory/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "directory.db")
		return func() (directory.Store, error) { return Open(path, nil) }
	})
}
