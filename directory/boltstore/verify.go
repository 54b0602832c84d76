package boltstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// bbolt's file format (go.etcd.io/bbolt v1.5.0, internal/common), read
// here without bbolt so that a damaged file is refused before bbolt
// follows a page number out of the file: bbolt trusts its pages, and a
// bad one makes it panic or read past its memory map.
const (
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	metaSize         = 64 // see parseMeta
	elemSize         = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHeaderSize = 16 // root pgid u64, sequence u64

	branchPage   = 0x01
	leafPage     = 0x02
	metaPage     = 0x04
	freelistPage = 0x10

	bucketLeafFlag = 0x01

	boltMagic   = 0xED0CDAED
	boltVersion = 2
	noFreelist  = ^uint64(0)

	minPageSize = 512
	maxPageSize = 1 << 24
)

// bbolt lays its structures out in memory order.
var ne = binary.NativeEndian

type meta struct {
	magic, version, pageSize uint32
	root                     uint64 // root bucket's root page
	freelist                 uint64
	pgid                     uint64 // high water mark: pages [0, pgid) are in use or free
	txid                     uint64
	checksum                 uint64
	sum                      uint64 // what checksum should be
}

// parseMeta reads the meta at b (the start of a meta page), if b is long
// enough.
func parseMeta(b []byte) (meta, bool) {
	if len(b) < pageHeaderSize+metaSize {
		return meta{}, false
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	h := fnv.New64a()
	h.Write(m[:56])
	return meta{
		magic: ne.Uint32(m[0:]), version: ne.Uint32(m[4:]), pageSize: ne.Uint32(m[8:]),
		root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]), pgid: ne.Uint64(m[40:]),
		txid: ne.Uint64(m[48:]), checksum: ne.Uint64(m[56:]), sum: h.Sum64(),
	}, true
}

func (m meta) valid() bool {
	return m.magic == boltMagic && m.version == boltVersion && m.checksum == m.sum
}

// pageSizeOf finds the page size as bbolt does: from the first meta page,
// or else from a second meta page at 1 KiB, 2 KiB, ... 16 MiB.
func pageSizeOf(data []byte) (int, error) {
	if len(data) >= 0x1000 {
		if m, ok := parseMeta(data); ok && m.valid() {
			return int(m.pageSize), nil
		}
	}
	for i := range 15 {
		pos := 1024 << i
		if pos >= len(data)-1024 {
			break
		}
		if m, ok := parseMeta(data[pos:]); ok && m.valid() {
			return int(m.pageSize), nil
		}
	}
	return 0, fmt.Errorf("not a bbolt database: no valid meta page in %d bytes", len(data))
}

// verifier walks a bbolt file's pages from its current meta page.
type verifier struct {
	data      []byte
	ps        int
	hwm       uint64
	reachable []bool // by page id, below hwm
	free      []bool
}

// verifyFile checks that data is a whole bbolt database whose pages are
// all within the file and consistent: every page the current meta page
// leads to is where it should be and of the expected type, its elements
// lie within it, keys are in order, no page is used twice or both used
// and free, and every page below the high water mark is either used or
// free. It does not read values: the store checksums those itself.
func verifyFile(data []byte) error {
	_, err := walk(data)
	return err
}

// walk checks data as verifyFile does, and returns what it found.
func walk(data []byte) (*verifier, error) {
	ps, err := pageSizeOf(data)
	if err != nil {
		return nil, err
	}
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return nil, fmt.Errorf("meta page gives a page size of %d bytes", ps)
	}
	if len(data) < 2*ps {
		return nil, fmt.Errorf("file is %d bytes, less than its two meta pages of %d", len(data), ps)
	}
	m0, _ := parseMeta(data)
	m1, _ := parseMeta(data[ps:])
	// As bbolt: the meta with the higher transaction id if it is valid,
	// else the other.
	a, b := m0, m1
	if m1.txid > m0.txid {
		a, b = m1, m0
	}
	var m meta
	switch {
	case a.valid():
		m = a
	case b.valid():
		m = b
	default:
		return nil, fmt.Errorf("neither meta page is valid")
	}
	if pages := uint64(len(data) / ps); m.pgid > pages {
		return nil, fmt.Errorf("truncated: the meta page (transaction %d) says %d pages of %d bytes, the file holds %d bytes (%d pages)",
			m.txid, m.pgid, ps, len(data), pages)
	}
	if m.pgid < 2 {
		return nil, fmt.Errorf("the meta page (transaction %d) says %d pages", m.txid, m.pgid)
	}
	v := &verifier{data: data, ps: ps, hwm: m.pgid, reachable: make([]bool, m.pgid), free: make([]bool, m.pgid)}
	v.reachable[0], v.reachable[1] = true, true
	if m.freelist != noFreelist {
		if err := v.freelist(m.freelist); err != nil {
			return nil, err
		}
	}
	if m.root < 2 || m.root >= v.hwm {
		return nil, fmt.Errorf("the root bucket's page %d is outside pages [2, %d)", m.root, v.hwm)
	}
	if err := v.tree(m.root, nil, nil, true); err != nil {
		return nil, err
	}
	if m.freelist != noFreelist {
		for id := uint64(2); id < v.hwm; id++ {
			if !v.reachable[id] && !v.free[id] {
				return nil, fmt.Errorf("page %d is neither used nor free", id)
			}
		}
	}
	return v, nil
}

// page returns page id and its overflow pages, marking them used.
func (v *verifier) page(id uint64, want uint16) ([]byte, error) {
	if id < 2 || id >= v.hwm {
		return nil, fmt.Errorf("page %d is outside pages [2, %d)", id, v.hwm)
	}
	off := id * uint64(v.ps)
	h := v.data[off : off+pageHeaderSize]
	if got := ne.Uint64(h); got != id {
		return nil, fmt.Errorf("page %d says it is page %d", id, got)
	}
	if flags := ne.Uint16(h[8:]); flags != want {
		return nil, fmt.Errorf("page %d has type %#x, want %#x", id, flags, want)
	}
	over := uint64(ne.Uint32(h[12:]))
	if over >= v.hwm-id {
		return nil, fmt.Errorf("page %d runs %d pages past the end of the database", id, over+1-(v.hwm-id))
	}
	for p := id; p <= id+over; p++ {
		if v.reachable[p] {
			return nil, fmt.Errorf("page %d is used twice", p)
		}
		if v.free[p] {
			return nil, fmt.Errorf("page %d is both used and free", p)
		}
		v.reachable[p] = true
	}
	return v.data[off : off+(over+1)*uint64(v.ps)], nil
}

func (v *verifier) freelist(id uint64) error {
	p, err := v.page(id, freelistPage)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	start, count := uint64(pageHeaderSize), uint64(ne.Uint16(p[10:]))
	if count == 0xFFFF { // the count overflows into the first element
		if len(p) < pageHeaderSize+8 {
			return fmt.Errorf("freelist page %d: no room for its count", id)
		}
		count, start = ne.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > (uint64(len(p))-start)/8 {
		return fmt.Errorf("freelist page %d: %d ids do not fit in %d bytes", id, count, len(p))
	}
	for i := range count {
		f := ne.Uint64(p[start+8*i:])
		switch {
		case f < 2 || f >= v.hwm:
			return fmt.Errorf("freelist page %d: free page %d is outside pages [2, %d)", id, f, v.hwm)
		case v.free[f]:
			return fmt.Errorf("freelist page %d: page %d is free twice", id, f)
		case v.reachable[f]:
			return fmt.Errorf("freelist page %d: page %d is both used and free", id, f)
		}
		v.free[f] = true
	}
	return nil
}

// tree checks the b+tree at page id, whose keys must lie in [lo, hi) (nil:
// unbounded); root says it is the root bucket's, which holds buckets only.
func (v *verifier) tree(id uint64, lo, hi []byte, root bool) error {
	off := id * uint64(v.ps)
	if id >= 2 && id < v.hwm && ne.Uint16(v.data[off+8:]) == branchPage {
		p, err := v.page(id, branchPage)
		if err != nil {
			return err
		}
		n := int(ne.Uint16(p[10:]))
		if n == 0 {
			return fmt.Errorf("branch page %d is empty", id)
		}
		keys, err := v.keys(id, p, n, false)
		if err != nil {
			return err
		}
		if err := ordered(id, keys, lo, hi); err != nil {
			return err
		}
		for i := range n {
			child := ne.Uint64(p[pageHeaderSize+i*elemSize+8:])
			next := hi
			if i+1 < n {
				next = keys[i+1]
			}
			if err := v.tree(child, keys[i], next, root); err != nil {
				return err
			}
		}
		return nil
	}
	p, err := v.page(id, leafPage)
	if err != nil {
		return err
	}
	return v.leaf(id, p, lo, hi, root)
}

// leaf checks leaf page p (id 0 for an inline bucket's page).
func (v *verifier) leaf(id uint64, p []byte, lo, hi []byte, root bool) error {
	n := int(ne.Uint16(p[10:]))
	keys, err := v.keys(id, p, n, true)
	if err != nil {
		return err
	}
	if err := ordered(id, keys, lo, hi); err != nil {
		return err
	}
	for i := range n {
		e := pageHeaderSize + i*elemSize
		flags := ne.Uint32(p[e:])
		if flags&^bucketLeafFlag != 0 {
			return fmt.Errorf("%s, element %d: flags %#x", pageName(id), i, flags)
		}
		if flags&bucketLeafFlag == 0 {
			if root {
				return fmt.Errorf("%s, element %d: a value among the root's buckets", pageName(id), i)
			}
			continue
		}
		vpos := e + int(ne.Uint32(p[e+4:])) + int(ne.Uint32(p[e+8:]))
		val := p[vpos : vpos+int(ne.Uint32(p[e+12:]))]
		if err := v.bucket(id, i, val); err != nil {
			return err
		}
	}
	return nil
}

// bucket checks the bucket whose header is val (element i of page id).
func (v *verifier) bucket(id uint64, i int, val []byte) error {
	if len(val) < bucketHeaderSize {
		return fmt.Errorf("%s, element %d: a bucket of %d bytes", pageName(id), i, len(val))
	}
	r := ne.Uint64(val)
	if r != 0 {
		return v.tree(r, nil, nil, false)
	}
	// An inline bucket: its one leaf page follows the header.
	in := val[bucketHeaderSize:]
	if len(in) < pageHeaderSize {
		return fmt.Errorf("%s, element %d: an inline bucket of %d bytes", pageName(id), i, len(val))
	}
	if flags := ne.Uint16(in[8:]); flags != leafPage {
		return fmt.Errorf("%s, element %d: an inline bucket of type %#x", pageName(id), i, flags)
	}
	return v.leaf(0, in, nil, nil, false)
}

// keys returns the n keys of page p, checking that its elements (and a
// leaf's values) lie within it and that no key is empty.
func (v *verifier) keys(id uint64, p []byte, n int, leaf bool) ([][]byte, error) {
	if pageHeaderSize+n*elemSize > len(p) {
		return nil, fmt.Errorf("%s: %d elements do not fit in %d bytes", pageName(id), n, len(p))
	}
	keys := make([][]byte, n)
	for i := range n {
		e := pageHeaderSize + i*elemSize
		var pos, ksize, vsize uint64
		if leaf {
			pos, ksize, vsize = uint64(ne.Uint32(p[e+4:])), uint64(ne.Uint32(p[e+8:])), uint64(ne.Uint32(p[e+12:]))
		} else {
			pos, ksize = uint64(ne.Uint32(p[e:])), uint64(ne.Uint32(p[e+4:]))
		}
		if end := uint64(e) + pos + ksize + vsize; end > uint64(len(p)) {
			return nil, fmt.Errorf("%s, element %d: runs to byte %d of %d", pageName(id), i, end, len(p))
		}
		if ksize == 0 {
			return nil, fmt.Errorf("%s, element %d: an empty key", pageName(id), i)
		}
		k := uint64(e) + pos
		keys[i] = p[k : k+ksize]
	}
	return keys, nil
}

// pageName names page id in an error; id 0 is an inline bucket's page.
func pageName(id uint64) string {
	if id == 0 {
		return "an inline bucket's page"
	}
	return fmt.Sprintf("page %d", id)
}

// ordered checks that keys increase strictly and lie in [lo, hi).
func ordered(id uint64, keys [][]byte, lo, hi []byte) error {
	for i, k := range keys {
		if i > 0 && bytes.Compare(keys[i-1], k) >= 0 {
			return fmt.Errorf("%s: key %d (%x) is not above key %d (%x)", pageName(id), i, k, i-1, keys[i-1])
		}
		if lo != nil && bytes.Compare(k, lo) < 0 || hi != nil && bytes.Compare(k, hi) >= 0 {
			return fmt.Errorf("%s: key %d (%x) is outside its parent's range", pageName(id), i, k)
		}
	}
	return nil
}
