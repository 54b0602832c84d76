// Package adversary is conclave's adversarial test suite: it starts real
// `conclave peer` and `conclave group` processes with a cluster key
// (package launch), and attacks them from the test process as an outsider
// without the key, or with a key of its own, would: by hand-made
// connections that speak the wire format, and by unauthenticated conclave
// processes.
//
// Each test tries one attack that once worked (issue 9 measured them) and
// proves two things: the attack is refused, and the processes attacked
// still behave correctly — the peer checkers (check.Peer) or the group
// checkers (check.Group) pass on the run's merged event logs, and every
// Lamport clock in those logs stays within an hour of the wall clock and
// never goes backwards within a process's life. The attacks:
//
//   - TestImpostorCannotEvictThePeer: Hellos claiming peer 0 with the
//     largest incarnation, held open, followed by forged heartbeats or by
//     a proof under no key or another key; an impostor that keeps trying
//     while peer 0 is killed and restarted; a listener that takes a killed
//     peer's port and answers as it. Nobody evicts peer 0, nobody follows
//     a dead leader, and the restarted peer 0 is not refused as stale.
//   - TestRefusedClocksDoNotMove: refused Hellos carrying Lamport clocks
//     2⁶³ and 2⁶⁴−4 move no process's clock.
//   - TestOutsidersCannotJoinSplitOrForge: conclave group processes
//     without the key, or with another, never enter the members' views; a
//     connection claiming a member's id closed at once splits nothing;
//     group messages sent without authenticating are refused unread.
//   - TestHostileConnectionsStayWithinMemory: 500 hostile connections
//     (slowloris, a Hello announcing 64 MiB, frames cut in half) leave a
//     peer's resident memory under a stated bound, its cluster keeps its
//     leader, and the peer is usable once they close.
//   - TestHeldHandshakesDoNotLockOutPeers: as many silent connections as
//     a peer takes handshakes at once, reopened as they are closed, do not
//     keep a restarted peer out (host.Config.MaxHandshakes).
//   - TestGarbageConnectionsDoNotFloodTheLog: 2,000 garbage connections
//     make a few dozen log lines, not 2,000, and every refusal is counted.
//   - TestProtectedMode: a process without a key refuses to listen on an
//     address that is not loopback (exit status 2) unless --insecure.
//
// The package holds tests only; docs/security.md states the threat model
// and the figures measured here.
package adversary
