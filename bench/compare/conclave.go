package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// buildConclave builds the conclave command of the repository (the
// module this one replaces with ../..) into dir and returns its path.
func buildConclave(dir string) (string, error) {
	bin := filepath.Join(dir, "conclave")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/conclave/conclave/cmd/conclave")
	// Build in this module's directory, wherever the harness runs from.
	if _, file, _, ok := runtime.Caller(0); ok {
		if _, err := os.Stat(filepath.Join(filepath.Dir(file), "go.mod")); err == nil {
			cmd.Dir = filepath.Dir(file)
		}
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building conclave: %w", err)
	}
	return bin, nil
}

// runConclave runs the conclave command and returns its standard output.
func runConclave(bin string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("conclave %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// groupFigure is one line of "conclave bench group".
type groupFigure struct {
	rate float64       // delivered/s at the slowest member
	p50  time.Duration // send → delivery
}

// conclaveGroup runs "conclave bench group" with both shipped stacks in
// both modes and returns its figures by "stack mode".
func conclaveGroup(bin string, o options) (map[string]groupFigure, error) {
	out, err := runConclave(bin, "bench", "group", "--stack", "vsync,total", "--mode", "async,sync",
		"--security", o.security, "--size", strconv.Itoa(o.size), "--duration", o.duration.String(),
		"--warmup", o.warmup.String(), "--inflight", strconv.Itoa(o.inflight))
	if err != nil {
		return nil, err
	}
	return parseGroup(out)
}

// parseGroup reads the result lines of "conclave bench group":
// stack, mode, security, msgs/s, p50 ms, p99 ms and max ms.
func parseGroup(out string) (map[string]groupFigure, error) {
	figs := map[string]groupFigure{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 7 || (f[1] != "async" && f[1] != "sync") {
			continue
		}
		rate, err1 := strconv.ParseFloat(f[3], 64)
		p50, err2 := strconv.ParseFloat(f[4], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		figs[f[0]+" "+f[1]] = groupFigure{rate, time.Duration(p50 * float64(time.Millisecond))}
	}
	for _, k := range []string{"vsync async", "vsync sync", "total async", "total sync"} {
		if _, ok := figs[k]; !ok {
			return nil, fmt.Errorf("conclave bench group printed no %q figure:\n%s", k, out)
		}
	}
	return figs, nil
}

// parseP50 reads the p50 of the line of mode ("crash" or "hang") of
// "conclave bench failover" or "conclave bench directory".
func parseP50(out, mode string) (time.Duration, error) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(mode) + `\s.*\sp50\s+([0-9.]+) ms`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no %s p50 in:\n%s", mode, out)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return time.Duration(v * float64(time.Millisecond)), err
}

// detector is the failure detector's settings of a conclave failover;
// zero values are conclave's defaults.
type detector struct {
	heartbeat, suspectAfter time.Duration
}

// conclaveFailover runs "conclave bench failover" in mode "crash"
// (SIGKILL of the leader) or "hang" (SIGSTOP), until every survivor
// reports the new leader, and returns its p50.
func conclaveFailover(bin string, runs int, mode string, d detector) (time.Duration, error) {
	p50, _, err := conclaveFailoverFloor(bin, runs, mode, d, false)
	return p50, err
}

// conclaveFailoverFloor is conclaveFailover, and with floor it also
// measures the same crashes on the machine's floor (bench failover
// --floor) and returns that p50 too.
func conclaveFailoverFloor(bin string, runs int, mode string, d detector, floor bool) (p50, floorP50 time.Duration, err error) {
	args := []string{"bench", "failover", "--mode", mode, "--runs", strconv.Itoa(runs)}
	if floor {
		args = append(args, "--floor")
	}
	if d.heartbeat != 0 {
		args = append(args, "--heartbeat", d.heartbeat.String())
	}
	if d.suspectAfter != 0 {
		args = append(args, "--suspect-after", d.suspectAfter.String())
	}
	out, err := runConclave(bin, args...)
	if err != nil {
		return 0, 0, err
	}
	if p50, err = parseP50(out, mode); err != nil || !floor {
		return p50, 0, err
	}
	floorP50, err = parseP50(out, "floor")
	return p50, floorP50, err
}

// conclaveDirectory runs "conclave bench directory" for crashes (SIGKILL
// of the directory's leader until an announce is acknowledged) and
// returns its p50.
func conclaveDirectory(bin string, runs int) (time.Duration, error) {
	out, err := runConclave(bin, "bench", "directory", "--mode", "crash", "--runs", strconv.Itoa(runs),
		"--clients", "1", "--duration", "100ms")
	if err != nil {
		return 0, err
	}
	return parseP50(out, "crash")
}
