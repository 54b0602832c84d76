package clean

import (
	"os"
	"testing"
	"time"
)

// Tests may do what the package may not.
func TestDeadline(t *testing.T) {
	done := make(chan bool)
	go func() { done <- os.Getenv("X") == "" }()
	<-done
	if !Deadline(time.Now(), 0).Before(time.Now().Add(time.Second)) {
		t.Fail()
	}
}
