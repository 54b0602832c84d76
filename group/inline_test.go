package group

import (
	"testing"
)

// TestInlineViews: with InlineViews, Deliveries carries each view in
// order with the messages: a message a member sent after a second member
// joined comes after the view with both, and the first view comes first.
func TestInlineViews(t *testing.T) {
	a, err := Join(ctx(t), Config{Name: "inline", Stack: "vsync", Listen: "127.0.0.1:0", Member: "a", Key: testKey, InlineViews: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := Join(ctx(t), Config{Name: "inline", Stack: "vsync", Listen: "127.0.0.1:0", Member: "b", Key: testKey,
		Contacts: []string{a.Me().Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Send(ctx(t), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	var installs []int
	for {
		select {
		case d := <-a.Deliveries():
			if d.Install != nil {
				if d.Install.ID != d.View || d.Data != nil {
					t.Fatalf("an install with other fields set: %+v", d)
				}
				installs = append(installs, len(d.Install.Members))
				continue
			}
			if string(d.Data) != "hello" {
				t.Fatalf("delivered %q", d.Data)
			}
			if len(installs) == 0 || installs[0] != 1 || installs[len(installs)-1] != 2 {
				t.Fatalf("views before the message: %v members; want 1 first and 2 last", installs)
			}
			return
		case <-ctx(t).Done():
			t.Fatalf("no delivery; views %v", installs)
		}
	}
}
