package scheduler

import (
	"cmp"
	"slices"
	"time"
)

// ConsumerStatus is a consumer's accounting after the last step, for
// reports and simulators. Resources of a parent cover its subtree.
type ConsumerStatus struct {
	Name   string
	Parent string
	Leaf   bool
	// Owned is the consumer's owned share as configured; Grace its
	// effective reclaim grace period.
	Owned Resources
	Grace time.Duration
	// Held is what its tasks hold; HeldOwned the part of it on owned
	// resources (not revocable).
	Held      Resources
	HeldOwned Resources
	// Pending is what its waiting tasks ask for; Deserved its fair share
	// as last computed (on a tick).
	Pending  Resources
	Deserved Resources
	// Smallest is, for a leaf, the smallest waiting task in every
	// dimension over its sessions that are not suppressed; zero when none
	// waits.
	Smallest Resources
	Sessions int
}

// Consumers returns the status of every consumer, parents before their
// children, in the order they were set.
func (c *Core) Consumers() []ConsumerStatus {
	out := make([]ConsumerStatus, 0, len(c.tree.nodes))
	for _, n := range c.tree.nodes {
		st := ConsumerStatus{
			Name: n.spec.Name, Parent: n.spec.Parent, Leaf: n.leaf(),
			Owned: n.spec.Owned, Grace: n.grace(c.cfg.Grace),
			Held: n.alloc, HeldOwned: n.owned, Pending: n.pending, Deserved: n.deserved,
			Sessions: n.sessions,
		}
		if n.leaf() {
			first := true
			for _, s := range c.sheaps[n.idx].items {
				if r, ok := s.smallest(); ok && first {
					st.Smallest, first = r, false
				} else if ok {
					st.Smallest = st.Smallest.Min(r)
				}
			}
		}
		out = append(out, st)
	}
	return out
}

// Total is the resources of the live agents.
func (c *Core) Total() Resources { return c.total }

// Held is what all running tasks hold.
func (c *Core) Held() Resources {
	var r Resources
	for _, n := range c.tree.roots {
		r = r.Add(n.alloc)
	}
	return r
}

// GroupStatus is a task group's progress.
type GroupStatus struct {
	Name    string
	Count   int // tasks the group wants running
	Running int
	Pending int
	Started bool // a gang has started, or the group has no gang
}

// SessionStatus is a session's progress.
type SessionStatus struct {
	ID         string
	Consumer   string
	Suppressed bool
	Groups     []GroupStatus
}

// Session returns a running session's status.
func (c *Core) Session(id string) (SessionStatus, bool) {
	s := c.sessions[id]
	if s == nil {
		return SessionStatus{}, false
	}
	st := SessionStatus{ID: id, Consumer: s.spec.Consumer, Suppressed: s.suppressed}
	for _, g := range s.groups {
		st.Groups = append(st.Groups, GroupStatus{Name: g.spec.Name, Count: g.spec.Count, Running: len(g.running), Pending: g.pending(), Started: g.started})
	}
	return st, true
}

// Waiting is how many tasks wait, over all sessions.
func (c *Core) Waiting() int {
	n := 0
	for _, s := range c.sessions {
		for _, g := range s.groups {
			n += g.pending()
		}
	}
	return n
}

// WaitingSessions lists the sessions of a leaf consumer that have waiting
// tasks and are not suppressed, oldest first.
func (c *Core) WaitingSessions(consumer string) []string {
	n := c.tree.byName[consumer]
	if n == nil || !n.leaf() {
		return nil
	}
	items := slices.Clone(c.sheaps[n.idx].items)
	slices.SortFunc(items, func(a, b *session) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = s.spec.ID
	}
	return out
}

// NextDeadline is the earliest time at which a tick has something to do
// although no event came: an offer times out, a decline filter ends, or a
// noticed task is due to be killed. It reports false when there is none.
// Once a tick has decided nothing, further ticks before the next deadline
// or event decide nothing and change nothing but the time, so a simulator
// may skip them.
func (c *Core) NextDeadline() (time.Time, bool) {
	var at time.Time
	found := false
	note := func(t time.Time) {
		if !found || t.Before(at) {
			at, found = t, true
		}
	}
	for _, o := range c.offerQueue {
		if !o.gone {
			note(time.Unix(0, o.expires))
			break
		}
	}
	if c.filterq.len() > 0 {
		note(c.filterq.peek().at)
	}
	for _, t := range c.reclaims {
		if !t.deadline.IsZero() {
			note(t.deadline)
		}
	}
	return at, found
}
