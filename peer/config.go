package peer

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for Config.
const (
	DefaultHeartbeat    = 100 * time.Millisecond
	DefaultSuspectAfter = 500 * time.Millisecond
	DefaultRedialMin    = 20 * time.Millisecond
	DefaultRedialMax    = 500 * time.Millisecond
	DefaultNoticeDelay  = 5 * time.Millisecond
)

// Config configures a Core. The zero value of each duration means its
// default.
type Config struct {
	// ID is this peer's id, in [0, N).
	ID int
	// N is the number of peers in the cluster, at least 2.
	N int
	// Heartbeat is the interval between heartbeats on each connection.
	Heartbeat time.Duration
	// SuspectAfter is how long a connection may stay silent (no heartbeat)
	// before its peer is declared down and the connection is closed. It
	// must be longer than Heartbeat.
	SuspectAfter time.Duration
	// Quorum makes the peer recognise a leader only while it sees a
	// majority of the N peers correct (itself included).
	Quorum bool
	// RedialMin and RedialMax bound the exponential back-off between
	// attempts to connect to a peer.
	RedialMin, RedialMax time.Duration
	// NoticeDelay is how long after a change of leader the peer waits
	// before it sends its urgent notices, which then name the leader of
	// that moment. Changes within that time go out as one notice, and one
	// undone within it (the leader is again the one last announced) as
	// none. A negative NoticeDelay sends the notices in the step of the
	// change.
	NoticeDelay time.Duration
}

// Validate fills in defaults and reports the first problem with c.
func (c *Config) Validate() error {
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.SuspectAfter == 0 {
		c.SuspectAfter = DefaultSuspectAfter
	}
	if c.RedialMin == 0 {
		c.RedialMin = DefaultRedialMin
	}
	if c.NoticeDelay == 0 {
		c.NoticeDelay = DefaultNoticeDelay
	}
	if c.RedialMax == 0 {
		c.RedialMax = max(DefaultRedialMax, c.RedialMin)
	}
	switch {
	case c.N < 2:
		return fmt.Errorf("a cluster needs at least 2 peers, got %d", c.N)
	case c.ID < 0 || c.ID >= c.N:
		return fmt.Errorf("id %d is out of range: ids go from 0 to %d", c.ID, c.N-1)
	case c.Heartbeat < 0 || c.SuspectAfter < 0 || c.RedialMin < 0 || c.RedialMax < 0:
		return errors.New("durations must be positive")
	case c.SuspectAfter <= c.Heartbeat:
		return fmt.Errorf("suspect-after (%v) must be longer than the heartbeat interval (%v)", c.SuspectAfter, c.Heartbeat)
	case c.RedialMax < c.RedialMin:
		return fmt.Errorf("the longest redial back-off (%v) is shorter than the shortest (%v)", c.RedialMax, c.RedialMin)
	}
	return nil
}
