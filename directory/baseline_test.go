package directory_test

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"

	"github.com/conclave/conclave/directory"
)

func TestGroupIndex(t *testing.T) {
	for name, want := range map[string]int{"g0": 0, "g3": 3, "g15": 15, "g": -1, "g03": -1, "g-1": -1, "g+1": -1, "h1": -1, "g1x": -1, "": -1} {
		got, ok := directory.GroupIndex(name)
		if ok != (want >= 0) || ok && got != want {
			t.Errorf("GroupIndex(%q) = %d %v, want %d", name, got, ok, want)
		}
	}
}

func TestPlacement(t *testing.T) {
	assign, interest, qos := directory.Placement([]directory.TopicInfo{
		{Topic: "a", QoS: "total", Group: "g2", Publishers: []string{"p"}, Subscribers: []string{"s1", "s2"}},
		{Topic: "b", QoS: "vsync", Group: "g0", Subscribers: []string{"s1"}},
		{Topic: "c", QoS: "vsync", Group: "x"},
	})
	if fmt.Sprint(assign) != "map[a:2 b:0]" || fmt.Sprint(interest) != "map[a:[p s1 s2] b:[s1]]" || fmt.Sprint(qos) != "map[a:total b:vsync]" {
		t.Errorf("got %v %v %v", assign, interest, qos)
	}
}

func TestOneGroupPerQoS(t *testing.T) {
	topics := []string{"a", "b", "c"}
	got := directory.OneGroupPerQoS(topics, map[string]string{"a": "vsync", "b": "total", "c": "vsync"})
	if fmt.Sprint(got) != "map[a:1 b:0 c:1]" {
		t.Errorf("two QoS: %v", got)
	}
	if got := directory.OneGroupPerQoS(topics, nil); fmt.Sprint(got) != "map[a:0 b:0 c:0]" {
		t.Errorf("one QoS: %v", got)
	}
}

func TestHashAssignment(t *testing.T) {
	var topics []string
	qos := map[string]string{}
	for i := range 200 {
		name := fmt.Sprintf("t%d", i)
		topics = append(topics, name)
		qos[name] = []string{"total", "vsync", "x"}[i%3]
	}
	got, ok := directory.HashAssignment(topics, qos, 7)
	if !ok {
		t.Fatal("3 QoS in 7 groups: none")
	}
	// total owns g0 g3 g6, vsync g1 g4, x g2 g5.
	owner := map[int]string{0: "total", 3: "total", 6: "total", 1: "vsync", 4: "vsync", 2: "x", 5: "x"}
	used := map[int]bool{}
	for _, name := range topics {
		g := got[name]
		used[g] = true
		if owner[g] != qos[name] {
			t.Errorf("%s of QoS %s in group %d, of %s", name, qos[name], g, owner[g])
		}
	}
	if len(used) != 7 {
		t.Errorf("200 topics use %d of 7 groups", len(used))
	}
	one, _ := directory.HashAssignment(topics, nil, 7)
	for _, name := range topics {
		h := fnv.New32a()
		h.Write([]byte(name))
		if one[name] != int(h.Sum32()%7) {
			t.Fatalf("one QoS: %s in group %d, not its hash mod 7", name, one[name])
		}
	}
	if _, ok := directory.HashAssignment(topics, qos, 2); ok {
		t.Error("3 QoS in 2 groups: an assignment")
	}
	if got, ok := directory.HashAssignment(nil, nil, 2); !ok || len(got) != 0 {
		t.Errorf("no topics: %v %v", got, ok)
	}
}

// TestOneGroupPerQoSWastesMost checks that hash placement, a refinement
// of one group per QoS, never wastes more.
func TestOneGroupPerQoSWastesMost(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		var topics []string
		interest, qos := map[string][]string{}, map[string]string{}
		for i := range 2 + rng.IntN(10) {
			name := fmt.Sprintf("t%d", i)
			topics = append(topics, name)
			qos[name] = []string{"total", "vsync"}[rng.IntN(2)]
			for range rng.IntN(4) {
				interest[name] = append(interest[name], fmt.Sprintf("c%d", rng.IntN(6)))
			}
		}
		hash, _ := directory.HashAssignment(topics, qos, 2+rng.IntN(4))
		fh, _ := directory.Waste(hash, interest, nil)
		fo, _ := directory.Waste(directory.OneGroupPerQoS(topics, qos), interest, nil)
		if fh > fo {
			t.Fatalf("hash %v wastes %v, one group per QoS %v", hash, fh, fo)
		}
	}
}
