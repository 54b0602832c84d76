package directory

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// CheckInvariants returns an error describing every way s is inconsistent,
// or nil. It holds after every Apply and Restore; tests and the simulator
// call it.
//
//   - There are MaxGroups groups; a group carries one QoS, which every
//     topic in it has, and carries one as soon as it has a topic and
//     until then none; a group a topic moved from keeps its QoS.
//   - A topic that moved names as its old group another of its QoS, and
//     waits only for clients that publish it, and did when it moved.
//   - A topic is in exactly the group it names.
//   - Every QoS listed is carried by a group.
//   - A group's counts of publishers and subscribers agree with its
//     topics; contacts are sorted and distinct.
//   - At most MaxSessions sessions; each remembers a command applied at or
//     before the applied index, and a result a command could have given.
//   - At most MaxReporters reports; each applied at or before the applied
//     index, of 1 to MaxReportTopics topics, each of a group its client
//     publishes or subscribes to a topic of.
func (s *State) CheckInvariants() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(s.groups) != s.cfg.MaxGroups {
		add("%d groups; MaxGroups is %d", len(s.groups), s.cfg.MaxGroups)
	}
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		t := s.topics[name]
		switch {
		case name == "":
			add("a topic with an empty name")
		case t.group < 0 || t.group >= len(s.groups):
			add("topic %q in group %d, out of range", name, t.group)
			continue
		}
		g := s.groups[t.group]
		if _, ok := g.topics[name]; !ok {
			add("topic %q names group %s, which does not list it", name, groupName(t.group))
		}
		if t.qos != g.qos {
			add("topic %q has QoS %s, its group %s carries %q", name, t.qos, groupName(t.group), g.qos)
		}
		if _, ok := t.pubs[""]; ok {
			add("topic %q has an empty publisher id", name)
		}
		if _, ok := t.subs[""]; ok {
			add("topic %q has an empty subscriber id", name)
		}
	}
	drained := map[int]bool{} // groups topics moved from
	for _, name := range slices.Sorted(maps.Keys(s.topics)) {
		t := s.topics[name]
		if t.moves == 0 {
			continue
		}
		drained[t.from] = true
		if t.from < 0 || t.from >= len(s.groups) || t.from == t.group || s.groups[t.from].qos != t.qos {
			add("topic %q moved from group %d, which is not another group of its QoS", name, t.from)
		}
		for c := range t.pending {
			_, pub := t.pubs[c]
			_, was := t.switching[c]
			if !pub || !was {
				add("topic %q waits for %q to switch groups, which does not publish it, or did not when it moved", name, c)
			}
		}
	}
	used := map[string]bool{}
	for i, g := range s.groups {
		gn := groupName(i)
		switch _, known := s.qos[g.qos]; {
		case len(g.topics) == 0 && g.qos != "" && !drained[i]:
			add("group %s carries QoS %s but has no topic", gn, g.qos)
		case len(g.topics) > 0 && !known:
			add("group %s carries QoS %q, which is not listed", gn, g.qos)
		}
		used[g.qos] = true
		pubs, subs := map[string]int{}, map[string]int{}
		for _, name := range slices.Sorted(maps.Keys(g.topics)) {
			t, ok := s.topics[name]
			if !ok || t.group != i {
				add("group %s lists topic %q, which is not in it", gn, name)
				continue
			}
			for c := range t.pubs {
				pubs[c]++
			}
			for c := range t.subs {
				subs[c]++
			}
		}
		if !maps.Equal(pubs, g.pubs) || !maps.Equal(subs, g.subs) {
			add("group %s counts %d publishers and %d subscribers; its topics have %d and %d", gn, len(g.pubs), len(g.subs), len(pubs), len(subs))
		}
		if !strictlySorted(g.contacts) {
			add("group %s: contacts not sorted, repeated or empty: %q", gn, g.contacts)
		}
	}
	for _, h := range slices.Sorted(maps.Keys(s.qos)) {
		q := s.qos[h]
		switch {
		case q.hash != h || q.name == "" || len(q.xml) == 0:
			add("QoS %s listed as %q named %q with %d bytes of XML", h, q.hash, q.name, len(q.xml))
		case !used[h]:
			add("QoS %s (%s) listed but carried by no group", q.name, h)
		}
	}
	if len(s.sessions) > s.cfg.MaxSessions {
		add("%d sessions, over MaxSessions %d", len(s.sessions), s.cfg.MaxSessions)
	}
	for _, c := range slices.Sorted(maps.Keys(s.sessions)) {
		if err := s.checkSession(c, s.sessions[c]); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.checkReports()...)
	return errors.Join(errs...)
}

func (s *State) checkSession(c string, ss *session) error {
	r := ss.result
	switch {
	case c == "":
		return fmt.Errorf("a session with an empty client id")
	case ss.seq == 0 || ss.index == 0 || ss.index > s.applied:
		return fmt.Errorf("session of %q: command %d applied at %d, applied index %d", c, ss.seq, ss.index, s.applied)
	case r.Code >= numCodes || (r.Code == CodeOK) != (r.Msg == ""):
		return fmt.Errorf("session of %q: result %d with message %q", c, r.Code, r.Msg)
	case r.XML != nil || r.Contacts != nil:
		return fmt.Errorf("session of %q: result keeps XML or contacts", c)
	case r.Code != CodeOK && (r.QoS != "" || r.Hash != "" || r.Group != ""):
		return fmt.Errorf("session of %q: a failed result names a QoS or group", c)
	case r.Code == CodeOK && (r.QoS == "") != (r.Group == "") || (r.Hash == "") != (r.Group == ""):
		return fmt.Errorf("session of %q: a result with QoS %q, hash %q, group %q", c, r.QoS, r.Hash, r.Group)
	}
	if r.Group != "" {
		gi, ok := s.groupIndex(r.Group)
		if !ok || s.groups[gi].qos != r.Hash {
			return fmt.Errorf("session of %q: a result with group %s of QoS %s, which it does not carry", c, r.Group, r.Hash)
		}
		if q, ok := s.qos[r.Hash]; !ok || q.name != r.QoS {
			return fmt.Errorf("session of %q: a result with QoS %q for %s, which is not listed under that name", c, r.QoS, r.Hash)
		}
	}
	return nil
}
