// Package directory is the replicated directory of topics: a pure,
// deterministic state machine that maps topics to their quality of
// service and group, and a Replica that replicates it with Raft
// (go.etcd.io/raft/v3). Neither touches sockets, disks, goroutines or the
// clock: the host runtime and the simulator drive them through inputs
// and effects, and persist what they ask to persist through a Store.
package directory
