package directory_test

import (
	"testing"

	"github.com/conclave/conclave/directory"
	"github.com/conclave/conclave/directory/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		s := &directory.MemStore{}
		return func() (directory.Store, error) { return s, nil }
	})
}
