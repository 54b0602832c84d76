package report

import "github.com/conclave/conclave/eventlog"

// Limits and markers shared by the stages.
const (
	maxLanes      = 64 // lanes drawn at most
	maxLanesFromN = 64 // 0..n-1 get lanes only up to this n
	noLeader      = -1 // leader value meaning none
	labelMax      = 48 // longest label or reason shown in full
)

// run is everything the report draws, derived from the event log by
// analyze: the index the stages read, and what each stage built.
type run struct {
	*index // the events, their times, the start settings and the lanes

	states  laneStates   // each lane's process life (states.go)
	ctrl    map[int]bool // lanes whose life comes from control events
	beliefs laneBeliefs  // whom each lane's peer believed leader (beliefs.go)
	leaders []int        // leader values believed, sorted

	notices         // urgent notices and heartbeat receipts (notices.go)
	marks   []mark  // control events drawn as vertical markers (marks.go)
	pmarks  []pmark // point events on a peer's lane
	faults  []*fault
	changes []change

	procs   []*proc           // processes that are not peers (activity.go)
	procOf  map[int]*proc     // the processes control events name
	senders map[string]string // a color per sender of deliveries
}

// analyze derives a run from events in causal order. It runs these stages;
// each takes what it reads as arguments and returns what it builds, so none
// can run before the stages it depends on:
//
//	readIndex ─┬─ processStates ─── leaderBeliefs ─┐
//	           ├─ readProcs ─── procOf ─┬─ listFaults ─┴─ converge
//	           │                        ├─ readMarks
//	           │                        └─ settleLives, senderColors
//	           ├─ readNotices
//	           └─ leaderChanges (after listFaults)
func analyze(events []eventlog.Event) *run {
	ix := readIndex(events)
	states, ctrl := processStates(ix)
	beliefs, leaders := leaderBeliefs(ix, states)
	procs := readProcs(ix)
	of := procOf(ix, procs)
	settleLives(ix, procs, of)
	faults := listFaults(ix, of)
	converge(faults, agreement{lanes: ix.lanes, lane: ix.lane, states: states, beliefs: beliefs})
	marks, pmarks := readMarks(ix, of)
	return &run{
		procs:   procs,
		procOf:  of,
		senders: senderColors(procs),
		index:   ix,
		states:  states,
		ctrl:    ctrl,
		beliefs: beliefs,
		leaders: leaders,
		notices: readNotices(ix),
		marks:   marks,
		pmarks:  pmarks,
		faults:  faults,
		changes: leaderChanges(ix, faults),
	}
}
