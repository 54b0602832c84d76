// Command conclave runs and inspects conclave peers and groups.
//
// Usage:
//
//	conclave keygen FILE                        write a new cluster key
//	conclave peer --id I --peers A0,A1,...      run one peer
//	conclave group --group NAME [--contacts A]  join a group; send stdin lines, print deliveries
//	conclave publish --directory A,B,C --topic T  announce T; publish stdin lines as events
//	conclave subscribe --directory A,B,C --topic T  print T's events as "T> data"
//	conclave demo [--n 4] [--out DIR] [--pace D] run a scripted failure story on loopback
//	conclave demo pubsub [--out DIR]            the same for publish/subscribe
//	conclave logs merge DIR                     merge a run's logs into DIR/run.jsonl and DIR/run.log
//	conclave report DIR                         write DIR/report.html from a run's logs
//	conclave bench failover [--n 4]             measure failover time with real processes
//	conclave bench group [--members 4]          measure a group's throughput and latency
//	conclave bench pubsub [--topics 1000]       measure publish/subscribe throughput and waste
//
// Run "conclave COMMAND --help" for the flags of each command. A bad
// command line exits with status 2 and a sentence saying what is wrong.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// usageError is a bad command line or configuration: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// command is one command of the CLI; its name may be two words
// ("bench group").
type command struct {
	name, synopsis, summary string
	run                     func(args []string) error
}

var commands = []command{
	{"keygen", "FILE", "write a new cluster key to FILE (-: standard output)", runKeygen},
	{"peer", "--id I --peers A0,A1,...", "run one peer of a cluster", runPeer},
	{"group", "--group NAME [--contacts A,...]", "join a group: send the lines of stdin, print deliveries and views", runGroup},
	{"directory", "--id I --peers A0,A1,A2 --data DIR", "run one replica of the directory of topics", runDirectory},
	{"publish", "--directory A,B,C --topic T [--qos Q]", "announce a topic and publish each line of stdin as an event", runPublish},
	{"subscribe", "--directory A,B,C --topic T [--wait]", "subscribe to topics and print their events as TOPIC> data", runSubscribe},
	{"topics", "--directory A0,A1,A2", "list the directory's topics and groups", runTopics},
	{"move", "--directory A0,A1,A2 --topic T --group G", "move a topic to another group of its QoS", runMove},
	{"demo pubsub", "[--out DIR]", "run a directory, publishers and subscribers on loopback through a scripted failure story", runDemoPubSub},
	{"demo", "[--n 4] [--out DIR] [--pace 400ms]", "run N peers on loopback through a scripted failure story", runDemo},
	{"logs merge", "DIR", "merge a run's event logs into DIR/run.jsonl and DIR/run.log", runLogsMerge},
	{"report", "DIR", "write DIR/report.html, the report of a run", runReport},
	{"bench failover", "[--n 4] [--mode crash|hang|both]", "measure failover time with real processes", runBenchFailover},
	{"bench directory", "[--replicas 3] [--runs 20]", "measure the directory's announces and failover", runBenchDirectory},
	{"bench group", "[--members 4] [--size 1024]", "measure a group's throughput and latency", runBenchGroup},
	{"bench soak", "[--n 4] [--duration 10m] [--burners 2]", "count false suspicions of peers beside CPU-burning processes", runBenchSoak},
	{"bench floor-peer", "--id I --peers A0,A1,...", "one process of the floor of bench failover --floor: it only watches its connections close", runBenchFloorPeer},
	{"bench pubsub", "[--topics 1000] [--subscribers 50]", "measure publish/subscribe throughput, latency and waste", runBenchPubSub},
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, rest, err := lookup(args)
	if err != nil {
		if c.name == "" {
			fmt.Fprintf(os.Stderr, "conclave: %v\n", err)
			usage()
		} else {
			fmt.Fprintf(os.Stderr, "conclave %s: %v\n", c.name, err)
		}
		return 2
	}
	err = c.run(rest)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "conclave %s: %v\n", c.name, err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "conclave %s: %v\n", c.name, err)
		return 1
	}
}

// lookup finds the command args name and returns it with its arguments.
// For a first word shared by several commands ("bench"), it returns an
// error listing them, with a command whose name is that word.
func lookup(args []string) (command, []string, error) {
	var alts []string
	for _, c := range commands {
		words := strings.Fields(c.name)
		if words[0] != args[0] {
			continue
		}
		if len(words) == 1 {
			return c, args[1:], nil
		}
		if len(args) > 1 && args[1] == words[1] {
			return c, args[2:], nil
		}
		alts = append(alts, words[1])
	}
	if len(alts) > 0 {
		return command{name: args[0]}, nil, fmt.Errorf("usage: conclave %s %s [flags]", args[0], strings.Join(alts, "|"))
	}
	return command{}, nil, fmt.Errorf("unknown command %q", args[0])
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: conclave COMMAND [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-48s %s\n", c.name+" "+c.synopsis, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'conclave COMMAND --help' for a command's flags. A bad command line exits with status 2.")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: conclave %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, turning errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}
