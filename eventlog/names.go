package eventlog

import (
	"strconv"
	"strings"
)

// The event catalogue: every event name and field key conclave writes,
// grouped by who writes them. docs/events.md describes each one, and a test
// fails when the two disagree. Names are a public interface: only add.

// Control is the node name of the launcher or simulator that starts and
// faults processes.
const Control = "control"

// PeerName returns the node name of peer id: "peer-<id>".
func PeerName(id int) string { return "peer-" + strconv.Itoa(id) }

// PeerID returns the id of a node named by PeerName, or -1: the name must
// be "peer-" and at most nine decimal digits.
func PeerID(node string) int {
	s, ok := strings.CutPrefix(node, "peer-")
	if !ok || s == "" || len(s) > 9 {
		return -1
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
	}
	id, _ := strconv.Atoi(s)
	return id
}

// MemberName returns the name of the group member in slot i, as package
// launch and the group simulator name them: "m<i>".
func MemberName(i int) string { return "m" + strconv.Itoa(i) }

// Events of peers and group members alike.
const (
	Start      = "start"
	Stop       = "stop"
	Paused     = "paused"
	DialFailed = "dial_failed"
)

// Peer events, written by the peer core (package peer) and its runtime.
const (
	ConnUp       = "conn_up"
	ConnDown     = "conn_down"
	ConnRejected = "conn_rejected"
	PeerUp       = "peer_up"
	PeerDown     = "peer_down"
	ElectionOpen = "election_open"
	LeaderChange = "leader_change"
	UrgentSent   = "urgent_sent"
	UrgentRecv   = "urgent_recv"
	HBSent       = "hb_sent"
	HBRecv       = "hb_recv"
)

// Group member events, written by a member's runtime (package group, and
// the group simulator).
const (
	View        = "view"
	Send        = "send"
	Acked       = "acked"
	Deliver     = "deliver"
	Left        = "left"
	ConnRefused = "conn_refused"
	BadMsg      = "bad_msg" // also written by the layers
)

// Group member events, written by the layers of its stack (package layers).
const (
	Found           = "found"
	JoinRequest     = "join_request"
	JoinRefused     = "join_refused"
	Flush           = "flush"
	Suspect         = "suspect"
	SuspectReport   = "suspect_report"
	FlushTimeout    = "flush_timeout"
	FlushAbandoned  = "flush_abandoned"
	Excluded        = "excluded"
	Dissolve        = "dissolve"
	Refused         = "refused"
	Gap             = "gap"
	OrderSkipped    = "order_skipped"
	OrderStale      = "order_stale"
	BadContribution = "bad_contribution"
)

// Directory replica events, written by a replica's runtime (package
// dirnode) and the simulator.
const (
	DirStart = "dir_start"
	DirStop  = "dir_stop"
	DirRole  = "dir_role"
	DirApply = "dir_apply"
)

// Publish/subscribe client events, written by package pubsub.
const (
	PSAnnounce  = "ps_announce"
	PSSubscribe = "ps_subscribe"
	PSUnsub     = "ps_unsubscribe"
	PSDeliver   = "ps_deliver"
	PSView      = "ps_view"
	PSPublish   = "ps_publish"
	PSLeave     = "ps_leave"
	PSMove      = "ps_move"
	PSDirLeader = "ps_dir_leader"
	PSStats     = "ps_stats"
)

// Directory client events, written by package dirclient for the process
// that uses it (a pub/sub client, for one).
const (
	DirCall   = "dir_call"
	DirReturn = "dir_return"
)

// Control events (node Control), written by package launch, the tests and
// the simulators.
const (
	ProcStart    = "proc_start"
	ProcKill     = "proc_kill"
	ProcStop     = "proc_stop"
	ProcCont     = "proc_cont"
	ProcTerm     = "proc_term"
	ProcLeave    = "proc_leave"
	Step         = "step"
	Converged    = "converged"
	NetPartition = "net_partition"
	NetBridge    = "net_bridge"
	NetCut       = "net_cut"
	NetHeal      = "net_heal"
	NetReset     = "net_reset"
	NetDelay     = "net_delay"
)

// Events any process may write.
const (
	// LogError stands in for an event whose fields could not be encoded.
	LogError = "log_error"
	// LogLost precedes the first line written after lines were lost.
	LogLost = "log_lost"
)

// Field keys.
const (
	FieldA              = "a"
	FieldAddr           = "addr"
	FieldAfterMS        = "after_ms"
	FieldAlive          = "alive"
	FieldApplied        = "applied"
	FieldAttempt        = "attempt"
	FieldB              = "b"
	FieldBridge         = "bridge"
	FieldBy             = "by"
	FieldCall           = "call"
	FieldCause          = "cause"
	FieldClient         = "client"
	FieldDelivered      = "delivered"
	FieldDialed         = "dialed"
	FieldError          = "error"
	FieldEvent          = "event"
	FieldFiltered       = "filtered"
	FieldFinal          = "final"
	FieldFlushed        = "flushed"
	FieldForMS          = "for_ms"
	FieldFrom           = "from"
	FieldGot            = "got"
	FieldGroup          = "group"
	FieldGroups         = "groups"
	FieldHeartbeatMS    = "heartbeat_ms"
	FieldID             = "id"
	FieldIndex          = "index"
	FieldInto           = "into"
	FieldKind           = "kind"
	FieldMoves          = "moves"
	FieldLayer          = "layer"
	FieldLeader         = "leader"
	FieldLines          = "lines"
	FieldLost           = "lost"
	FieldMS             = "ms"
	FieldMember         = "member"
	FieldMembers        = "members"
	FieldMine           = "mine"
	FieldMsg            = "msg"
	FieldN              = "n"
	FieldName           = "name"
	FieldOf             = "of"
	FieldOp             = "op"
	FieldOrder          = "order"
	FieldPID            = "pid"
	FieldPeer           = "peer"
	FieldPeerInc        = "peer_inc"
	FieldPrev           = "prev"
	FieldNoticeDelayMS  = "notice_delay_ms"
	FieldProc           = "proc"
	FieldProposal       = "proposal"
	FieldQoS            = "qos"
	FieldQuorum         = "quorum"
	FieldReason         = "reason"
	FieldReplicas       = "replicas"
	FieldResult         = "result"
	FieldRole           = "role"
	FieldSeq            = "seq"
	FieldSince          = "since"
	FieldStack          = "stack"
	FieldStep           = "step"
	FieldSuspectAfterMS = "suspect_after_ms"
	FieldTerm           = "term"
	FieldTo             = "to"
	FieldTopic          = "topic"
	FieldUntil          = "until"
	FieldVia            = "via"
	FieldView           = "view"
	FieldWant           = "want"
)

// Values of FieldCause: why a peer is down, a member suspected, or a flush
// abandoned.
const (
	CauseConnClosed = "conn_closed"
	CauseSilence    = "silence"
	CauseGap        = "gap"
	CauseSuspected  = "suspected" // flush_abandoned: its coordinator is suspected
	CauseWaited     = "waited"    // flush_abandoned: no Install nor new attempt came
	CauseExcluded   = "excluded"  // flush_abandoned: a member of its view installed the next one without it
)
