package adversary

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/launch"
	"github.com/conclave/conclave/launch/launchtest"
	"github.com/conclave/conclave/transport"
)

// outsideAddr returns an address of this machine that is not loopback
// (IPv4 first), or "" if it has none.
func outsideAddr() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	var v6 string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			if ipn.IP.To4() != nil {
				return ipn.IP.String()
			}
			if v6 == "" {
				v6 = ipn.IP.String()
			}
		}
	}
	return v6
}

// freeAddr returns host:port with a port free right now on ip.
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	must(t, err)
	defer l.Close()
	return l.Addr().String()
}

// run runs conclave with args and no key, and returns its exit status and
// what it printed. It must end within 10 s.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env("CONCLAVE_KEY_FILE")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("conclave %s: %v; it printed %q", strings.Join(args, " "), err, out)
	return 0, ""
}

// TestProtectedMode starts conclave peers and group members without a key
// on addresses that are not loopback — any address (0.0.0.0, [::], and
// for a member an empty host) and this machine's own outside address:
// each refuses with exit status 2 and names --key-file and --insecure.
// With --insecure a cluster runs there; with a key one runs there too,
// and an impostor of peer 0 dialing from that address is refused. A
// process without a key listens on loopback only, out of reach from the
// outside address.
func TestProtectedMode(t *testing.T) {
	dir := t.TempDir()
	ip := outsideAddr()
	hosts := []string{"0.0.0.0", "::", ""}
	if ip != "" {
		hosts = append(hosts, ip)
	} else {
		t.Logf("this machine has no address but loopback: only the any-addresses are tried")
	}
	_, port, _ := net.SplitHostPort(freeAddr(t, "127.0.0.1"))
	for _, h := range hosts {
		listen := net.JoinHostPort(h, port)
		cmds := [][]string{{"group", "--group", "g", "--listen", listen, "--log-dir", dir}}
		if h != "" { // a peer's address needs a host
			cmds = append(cmds, []string{"peer", "--id", "0", "--peers", listen + ",127.0.0.1:1", "--log-dir", dir})
		}
		for _, args := range cmds {
			code, out := run(t, args...)
			if code != 2 || !strings.Contains(out, "--insecure") || !strings.Contains(out, "--key-file") {
				t.Errorf("conclave %s without a key: exit status %d, printed %q; want 2 and a sentence naming --key-file and --insecure", strings.Join(args, " "), code, out)
				continue
			}
			t.Logf("conclave %s on %s without a key: exit status 2 (%s)", args[0], listen, strings.TrimSpace(lastLine(out)))
		}
	}
	if ip == "" {
		t.Skip("no address of this machine is not loopback: --insecure and a key on one are not tried")
	}

	// --insecure: a cluster runs on the outside address, unauthenticated.
	insecure, err := launch.Start(launch.Config{Binary: bin, N: 2, Dir: t.TempDir(), Heartbeat: hb, SuspectAfter: suspect,
		Addrs: []string{freeAddr(t, ip), freeAddr(t, ip)}, Unauthenticated: true,
		Command: func(i int, args []string) *exec.Cmd {
			cmd := exec.Command(bin, append(args, "--insecure")...)
			cmd.Env = env("CONCLAVE_KEY_FILE")
			return cmd
		}})
	must(t, err)
	defer insecure.Close()
	must(t, insecure.StartAll())
	waitLeader(t, insecure, 0, 0, 1)
	t.Logf("with --insecure, 2 peers without a key run on %v", insecure.Addrs())
	must(t, insecure.Close())

	// With a key: a cluster on the outside address, and an impostor from it.
	c, err := launch.Start(launch.Config{Binary: bin, N: 2, Dir: t.TempDir(), Heartbeat: hb, SuspectAfter: suspect,
		Addrs: []string{freeAddr(t, ip), freeAddr(t, ip)}})
	must(t, err)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			launchtest.Keep(t, c.Dir())
		}
	})
	must(t, c.StartAll())
	waitLeader(t, c, 0, 0, 1)
	for _, k := range []transport.Key{nil, transport.NewKey()} {
		r, err := tryFrom(ip, c.Addrs()[1], attempt{hello: peerHello(0, 1, 2, c.Addrs()[0], math.MaxUint64, now()), key: k})
		if err != nil || !strings.Contains(r.reason, "no proof of the cluster key") {
			t.Errorf("an impostor of peer 0 from %s with %s: %v, refused with %q", ip, keyName(k), err, r.reason)
			continue
		}
		t.Logf("with a key, 2 peers on %v; an impostor of peer 0 dialing from %s with %s: refused (%q)", c.Addrs(), ip, keyName(k), r.reason)
	}
	waitLeader(t, c, 0, 0, 1)
	peerHistory(t, c, 2, false)

	// Without a key, on loopback: nothing answers on the outside address.
	loop, err := launch.Start(launch.Config{Binary: bin, N: 2, Dir: t.TempDir(), Heartbeat: hb, SuspectAfter: suspect, Unauthenticated: true,
		Command: func(i int, args []string) *exec.Cmd {
			cmd := exec.Command(bin, args...)
			cmd.Env = env("CONCLAVE_KEY_FILE")
			return cmd
		}})
	must(t, err)
	defer loop.Close()
	must(t, loop.StartAll())
	waitLeader(t, loop, 0, 0, 1)
	_, port, _ = net.SplitHostPort(loop.Addrs()[1])
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, port), time.Second); err == nil {
		conn.Close()
		t.Errorf("a peer without a key on %s answers on %s", loop.Addrs()[1], net.JoinHostPort(ip, port))
	} else {
		t.Logf("without a key, 2 peers run on %v; their ports on %s are closed (%v)", loop.Addrs(), ip, err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// tryFrom is try from the local address ip.
func tryFrom(ip, addr string, a attempt) (result, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return result{}, fmt.Errorf("dialing from %s: %w", ip, err)
	}
	return tryOn(conn, a)
}
