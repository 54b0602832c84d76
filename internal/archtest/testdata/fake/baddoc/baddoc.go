// This package has a doc comment that does not begin with its name.
package baddoc
