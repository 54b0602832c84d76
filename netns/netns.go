// Package netns builds a small network out of Linux network namespaces for
// fault-injection tests of real processes, and injects faults into it.
//
// A Net is a switch namespace holding a bridge, plus hosts: each host is a
// namespace of its own with one interface, eth0, on that bridge and one
// address, Addr(i). Processes run inside a host through Command. Faults are
// iptables rules that drop on a host's INPUT chain, which is how a silent
// partition looks to TCP: packets vanish, nothing is refused. (Dropping on
// OUTPUT would hand the sender EPERM, and taking a link down would remove
// the route; neither is realistic.)
//
// Nothing here touches the root namespace's interfaces, routes or firewall.
// It needs root, the ip command (iproute2) and iptables; Available says
// whether they work here.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// prefix starts the name of every namespace this package creates:
// "cnv<pid>-<seq>-sw" and "cnv<pid>-<seq>-h<i>".
const prefix = "cnv"

var (
	seq       atomic.Int64 // numbers the Nets of this process
	staleOnce sync.Once
	probeOnce = sync.OnceValue(probe)
)

// Net is a switch and its hosts. Its methods must not be called
// concurrently.
type Net struct {
	sw      string   // the switch namespace
	hosts   []string // one namespace per host
	subnet  string   // the first three octets of the hosts' addresses
	created []string // namespaces that exist, in creation order
}

// Available reports whether Nets can be built here: it returns nil, or an
// error saying what is missing (not root, no ip or iptables, namespaces or
// iptables not working). The answer is computed once per process.
func Available() error { return probeOnce() }

func probe() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: network namespaces and iptables need root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install iproute2 iptables)", tool)
		}
	}
	n, err := New(1)
	if err != nil {
		return err
	}
	err = n.Heal() // runs iptables inside the host
	return errors.Join(err, n.Close())
}

// New builds a switch with that many hosts. Host i has address 10.77.X.(i+1),
// where X varies from one Net to the next (each Net has its own bridge, so
// addresses never meet across Nets anyway). If New fails, it removes what
// it had created.
func New(hosts int) (*Net, error) {
	if hosts < 1 || hosts > 250 {
		return nil, fmt.Errorf("netns: %d hosts: want 1 to 250", hosts)
	}
	staleOnce.Do(removeStale)
	s := seq.Add(1)
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), s)
	n := &Net{sw: name + "-sw", subnet: fmt.Sprintf("10.77.%d", (os.Getpid()+int(s))%256)}
	for i := range hosts {
		n.hosts = append(n.hosts, fmt.Sprintf("%s-h%d", name, i))
	}
	if err := n.build(); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

func (n *Net) build() error {
	if err := n.add(n.sw); err != nil {
		return err
	}
	err := ipAll(
		[]string{"-n", n.sw, "link", "set", "lo", "up"},
		[]string{"-n", n.sw, "link", "add", "br0", "type", "bridge"},
		[]string{"-n", n.sw, "link", "set", "br0", "up"},
	)
	if err != nil {
		return err
	}
	for i, h := range n.hosts {
		if err := n.add(h); err != nil {
			return err
		}
		v := "v" + strconv.Itoa(i)
		// Created from inside the switch, with the other end moved
		// straight into the host: no interface ever appears in the root
		// namespace.
		err := ipAll(
			[]string{"-n", n.sw, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", h},
			[]string{"-n", n.sw, "link", "set", v, "master", "br0"},
			[]string{"-n", n.sw, "link", "set", v, "up"},
			[]string{"-n", h, "addr", "add", n.Addr(i) + "/24", "dev", "eth0"},
			[]string{"-n", h, "link", "set", "eth0", "up"},
			[]string{"-n", h, "link", "set", "lo", "up"},
		)
		if err != nil {
			return err
		}
	}
	return nil
}

func (n *Net) add(ns string) error {
	if err := ip("netns", "add", ns); err != nil {
		return err
	}
	n.created = append(n.created, ns)
	return nil
}

// Namespace returns the name of host i's network namespace.
func (n *Net) Namespace(i int) string { return n.hosts[i] }

// Addr returns host i's IPv4 address.
func (n *Net) Addr(i int) string { return fmt.Sprintf("%s.%d", n.subnet, i+1) }

// Command returns a command that runs name with args inside host i. It is
// `ip netns exec`, which execs the program in place: the command's process
// is the program itself, so signals sent to it reach the program.
func (n *Net) Command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.hosts[i], name}, args...)...)
}

// Cut makes host to drop everything host from sends it, in addition to
// any rules already in place. Over TCP a one-way cut stops both directions
// of a connection, since acknowledgements cannot return.
func (n *Net) Cut(from, to int) error {
	if err := n.check(from, to); err != nil {
		return err
	}
	return n.iptables(to, "-A", "INPUT", "-s", n.Addr(from), "-j", "DROP")
}

// Isolate cuts host i off from every other host, replacing any earlier
// faults.
func (n *Net) Isolate(i int) error {
	if err := n.check(i); err != nil {
		return err
	}
	var rest []int
	for j := range n.hosts {
		if j != i {
			rest = append(rest, j)
		}
	}
	return n.Partition([]int{i}, rest)
}

// Partition splits the hosts into groups that cannot reach each other;
// hosts in no group reach nobody. It replaces any earlier faults.
func (n *Net) Partition(groups ...[]int) error {
	side := make([]int, len(n.hosts)) // 0: in no group
	for g, ids := range groups {
		if err := n.check(ids...); err != nil {
			return err
		}
		for _, i := range ids {
			side[i] = g + 1
		}
	}
	return n.block(func(a, b int) bool { return side[a] == 0 || side[a] != side[b] })
}

// Bridge splits the hosts into halves a and b that cannot reach each
// other, while bridge, in neither, reaches both. Hosts in none of them are
// not affected. It replaces any earlier faults.
func (n *Net) Bridge(a, b []int, bridge int) error {
	if err := n.check(slices.Concat(a, b, []int{bridge})...); err != nil {
		return err
	}
	if slices.Contains(a, bridge) || slices.Contains(b, bridge) {
		return fmt.Errorf("netns: bridge host %d is in one of the halves", bridge)
	}
	return n.block(func(x, y int) bool {
		return (slices.Contains(a, x) && slices.Contains(b, y)) || (slices.Contains(b, x) && slices.Contains(a, y))
	})
}

// Heal removes every fault: it flushes the INPUT chain of every host.
func (n *Net) Heal() error {
	return n.block(func(int, int) bool { return false })
}

// block replaces each host's rules: host a drops what b sends when
// cut(a, b); cut must be symmetric for a silent partition.
func (n *Net) block(cut func(a, b int) bool) error {
	var errs []error
	for a := range n.hosts {
		var from []string
		for b := range n.hosts {
			if a != b && cut(a, b) {
				from = append(from, n.Addr(b))
			}
		}
		errs = append(errs, n.iptables(a, "-F", "INPUT"))
		if len(from) > 0 {
			errs = append(errs, n.iptables(a, "-A", "INPUT", "-s", strings.Join(from, ","), "-j", "DROP"))
		}
	}
	return errors.Join(errs...)
}

func (n *Net) check(ids ...int) error {
	for _, i := range ids {
		if i < 0 || i >= len(n.hosts) {
			return fmt.Errorf("netns: no host %d (have %d)", i, len(n.hosts))
		}
	}
	return nil
}

func (n *Net) iptables(i int, args ...string) error {
	return run(n.Command(i, "iptables", append([]string{"-w"}, args...)...))
}

// Close removes every namespace the Net created, hosts first. Processes
// still inside one are continued (if stopped) and killed first, so Close
// also cleans up after a test that failed half way.
func (n *Net) Close() error {
	var errs []error
	for _, ns := range slices.Backward(n.created) {
		errs = append(errs, remove(ns))
	}
	n.created = nil
	return errors.Join(errs...)
}

// remove kills the processes in namespace ns and deletes it.
func remove(ns string) error {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return fmt.Errorf("netns: ip netns pids %s: %w", ns, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGCONT)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return ip("netns", "del", ns)
}

// removeStale deletes namespaces left behind by earlier processes that
// died before closing their Nets (a test binary killed on timeout, say):
// those whose pid is gone, and those with this process's pid, which a
// process that had the pid before must have made.
func removeStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		ns, _, _ := strings.Cut(line, " ")
		rest, ok := strings.CutPrefix(ns, prefix)
		if !ok {
			continue
		}
		p, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(p)
		if err != nil {
			continue
		}
		if pid == os.Getpid() || syscall.Kill(pid, 0) == syscall.ESRCH {
			remove(ns)
		}
	}
}

func ip(args ...string) error { return run(exec.Command("ip", args...)) }

func ipAll(cmds ...[]string) error {
	for _, args := range cmds {
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

// run runs cmd and turns a failure into an error that quotes the command
// and what it printed.
func run(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: %s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
