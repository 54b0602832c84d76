package pubsub_test

import (
	"context"
	"fmt"
	"time"
)

// A publisher and a subscriber of one topic, through a directory of three
// in-process replicas.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := startDir(4)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.close()
	pc, err := d.connect(ctx, "publisher")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pc.Close()
	sc, err := d.connect(ctx, "subscriber")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sc.Close()

	p, err := pc.Announce(ctx, "prices", "total")
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := sc.Subscribe(ctx, "prices")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("topic prices: QoS %s, group %s\n", s.QoS(), s.Group())
	p.WaitMembers(ctx, 2) // publish once the subscriber is in the view
	for _, v := range []string{"41", "42"} {
		if err := p.Publish(ctx, []byte(v)); err != nil {
			fmt.Println(err)
			return
		}
	}
	for range 2 {
		e := <-s.Events()
		fmt.Printf("%s> %s\n", e.Topic, e.Data)
	}
	// Output:
	// topic prices: QoS total, group g0
	// prices> 41
	// prices> 42
}
