package pubsub

import "github.com/conclave/conclave/group"

// BreakDeliveries makes c pass what its members deliver through f before
// it dispatches it. Call it before c joins a group.
func BreakDeliveries(c *Client, f func(<-chan group.Delivery) <-chan group.Delivery) {
	c.fault = &fault{deliveries: f}
}

// BreakFilter makes c hand the events of topic t to the subscriptions of
// route(t). Call it before c joins a group.
func BreakFilter(c *Client, route func(t string) string) { c.fault = &fault{route: route} }
