// Package spawn is a pure package that starts a goroutine.
package spawn

// Later runs f in a goroutine.
func Later(f func()) {
	go f()
}
