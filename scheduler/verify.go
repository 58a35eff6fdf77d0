package scheduler

import (
	"fmt"

	"github.com/caisson/caisson/api"
)

// Verify checks the core's invariants against its own state, recomputed
// from scratch: no agent holds more than it has, no GPU is given out
// beyond its whole, every task is where its agent and group say it is and
// only once, every consumer's and session's accounting matches its tasks,
// and offers lock no more than their agents have free. It
// costs a walk over the whole state: tests and the simulator call it, the
// server does not.
func (c *Core) Verify() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invariant: "+format+": %w", append(args, api.ErrConflict)...)
	}
	seen := map[*task]bool{}
	var total Resources
	for _, a := range c.agents {
		if a.lost {
			if len(a.tasks) > 0 || len(a.offers) > 0 {
				return bad("lost agent %s has tasks or offers", a.spec.ID)
			}
			continue
		}
		total = total.Add(a.spec.Resources)
		var sum, rev Resources
		gpu := make([]int64, len(a.gpuFree))
		for i, t := range a.tasks {
			if seen[t] {
				return bad("task %s listed twice", t.id)
			}
			seen[t] = true
			if t.agent != a || t.agentPos != i || c.tasks[t.id] != t {
				return bad("task %s is out of place on agent %s", t.id, a.spec.ID)
			}
			sum = sum.Add(t.res)
			if t.revocable && t.deadline.IsZero() {
				rev = rev.Add(t.res)
			}
			per := perDevice(t.res[GPU], len(t.gpus))
			if t.res[GPU] > 0 && len(t.gpus) != max(1, int(t.res[GPU]/1000)) {
				return bad("task %s asked for %d milli-GPUs and holds %d devices", t.id, t.res[GPU], len(t.gpus))
			}
			for _, i := range t.gpus {
				gpu[i] += per
			}
		}
		if sum != a.alloc {
			return bad("agent %s accounts %v, its tasks hold %v", a.spec.ID, a.alloc, sum)
		}
		if rev != a.revocable {
			return bad("agent %s accounts %v revocable, its tasks hold %v", a.spec.ID, a.revocable, rev)
		}
		if !sum.Fits(a.spec.Resources) {
			return bad("agent %s is over-committed: %v of %v", a.spec.ID, sum, a.spec.Resources)
		}
		if err := c.checkIndex(a); err != nil {
			return bad("%v", err)
		}
		if err := checkPorts(a); err != nil {
			return bad("%v", err)
		}
		for i, used := range gpu {
			if used > 1000 || a.gpuFree[i] != 1000-used {
				return bad("agent %s GPU %s: %d milli used, %d free", a.spec.ID, a.spec.GPUs[i].ID, used, a.gpuFree[i])
			}
		}
		var offered Resources
		for _, o := range a.offers {
			if o.gone || o.agent != a || c.offers[o.id] != o {
				return bad("offer %s is out of place on agent %s", o.id, a.spec.ID)
			}
			offered = offered.Add(o.res)
			if !o.res.Fits(a.free()) {
				return bad("offer %s of %v is more than agent %s has free", o.id, o.res, a.spec.ID)
			}
		}
		if c.cfg.OfferFanout == 1 && offered != a.offered {
			return bad("agent %s locks %v in offers, its offers hold %v", a.spec.ID, a.offered, offered)
		}
	}
	if total != c.total {
		return bad("cluster total %v, agents have %v", c.total, total)
	}
	if err := c.order.check(&c.freeIdx, c.total); err != nil {
		return bad("%v", err)
	}
	if len(seen) != len(c.tasks) {
		return bad("%d tasks on agents, %d known", len(seen), len(c.tasks))
	}
	alloc := make([]Resources, len(c.tree.nodes))
	owned := make([]Resources, len(c.tree.nodes))
	pending := make([]Resources, len(c.tree.nodes))
	reclaiming := make([]Resources, len(c.tree.nodes))
	preempting := make([]Resources, len(c.tree.nodes))
	for t := range seen {
		switch cl := t.claimant; {
		case cl == nil:
			if !t.deadline.IsZero() {
				return bad("task %s is noticed for no consumer", t.id)
			}
		case c.tree.byName[cl.spec.Name] != cl || !cl.leaf() || t.deadline.IsZero():
			return bad("task %s is claimed by consumer %s, which is not a leaf of the tree, or without a deadline", t.id, cl.spec.Name)
		case t.preempt:
			preempting[cl.idx] = preempting[cl.idx].Add(t.claim)
		default:
			reclaiming[cl.idx] = reclaiming[cl.idx].Add(t.claim)
		}
	}
	for _, s := range c.sessions {
		var sum Resources
		for _, g := range s.groups {
			for i, t := range g.running {
				if t.g != g || t.s != s || t.groupPos != i || !seen[t] {
					return bad("task %s is out of place in session %s", t.id, s.spec.ID)
				}
				sum = sum.Add(t.res)
				for n := s.consumer; n != nil; n = n.parent {
					alloc[n.idx] = alloc[n.idx].Add(t.res)
					if !t.revocable {
						owned[n.idx] = owned[n.idx].Add(t.res)
					}
				}
			}
			for n := s.consumer; n != nil; n = n.parent {
				pending[n.idx] = pending[n.idx].Add(g.spec.Resources.Scale(int64(g.pending())))
			}
			if len(g.running) > g.spec.Count {
				return bad("session %s group %s runs %d tasks, above its count %d", s.spec.ID, g.spec.Name, len(g.running), g.spec.Count)
			}
			if g.spec.Max > 0 && g.spec.Count > g.spec.Max {
				return bad("session %s group %s wants %d tasks, above its max %d", s.spec.ID, g.spec.Name, g.spec.Count, g.spec.Max)
			}
		}
		if sum != s.alloc {
			return bad("session %s accounts %v, its tasks hold %v", s.spec.ID, s.alloc, sum)
		}
	}
	for _, n := range c.tree.nodes {
		if alloc[n.idx] != n.alloc || owned[n.idx] != n.owned || pending[n.idx] != n.pending {
			return bad("consumer %s accounts %v held (%v owned, %v pending), its sessions %v (%v, %v)",
				n.spec.Name, n.alloc, n.owned, n.pending, alloc[n.idx], owned[n.idx], pending[n.idx])
		}
		if reclaiming[n.idx] != n.reclaiming || preempting[n.idx] != n.preempting {
			return bad("consumer %s accounts %v reclaiming and %v preempting, its notices claim %v and %v",
				n.spec.Name, n.reclaiming, n.preempting, reclaiming[n.idx], preempting[n.idx])
		}
		if !c.checkClasses(n) {
			return bad("consumer %s: its waiting sessions are not in the classes of their smallest tasks", n.spec.Name)
		}
	}
	return nil
}
