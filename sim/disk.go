package sim

import (
	"maps"
	"slices"
	"time"
)

// Disk is a process's simulated storage: named files that its machines
// write, sync and read back. A write goes to the page cache; Sync makes
// what a file holds durable after a time drawn from the seed, syncs
// completing in the order they were asked for. A crash takes the worst
// case, a lost machine: what was not synced is gone, and a sync still
// under way does not complete. A clean exit loses nothing. The disk
// outlives the process's incarnations.
type Disk struct {
	n       *Net
	p       *proc
	files   map[string]*file
	last    time.Duration // when the last sync asked for completes
	crashes int
}

type file struct {
	data    []byte // as the process reads it
	durable []byte // what a crash leaves
	synced  bool   // durable holds a sync's content
	// shared says a sync under way, or durable, may share data's bytes:
	// a write over them copies data first. Appends need no copy: a sync
	// holds data's length of the time.
	shared bool
}

// Disk returns process i's disk.
func (n *Net) Disk(i int) *Disk {
	p := n.procs[i]
	if p.disk == nil {
		p.disk = &Disk{n: n, p: p, files: map[string]*file{}}
	}
	return p.disk
}

// Write writes b at offset off of file name, creating it or extending it
// with zeros as needed. It panics if the process is not running.
func (d *Disk) Write(name string, off int, b []byte) {
	d.running()
	f := d.files[name]
	if f == nil {
		f = &file{}
		d.files[name] = f
	}
	if f.shared && off < len(f.data) {
		f.data = slices.Clone(f.data)
		f.shared = false
	}
	if end := off + len(b); end > len(f.data) {
		f.data = append(f.data, make([]byte, end-len(f.data))...)
	}
	copy(f.data[off:], b)
}

// Sync makes what file name holds now durable, then runs done in the
// process, unless it crashed first. It panics if the process is not
// running.
func (d *Disk) Sync(name string, done func()) {
	d.running()
	n, p := d.n, d.p
	var snap []byte
	if f := d.files[name]; f != nil {
		snap = f.data[:len(f.data):len(f.data)]
		f.shared = true
	}
	at := max(n.now+n.syncTime(), d.last)
	d.last = at
	gen, crashes := p.gen, d.crashes
	n.at(at, func() {
		if d.crashes != crashes {
			return // lost with the crash
		}
		if f := d.files[name]; f != nil {
			f.durable, f.synced = snap, true
		}
		if done != nil {
			n.input(p, gen, done)
		}
	})
}

// Read returns a copy of file name as the process sees it; nil if there
// is no such file. It panics if the process is not running.
func (d *Disk) Read(name string) []byte {
	d.running()
	if f := d.files[name]; f != nil {
		return append([]byte(nil), f.data...)
	}
	return nil
}

// Files returns the names of the files on the disk, sorted.
func (d *Disk) Files() []string { return slices.Sorted(maps.Keys(d.files)) }

func (d *Disk) running() {
	if !d.p.running {
		panic("sim: disk of a process that is not running")
	}
}

// crash loses what was not synced.
func (d *Disk) crash() {
	for name, f := range d.files {
		if !f.synced {
			delete(d.files, name)
			continue
		}
		f.data, f.shared = slices.Clone(f.durable), false
	}
	d.crashes++
	d.last = 0
}

// syncTime draws how long a sync takes.
func (n *Net) syncTime() time.Duration {
	lo, hi := n.cfg.MinSync, n.cfg.MaxSync
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)+1))
}
