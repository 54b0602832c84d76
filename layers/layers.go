// Package layers holds the protocol layers of group communication and the
// stacks conclave ships: detect (failure detector), membership (views,
// joins, leaves, flush), vsync (reliable FIFO multicast with view
// synchrony), total (sequencer total order) and bundle (the messages of a
// batch sent as one), registered in Registry, and the stack descriptions
// vsync and total.
package layers

import (
	"embed"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/stack"
)

//go:embed stacks/*.xml
var shipped embed.FS

// Defaults of the layers' parameters: Registry formats its defaults (what
// a description may omit) from these. They are declared here rather than
// taken from package peer: the detect layer applies the peer core's rules
// and starts from the same values, but the two are separate settings (a
// stack description sets one, peer.Config the other), and changing one
// should not silently change the other; layers depends on package stack
// only.
const (
	DefaultHeartbeat    = 100 * time.Millisecond // detect: heartbeat
	DefaultSuspectAfter = 500 * time.Millisecond // detect: suspect-after
	DefaultRetry        = 200 * time.Millisecond // membership: retry
	DefaultWindow       = 1024                   // vsync: window
	DefaultGapTimeout   = time.Second            // vsync: gap-timeout
)

// Registry returns a registry of the layer kinds of this package.
func Registry() *stack.Registry {
	r := stack.NewRegistry()
	r.Register(stack.Kind{
		Name: "detect",
		Doc:  "failure detector: heartbeats to the view's members; a lost connection or silence makes a member suspected",
		Params: []stack.Param{
			{Name: "heartbeat", Type: stack.Duration, Default: DefaultHeartbeat.String(), Min: int64(time.Millisecond), Doc: "interval between heartbeats"},
			{Name: "suspect-after", Type: stack.Duration, Default: DefaultSuspectAfter.String(), Min: int64(time.Millisecond), Doc: "silence after which a member is suspected"},
		},
		Unique: true,
		New:    newDetect,
		Check:  checkDetect,
	})
	r.Register(stack.Kind{
		Name: "membership",
		Doc:  "views with ranked members; joins, leaves and exclusions through a flush run by the oldest member",
		Params: []stack.Param{
			{Name: "retry", Type: stack.Duration, Default: DefaultRetry.String(), Min: int64(time.Millisecond), Doc: "interval between join requests and flush resends"},
		},
		Below:  []string{"detect"},
		Unique: true,
		New:    newMembership,
	})
	r.Register(stack.Kind{
		Name: "vsync",
		Doc:  "reliable FIFO multicast with view synchrony: the same messages delivered by members passing together to the next view",
		Params: []stack.Param{
			{Name: "window", Type: stack.Int, Default: strconv.Itoa(DefaultWindow), Min: 1, Max: 1 << 20, Doc: "unacknowledged messages a sender may have in flight"},
			{Name: "gap-timeout", Type: stack.Duration, Default: DefaultGapTimeout.String(), Min: int64(time.Millisecond), Doc: "how long a missing message may stay missing, asked again every fifth of it, before its sender is suspected"},
		},
		Below:  []string{"membership"},
		Unique: true,
		New:    newVsync,
	})
	r.Register(stack.Kind{
		Name: "bundle",
		Doc:  "packs the messages sent in one batch into one, up to max bytes of data, and unpacks them on delivery; topmost",
		Params: []stack.Param{
			{Name: "max", Type: stack.Int, Default: strconv.Itoa(DefaultBundle), Min: 1, Max: 16 << 20, Doc: "bytes of data a bundle may hold (a larger message travels alone)"},
		},
		Below:  []string{"vsync"},
		Unique: true,
		Top:    true,
		New:    newBundle,
	})
	r.Register(stack.Kind{
		Name:   "total",
		Doc:    "total order by a sequencer at the coordinator, handed over at view changes",
		Below:  []string{"vsync"},
		Unique: true,
		New:    newTotal,
	})
	return r
}

// checkDetect refuses a detector that would suspect members between two
// heartbeats, with the sentence peer.Config.Validate has for the same
// settings.
func checkDetect(p stack.Params) error {
	if hb, after := p.Duration("heartbeat"), p.Duration("suspect-after"); after <= hb {
		return fmt.Errorf("suspect-after (%v) must be longer than the heartbeat interval (%v)", after, hb)
	}
	return nil
}

// Shipped returns the names of the stacks embedded in conclave.
func Shipped() []string {
	ents, _ := shipped.ReadDir("stacks")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".xml"))
	}
	return out
}

// ShippedXML returns the text of the shipped stack called name.
func ShippedXML(name string) ([]byte, bool) {
	b, err := shipped.ReadFile("stacks/" + name + ".xml")
	return b, err == nil
}

// IsFile reports whether the stack name names a file rather than a shipped
// stack: it ends in .xml or contains a slash.
func IsFile(name string) bool {
	return strings.HasSuffix(name, ".xml") || strings.Contains(name, "/")
}

// Load returns the shipped stack called name. This package reads no files:
// for a name that is a file (see IsFile), open it and call Read, as
// group.LoadStack does.
func Load(name string) (*stack.Description, error) {
	if IsFile(name) {
		return nil, fmt.Errorf("stack %q is a file: open it and call layers.Read, or use group.LoadStack", name)
	}
	b, ok := ShippedXML(name)
	if !ok || strings.Contains(name, ".") {
		return nil, fmt.Errorf("no stack %q: the shipped stacks are %s; a file must end in .xml", name, strings.Join(Shipped(), ", "))
	}
	return Registry().Parse(name+".xml", b)
}

// Read returns the stack description read from r, naming file in errors.
// It reads at most stack.MaxDescription bytes, and refuses a longer
// description.
func Read(file string, r io.Reader) (*stack.Description, error) {
	b, err := io.ReadAll(io.LimitReader(r, stack.MaxDescription+1))
	if err != nil {
		return nil, err
	}
	if len(b) > stack.MaxDescription {
		return nil, &stack.Error{File: file, Msg: fmt.Sprintf("description is over the limit of %d bytes", stack.MaxDescription)}
	}
	return Registry().Parse(file, b)
}
