// Package sim runs the pure protocol machines — peer cores, group member
// stacks and directory replicas — on one simulated clock, network and
// disk, driven by one seed: every delay and every race is decided by it,
// so a run is replayed exactly by running the same seed again. NewDir
// adds directory clients to the replicas, and NewPubSub publish/subscribe
// clients that follow package pubsub's protocol over the directory and
// the groups.
//
// A Net is a set of processes with one address each. A process hosts any
// number of machines, as the real runtime's: New and NewGroup make a Net
// with a peer core or a group member in each process, NewOn and
// NewGroupOn add them to a Net that may host others already. Connections
// are made the way the runtime makes them: a connect, then a handshake,
// each bounded by a dial timeout. Peers share one connection per pair (the
// lower id dials, Hello, admission by the core); group members have one
// per direction (the sender dials, the acceptor only reads). The network
// is TCP-like: reliable and FIFO per connection; a closed or crashed end
// makes the other end see end-of-stream after the data in flight; a
// partition holds traffic until it heals, and a connection attempt across
// it times out.
//
// One fault vocabulary applies to every process whatever it hosts (Net's
// methods, Apply): crash, start (a new incarnation), stop, pause and
// resume (a hung process whose kernel still queues what arrives; whether
// its timers or its queued input run first on resume is the seed's
// choice), reset, partitions of any shape (isolate, split, bridge),
// one-way cuts (which block both directions of the pair, as they do to
// TCP, whose acknowledgements cannot return: on real hosts a rule that
// drops at one host what another sends ends their connection both ways,
// netns.TestNetOneWayCut), extra delay on a link, and heal. Each process has a Disk whose unsynced writes a crash
// loses; DiskStore keeps a directory replica's Raft state on it.
//
// Everything that happens is recorded as eventlog.Events: the machines'
// own events under their node names (eventlog.PeerName, "peer-<id>", and
// eventlog.MemberName, "m<slot>"), and the faults under node
// eventlog.Control with the names the real launcher uses (proc_kill,
// proc_stop, ...), so the same checkers read both. docs/simulator.md says
// what the simulator models and what it does not.
package sim
