// Package helper holds a test helper in a package the binary imports.
package helper

import "testing"

// Skip skips t.
func Skip(t *testing.T) { t.Skip() }

// Name is what the binary wanted from this package.
const Name = "fake"
