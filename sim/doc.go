// Package sim runs the pure protocol machines — peer cores and group
// member stacks — on a simulated clock and network, driven by one seed:
// every delay and every random choice comes from it, so a run is replayed
// exactly by running the same seed again.
//
// A Net is a set of processes with one address each; a process hosts
// machines, as the real runtime's. New puts a peer core on each (NewOn
// adds them to a Net). Peers share one connection per pair (the lower id
// dials, a Hello handshake, then admission by the core). The network is
// TCP-like: reliable and FIFO per connection; a closed or crashed end
// makes the other end see end-of-stream after the data in flight; a
// partition holds traffic until it heals, and a connection attempt across
// it times out.
//
// Faults apply to processes whatever they host (Net's methods and Apply):
// crash, start (a new incarnation), pause and resume (a hung process whose
// kernel still queues what arrives), stop, connection reset, partitions of
// any shape, one-way cuts (which block both directions of the pair, as
// they do to TCP: ACKs cannot return, see
// ../shared/reference/fault-injection.md), extra delay on a link, heal.
//
// Everything that happens is recorded as eventlog.Events: the machines'
// own events under their node names, and the faults under node "control"
// with the names the real launcher uses (proc_kill, proc_stop, ...), so
// the same checkers read both.
package sim
