package main

import (
	"flag"
	"net"
	"os"
	"strconv"
	"time"
	"unicode"
)

// parseArgs parses a command line whose flags may come before, between or
// after its arguments (up to "--"), and returns the arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// positive refuses a duration flag that is zero or negative: zero would
// otherwise silently mean the default.
func positive(name string, d time.Duration) error {
	if d <= 0 {
		return usagef("--%s must be positive, not %v", name, d)
	}
	return nil
}

// checkAddr refuses an address flag that is not host:port with a numeric
// port. An address to listen on may have port 0 (any free port) and no
// host (every interface); one to reach needs both.
func checkAddr(name, a string, listen bool) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return usagef("--%s %q is not host:port", name, a)
	}
	low := 1
	if listen {
		low = 0
	}
	if p, err := strconv.Atoi(port); err != nil || p < low || p > 65535 {
		return usagef("--%s %q: the port must be a number from %d to 65535", name, a, low)
	}
	if host == "" && !listen {
		return usagef("--%s %q has no host", name, a)
	}
	return nil
}

// checkDir refuses a directory flag naming something that exists and is
// not a directory; a directory that does not exist yet is made.
func checkDir(name, dir string) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return usagef("--%s %s is not a directory", name, dir)
	}
	return nil
}

// checkName refuses a name that would not make a file name or a readable
// member id: letters, digits, '-' and '_' only.
func checkName(name, v string) error {
	if v == "" {
		return usagef("--%s must not be empty", name)
	}
	for _, r := range v {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '_' {
			return usagef("--%s %q: use letters, digits, '-' and '_' only (it names the log file and the member in views)", name, v)
		}
	}
	return nil
}
