package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/conclave/conclave/host"
	"github.com/conclave/conclave/transport"
)

// keyEnv names the key file when --key-file is not given.
const keyEnv = "CONCLAVE_KEY_FILE"

// keyFlags are the flags of a command that connects to others.
type keyFlags struct {
	file     *string
	insecure *bool
	tls      *bool
}

func addKeyFlags(fs *flag.FlagSet) keyFlags {
	return keyFlags{
		file: fs.String("key-file", "", "the cluster key (made by conclave keygen): every connection proves it, both ways "+
			"(default: $"+keyEnv+"; none: unauthenticated, loopback only)"),
		insecure: fs.Bool("insecure", false, "without a key, listen on addresses other than loopback anyway: anyone who reaches them gets in"),
		tls:      fs.Bool("tls", false, "encrypt every connection with TLS 1.3, bound to the cluster key (needs --key-file; every process must use it)"),
	}
}

// load reads the key, if one is named; it says on stderr when there is none.
func (k keyFlags) load(stderr io.Writer) (transport.Key, error) {
	path := *k.file
	if path == "" {
		path = os.Getenv(keyEnv)
	}
	if path == "" {
		if *k.tls {
			return nil, usagef("--tls needs a cluster key: --key-file or $%s", keyEnv)
		}
		if *k.insecure {
			fmt.Fprintln(stderr, "warning: no cluster key and --insecure: connections are not authenticated")
		} else {
			fmt.Fprintln(stderr, "note: no cluster key: connections are not authenticated, so only loopback addresses are served (conclave keygen makes a key)")
		}
		return nil, nil
	}
	key, err := transport.ReadKeyFile(path)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return key, nil
}

// unprotected turns the refusal to listen without a key into a usage
// error naming the flags.
func unprotected(err error) error {
	if errors.Is(err, host.ErrUnprotected) {
		return usageError{err.Error() + ": --key-file, or --insecure"}
	}
	return err
}

func runKeygen(args []string) error {
	fs := newFlags("keygen", "keygen FILE   (- writes the key to standard output)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: conclave keygen FILE (- for standard output)")
	}
	key := transport.NewKey()
	if pos[0] == "-" {
		fmt.Println(key)
		return nil
	}
	if _, err := os.Lstat(pos[0]); err == nil {
		return usagef("%s already exists: keygen does not replace a key (remove it first)", pos[0])
	}
	if err := transport.WriteKeyFile(pos[0], key); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote a new cluster key to %s (readable by you only); give it to every process with --key-file\n", pos[0])
	return nil
}
