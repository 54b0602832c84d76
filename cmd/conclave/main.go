// Command conclave runs and inspects conclave peers.
//
// Usage:
//
//	conclave keygen FILE                      write a new cluster key
//	conclave peer --id I --peers A0,A1,...   run one peer
//	conclave group --group NAME [--contacts A]  join a group; send stdin lines, print deliveries
//	conclave demo [--n 4] [--out DIR]         run a scripted failure story on loopback
//	conclave logs merge DIR                   merge DIR/*.jsonl into DIR/run.jsonl and DIR/run.log
//	conclave report DIR                       write DIR/report.html from a run's logs
//	conclave bench failover [--n 4]           measure failover time with real processes
//
// Run "conclave COMMAND --help" for the flags of each command.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// usageError is a bad command line or configuration: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

var commands = []struct {
	name, summary string
	run           func(args []string) error
}{
	{"keygen", "write a new cluster key to a file", runKeygen},
	{"peer", "run one peer of a cluster", runPeer},
	{"group", "join a group: send the lines of stdin, print deliveries and views", runGroup},
	{"demo", "run N peers on loopback through a scripted failure story", runDemo},
	{"logs", "work with event logs (logs merge DIR)", runLogs},
	{"report", "write an HTML report of a run", runReport},
	{"bench", "measure (bench failover)", runBench},
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
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(args[1:])
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
	}
	fmt.Fprintf(os.Stderr, "conclave: unknown command %q\n", args[0])
	usage()
	return 2
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: conclave COMMAND [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'conclave COMMAND --help' for a command's flags.")
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
