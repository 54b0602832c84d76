package group_test

import (
	"context"
	"fmt"
	"time"

	"github.com/conclave/conclave/group"
)

// Two members form a group with total order; each sends a message and
// both deliver the two messages in the same order.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice, err := group.Join(ctx, group.Config{Name: "chat", Stack: "total", Listen: "127.0.0.1:0", Member: "alice"})
	if err != nil {
		panic(err)
	}
	defer alice.Close()
	bob, err := group.Join(ctx, group.Config{Name: "chat", Stack: "total", Listen: "127.0.0.1:0", Member: "bob",
		Contacts: []string{alice.Me().Addr}})
	if err != nil {
		panic(err)
	}
	defer bob.Close()
	for v := range alice.Views() { // wait until alice installs the view with bob
		if len(v.Members) == 2 {
			break
		}
	}

	// Send returns once every member of the view holds the message.
	if err := alice.Send(ctx, []byte("hello from alice")); err != nil {
		panic(err)
	}
	if err := bob.Send(ctx, []byte("hello from bob")); err != nil {
		panic(err)
	}
	var orders [2][]string
	for i, g := range []*group.Group{alice, bob} {
		for range 2 {
			d := <-g.Deliveries()
			orders[i] = append(orders[i], string(d.Data))
		}
	}
	fmt.Println(orders[0])
	fmt.Println(orders[0][0] == orders[1][0] && orders[0][1] == orders[1][1])
	bob.Leave(ctx)
	v := <-alice.Views()
	fmt.Println(len(v.Members), "member left")
	// Output:
	// [hello from alice hello from bob]
	// true
	// 1 member left
}
