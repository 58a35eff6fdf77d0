package scheduler

import (
	"cmp"
	"slices"
	"time"
)

// need is what a leaf is owed now: the part of its owned share it does not
// hold and its pending tasks ask for, less what is already being reclaimed
// for it.
func need(n *consumer) Resources {
	var owed Resources
	for k := range owed {
		switch Kind(k) {
		case Ports:
			continue
		case Disk:
			if n.spec.Owned[k] == 0 {
				continue
			}
		}
		owed[k] = min(n.spec.Owned[k]-n.owned[k], n.pending[k])
	}
	return owed.Sub(n.reclaiming).Clamp()
}

// reclaim runs on ticks, after allocation. A leaf whose pending tasks ask
// for owned resources that others borrow takes them back: the borrowers'
// revocable tasks get a notice and are killed when the owner's grace
// period ends. A leaf at its deserved share whose high-priority sessions
// wait preempts its own lower-priority tasks the same way. Nobody is pushed
// below an owned share: only revocable tasks are reclaimed.
func (c *Core) reclaim() {
	for _, n := range c.tree.nodes {
		if !n.leaf() || n.sessions == 0 || !n.pending.Any() {
			continue
		}
		if owed := need(n); owed.Any() {
			c.takeBack(n, owed, false, func(t *task) bool {
				return t.revocable && t.s.consumer != n
			}, "reclaimed by consumer "+n.spec.Name)
		}
		c.preempt(n)
	}
}

// preempt lets a leaf's waiting high-priority sessions take resources from
// its lower-priority sessions when the leaf holds its deserved share.
func (c *Core) preempt(n *consumer) {
	if c.leafKey(n) < 1 {
		return
	}
	top, found := 0, false
	var want Resources
	for _, s := range c.sheaps[n.idx].items {
		if s.suppressed || !s.pending() {
			continue
		}
		if !found || s.spec.Priority > top {
			top, found, want = s.spec.Priority, true, Resources{}
		}
		if s.spec.Priority == top {
			for _, g := range s.groups {
				want = want.Add(g.spec.Resources.Scale(int64(g.pending())))
			}
		}
	}
	if !found {
		return
	}
	want = want.Sub(n.preempting).Clamp()
	if !want.Any() {
		return
	}
	c.takeBack(n, want, true, func(t *task) bool {
		return t.s.consumer == n && t.s.spec.Priority < top
	}, "preempted by a higher-priority session of consumer "+n.spec.Name)
}

// takeBack notices the fewest, lowest-priority victims among the running
// tasks that may be taken until what they free covers want in every
// dimension want asks for, or there are no more. preempt says the victims
// are the leaf's own (priority preemption) rather than borrowers'.
func (c *Core) takeBack(n *consumer, want Resources, preempt bool, may func(*task) bool, reason string) {
	var cand []*task
	for _, a := range c.agents {
		for _, t := range a.tasks {
			if t.deadline.IsZero() && may(t) && useful(t.res, want) {
				cand = append(cand, t)
			}
		}
	}
	if len(cand) == 0 {
		return
	}
	// Lowest priority first, then the biggest (fewer victims), then the
	// youngest (less work lost).
	slices.SortFunc(cand, func(a, b *task) int {
		if d := cmp.Compare(a.s.spec.Priority, b.s.spec.Priority); d != 0 {
			return d
		}
		if d := cmp.Compare(b.res.Share(c.total), a.res.Share(c.total)); d != 0 {
			return d
		}
		if d := cmp.Compare(b.s.seq, a.s.seq); d != 0 {
			return d
		}
		return cmp.Compare(b.seq, a.seq)
	})
	deadline := c.now.Add(n.grace(c.cfg.Grace))
	c.counters.Reclaims++
	for _, t := range cand {
		if !useful(t.res, want) {
			continue
		}
		t.deadline, t.reason, t.claimant, t.preempt = deadline, reason, n, preempt
		if preempt {
			n.preempting = n.preempting.Add(t.res)
		} else {
			n.reclaiming = n.reclaiming.Add(t.res)
		}
		c.reclaims = append(c.reclaims, t)
		c.ready.Notices = append(c.ready.Notices, Notice{Task: t.id, Session: t.s.spec.ID, Deadline: deadline, Reason: reason})
		want = want.Sub(t.res)
		if !want.Clamp().Any() {
			break
		}
	}
}

// useful reports whether r frees something want asks for.
func useful(r, want Resources) bool {
	for k := range r {
		if Kind(k) != Ports && r[k] > 0 && want[k] > 0 {
			return true
		}
	}
	return false
}

// killDue kills the noticed tasks whose deadline has come.
func (c *Core) killDue() {
	keep := c.reclaims[:0]
	for _, t := range c.reclaims {
		switch {
		case t.deadline.IsZero():
			// It ended on its own.
		case t.deadline.After(c.now):
			keep = append(keep, t)
		default:
			c.counters.Preempted++
			c.kill(t, t.reason)
		}
	}
	clear(c.reclaims[len(keep):])
	c.reclaims = keep
}

// unclaim forgets a task's notice when it ends.
func unclaim(t *task) {
	if t.claimant == nil {
		return
	}
	if t.preempt {
		t.claimant.preempting = t.claimant.preempting.Sub(t.res)
	} else {
		t.claimant.reclaiming = t.claimant.reclaiming.Sub(t.res)
	}
	t.claimant, t.deadline = nil, time.Time{}
}
