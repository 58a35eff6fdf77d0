package scheduler

import (
	"cmp"
	"slices"
	"time"
)

// owed is what a leaf may take back: the part of its owned share it does
// not hold and its pending tasks ask for.
func owed(n *consumer) Resources {
	var r Resources
	for k := range r {
		switch Kind(k) {
		case Ports:
			continue
		case Disk:
			if n.spec.Owned[k] == 0 {
				continue
			}
		}
		r[k] = max(0, min(n.spec.Owned[k]-n.owned[k], n.pending[k]))
	}
	return r
}

// need is what a leaf is owed now, less what is already being reclaimed
// for it.
func need(n *consumer) Resources { return owed(n).Sub(n.reclaiming).Clamp() }

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
			c.takeBack(n, owed, false, 0, func(t *task) bool {
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
	// What the waiting sessions of the highest priority ask for.
	c.waitBuf = c.waitingByPriority(n, c.waitBuf)
	if len(c.waitBuf) == 0 {
		return
	}
	top, want := c.waitBuf[0].prio, c.waitBuf[0].want
	want = want.Sub(n.preempting).Clamp()
	if !want.Any() {
		return
	}
	c.takeBack(n, want, true, top, func(t *task) bool {
		return t.s.consumer == n && t.s.spec.Priority < top
	}, "preempted by a higher-priority session of consumer "+n.spec.Name)
}

// maxPlans caps how many waiting tasks one reclaim or preemption round
// makes room for; the next tick goes on.
const maxPlans = 256

// maxTries caps the agents, best first, on which a round looks for room
// for one task.
const maxTries = 16

// maxCands caps the agents a reclaim round ranks for one group, as the
// Kubernetes preemption dry run does: on a large cluster the first ones
// found with the room, from a starting point that moves with the state,
// are as good as all of them and cost a fraction.
const maxCands = 128

// takeBack makes room for the leaf's waiting tasks, within want: for each
// waiting task (sessions in fair order, preempt: only the top priority),
// it finds the agent where the fewest, lowest-priority tasks that may be
// taken free enough, GPU devices included, and notices them; they are
// killed when the claimant's grace period ends. A task that no agent can
// make room for takes nothing: killing tasks that would not let it run
// only churns. preempt says the victims are the leaf's own (priority
// preemption) rather than borrowers'.
func (c *Core) takeBack(n *consumer, want Resources, preempt bool, top int, may func(*task) bool, reason string) {
	// After a round that took nothing, the next looks only at the agents
	// whose room grew since, while the leaf's demand stays, its need does
	// not grow and (preemption) its top priority stays; when none grew
	// there is nothing to look at.
	m := &n.memo[0]
	if preempt {
		m = &n.memo[1]
	}
	var since uint64
	if m.epoch > 0 && within(want, m.want) && m.demand == n.demandSeq && m.top == top {
		if m.epoch == c.roomIdx.epoch {
			return
		}
		since = m.epoch
	}
	// At most what may be taken, per agent: for reclaim, the agent's
	// revocable tasks not yet noticed (the claimant's own among them);
	// for preemption, the leaf's own lower-priority tasks.
	bound := func(a *agent) Resources { return a.revocable }
	var own map[int32]Resources
	var ownAgents []int32
	if preempt {
		own = map[int32]Resources{}
		collect := func(t *task) {
			if t.deadline.IsZero() && may(t) {
				own[t.agent.idx] = own[t.agent.idx].Add(t.res)
			}
		}
		if since > 0 {
			c.roomIdx.each(Resources{}, since, func(i int) bool {
				for _, t := range c.agents[i].tasks {
					collect(t)
				}
				return true
			})
		} else {
			for _, s := range c.sessions {
				if s.consumer != n || s.spec.Priority >= top {
					continue // none of its tasks may be taken
				}
				for _, g := range s.groups {
					for _, t := range g.running {
						collect(t)
					}
				}
			}
		}
		if len(own) == 0 {
			*m = reclaimMemo{epoch: c.roomIdx.epoch, want: want, demand: n.demandSeq, top: top}
			return
		}
		bound = func(a *agent) Resources { return own[a.idx] }
		for i := range own {
			ownAgents = append(ownAgents, i)
		}
		slices.Sort(ownAgents)
	}
	sessions := slices.Clone(c.sheaps[n.idx].items)
	slices.SortFunc(sessions, func(a, b *session) int {
		if c.sessionLess(a, b) {
			return -1
		}
		if c.sessionLess(b, a) {
			return 1
		}
		return 0
	})
	r := &room{trials: map[int32]*trial{}, bound: bound, may: may, own: ownAgents}
	if since > 0 && !preempt {
		// The agents that grew since are few and the same for every
		// group: find them once, not once per group.
		r.grown = c.grownBuf[:0]
		c.roomIdx.each(Resources{}, since, func(i int) bool {
			r.grown = append(r.grown, int32(i))
			return true
		})
		defer func() { c.grownBuf = r.grown[:0] }()
	}
	deadline := c.now.Add(n.grace(c.cfg.Grace))
	var planned Resources
	plans := 0
	// Tasks that found no room this round: a task with the same
	// constraints and GPU wishes at least as big in every dimension finds
	// none either (planning only takes room); where no agent had the room
	// at all, whatever the constraints, no task at least as big finds any.
	var failed []*TaskGroup
	var noRoom []Resources
	for _, s := range sessions {
		if s.suppressed || (preempt && s.spec.Priority != top) {
			continue
		}
		for _, g := range s.groups {
			r.cands = nil
			if slices.ContainsFunc(noRoom, func(f Resources) bool { return f.Fits(g.spec.Resources) }) ||
				slices.ContainsFunc(failed, func(f *TaskGroup) bool { return f.Resources.Fits(g.spec.Resources) && samePlacement(f, &g.spec) }) {
				continue
			}
			for range g.pending() {
				if plans >= maxPlans || !within(planned.Add(g.spec.Resources), want) {
					break
				}
				a, victims := c.roomFor(s, g, r)
				if a == nil {
					switch {
					case !r.roomy:
						noRoom = append(noRoom, g.spec.Resources)
					default:
						failed = append(failed, &g.spec)
					}
					break // the group's other tasks would not fit either
				}
				if plans == 0 {
					c.counters.Reclaims++
				}
				plans++
				planned = planned.Add(g.spec.Resources)
				c.notice(n, victims, g.spec.Resources, deadline, preempt, reason)
				if own != nil {
					for _, t := range victims {
						own[a.idx] = own[a.idx].Sub(t.res)
					}
				}
			}
		}
	}
	*m = reclaimMemo{}
	if plans == 0 {
		*m = reclaimMemo{epoch: c.roomIdx.epoch, want: want, demand: n.demandSeq, top: top}
	}
}

// reclaimMemo remembers a reclaim or preemption round that took nothing:
// the room index's epoch then, the leaf's need, its demand counter and
// (preemption) the priority it preempted for. While the need does not grow
// and the rest stays, only agents whose room grew since (a task ended, an
// offer went, the agent changed) can make room. It is part of the state
// (see Snapshot): it decides which agents a round looks at, so which
// victims it picks.
type reclaimMemo struct {
	epoch  uint64
	want   Resources
	demand uint64
	top    int
}

// room is one reclaim round's view of the agents: what planned tasks and
// victims change, and the agents that could make room for the group being
// planned, best first.
type room struct {
	trials map[int32]*trial
	bound  func(*agent) Resources // what may still be taken
	may    func(*task) bool
	// own lists, for preemption, the agents with tasks that may be
	// taken; grown, for a reclaim round after one that took nothing, the
	// agents whose room grew since, in index order. Otherwise reclaim
	// finds its agents in the room index.
	own   []int32
	grown []int32
	cands []*agent
	// roomy says whether any agent had room for the group's task,
	// leaving its constraints aside.
	roomy bool
}

func (c *Core) trialOf(r *room, a *agent) *trial {
	tr := r.trials[a.idx]
	if tr == nil {
		tr = &trial{avail: c.avail(a), gpuFree: slices.Clone(a.gpuFree)}
		r.trials[a.idx] = tr
	}
	return tr
}

// within reports whether r fits in budget over the dimensions owned
// shares and reclaim count: ports are plentiful, and disk counts only
// where the budget has some.
func within(r, budget Resources) bool {
	for k := range r {
		switch {
		case Kind(k) == Ports, Kind(k) == Disk && budget[k] == 0:
			continue
		case r[k] > budget[k]:
			return false
		}
	}
	return true
}

// roomFor finds the agent where taking the fewest tasks lets one task of
// g run, and those tasks; nil when there is none. The trial of the agent
// chosen is updated as if the victims were gone and the task ran.
func (c *Core) roomFor(s *session, g *group, r *room) (*agent, []*task) {
	res := g.spec.Resources
	may := r.may
	if r.cands == nil {
		// The agents the group may run on with room once their takable
		// tasks go, the least to free first.
		type cand struct {
			a   *agent
			gap float64
		}
		var cs []cand
		r.roomy = false
		consider := func(i int) bool {
			a := c.agents[i]
			if a.lost || a.unhealthy {
				return true
			}
			up := r.bound(a)
			if !up.Any() {
				return true
			}
			avail := c.avail(a)
			if tr := r.trials[a.idx]; tr != nil {
				avail = tr.avail
			}
			if !res.Fits(avail.Add(up)) {
				return true
			}
			r.roomy = true
			if !suits(a, &g.spec) {
				return true
			}
			cs = append(cs, cand{a, res.Sub(avail).Clamp().Share(c.total)})
			return true
		}
		// Reclaim starts from a point that moves with the state.
		from := 0
		if n := len(c.agents); n > 0 {
			from = int(c.roomIdx.epoch % uint64(n))
		}
		switch {
		case r.own != nil:
			for _, i := range r.own {
				consider(int(i))
			}
		case r.grown != nil:
			// As the index search below would, from the same point.
			start, _ := slices.BinarySearch(r.grown, int32(from))
			for k := range r.grown {
				i := int(r.grown[(start+k)%len(r.grown)])
				if res.Fits(c.roomIdx.at(i)) {
					if consider(i); len(cs) >= maxCands {
						break
					}
				}
			}
		default:
			c.roomIdx.eachFrom(res, 0, from, func(i int) bool {
				consider(i)
				return len(cs) < maxCands
			})
		}
		slices.SortStableFunc(cs, func(x, y cand) int { return cmp.Compare(x.gap, y.gap) })
		r.cands = make([]*agent, len(cs))
		for i, cd := range cs {
			r.cands[i] = cd.a
		}
	}
	tried := 0
	for _, a := range r.cands {
		tr := c.trialOf(r, a)
		if !res.Fits(tr.avail.Add(r.bound(a))) {
			continue
		}
		if tried++; tried > maxTries {
			break
		}
		var pool []*task
		var sum Resources
		for _, t := range a.tasks {
			if t.deadline.IsZero() && may(t) {
				pool = append(pool, t)
				sum = sum.Add(t.res)
			}
		}
		if !res.Fits(tr.avail.Add(sum)) {
			continue // the bound counted tasks this claimant may not take
		}
		// Lowest priority first, then the biggest (fewer victims), then
		// the youngest (less work lost).
		slices.SortFunc(pool, func(x, y *task) int {
			if d := cmp.Compare(x.s.spec.Priority, y.s.spec.Priority); d != 0 {
				return d
			}
			if d := cmp.Compare(y.res.Share(c.total), x.res.Share(c.total)); d != 0 {
				return d
			}
			if d := cmp.Compare(y.s.seq, x.s.seq); d != 0 {
				return d
			}
			return cmp.Compare(y.seq, x.seq)
		})
		// What must be freed here: what the agent lacks, or, when the
		// task fits but waits (the consumer's limit, or owned shares
		// that are not lent, hold it back), as much as it asks for.
		target := res.Sub(tr.avail).Clamp()
		if !target.Any() {
			target = res
		}
		target[Ports] = 0
		avail, gpuFree := tr.avail, slices.Clone(tr.gpuFree)
		var freed Resources
		var victims []*task
		var gpus []int
		for _, t := range pool {
			short := target.Sub(freed).Clamp()
			gpuOK := res[GPU] == 0
			if !gpuOK {
				gpus = pickGPUs(a, &g.spec, gpuFree)
				gpuOK = gpus != nil
			}
			switch {
			case !short.Any() && gpuOK:
			case !short.Any() && t.res[GPU] == 0:
				continue // only a GPU would help now
			case short.Any() && !useful(t.res, short) && (gpuOK || t.res[GPU] == 0):
				continue
			default:
				victims = append(victims, t)
				freed = freed.Add(t.res)
				avail = avail.Add(t.res)
				giveGPUs(gpuFree, t)
				continue
			}
			break
		}
		if target.Sub(freed).Clamp().Any() || !res.Fits(avail) {
			continue
		}
		if res[GPU] > 0 && gpus == nil {
			if gpus = pickGPUs(a, &g.spec, gpuFree); gpus == nil {
				continue
			}
		}
		if len(victims) == 0 {
			continue
		}
		tr.avail = avail.Sub(res)
		takeGPUs(gpuFree, gpus, res[GPU])
		tr.gpuFree = gpuFree
		return a, victims
	}
	return nil, nil
}

// suits reports whether a task of g could ever run on the agent: its
// constraints, and GPUs of its models and links.
func suits(a *agent, g *TaskGroup) bool {
	for _, ct := range g.Constraints {
		if !ct.Match(a.spec.Attributes) {
			return false
		}
	}
	if g.Resources[GPU] == 0 {
		return true
	}
	all := make([]int64, len(a.spec.GPUs))
	for i := range all {
		all[i] = 1000
	}
	return pickGPUs(a, g, all) != nil
}

// samePlacement reports whether tasks of x and y may run on the same
// agents and devices: the same constraints and GPU wishes.
func samePlacement(x, y *TaskGroup) bool {
	return x.SameIsland == y.SameIsland && slices.Equal(x.GPUModels, y.GPUModels) &&
		slices.EqualFunc(x.Constraints, y.Constraints, func(a, b Constraint) bool {
			return a.Attribute == b.Attribute && a.Op == b.Op && slices.Equal(a.Values, b.Values)
		})
}

// giveGPUs frees a task's devices in free.
func giveGPUs(free []int64, t *task) {
	per := perDevice(t.res[GPU], len(t.gpus))
	for _, i := range t.gpus {
		free[i] += per
	}
}

// notice warns victims that they will be killed at deadline to make room
// for a task of the claimant that asks for res; each carries a share of
// the claim until it ends.
func (c *Core) notice(n *consumer, victims []*task, res Resources, deadline time.Time, preempt bool, reason string) {
	c.planSeq++
	share := res.Scale(1)
	for k := range share {
		share[k] /= int64(len(victims))
	}
	left := res
	for i, t := range victims {
		claim := share
		if i == len(victims)-1 {
			claim = left
		}
		left = left.Sub(claim)
		t.deadline, t.reason, t.preempt, t.claim, t.plan = deadline, reason, preempt, claim, c.planSeq
		if t.revocable {
			t.agent.revocable = t.agent.revocable.Sub(t.res)
			c.reindex(t.agent, false)
		}
		n.addClaim(t)
		c.reclaims = append(c.reclaims, t)
		c.ready.Notices = append(c.ready.Notices, Notice{Task: t.id, Session: t.s.spec.ID, Deadline: deadline, Reason: reason, Consumer: n.spec.Name, Preempt: preempt})
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
	for _, t := range c.reclaims {
		if !t.deadline.IsZero() && !t.deadline.After(c.now) {
			c.counters.Preempted++
			c.kill(t, t.reason)
		}
	}
	c.dropUnclaimed()
}

// unclaim forgets a task's notice when it ends.
func unclaim(t *task) {
	if t.claimant == nil {
		return
	}
	if t.preempt {
		t.claimant.preempting = t.claimant.preempting.Sub(t.claim)
	} else {
		t.claimant.reclaiming = t.claimant.reclaiming.Sub(t.claim)
	}
	t.claimant, t.deadline, t.claim, t.reason, t.preempt, t.plan = nil, time.Time{}, Resources{}, "", false, 0
}

// addClaim makes leaf n the claimant of noticed task t and counts its
// claim (the inverse of unclaim).
func (n *consumer) addClaim(t *task) {
	t.claimant = n
	if !t.preempt {
		n.reclaiming = n.reclaiming.Add(t.claim)
		return
	}
	if !n.preempting.Any() || t.s.spec.Priority > n.victimTop {
		n.victimTop = t.s.spec.Priority
	}
	n.preempting = n.preempting.Add(t.claim)
}

// withdraw takes back notices whose claimant no longer needs them: its
// session finished, shrank or found room elsewhere before the deadline.
// Whole plans go, newest first, while the plans left still cover all that
// the claimant is owed (reclaim: its waiting tasks within its owned share;
// preemption: its waiting tasks of higher priority than the victims), so
// the next round has nothing to notice again. The tasks keep running.
func (c *Core) withdraw() {
	// The leaves to look at: reclaim claims above what is owed, or
	// preemption claims above what waits at a priority above every
	// victim's (no plan's victims have a higher one); and not as they
	// were after the last look, which withdrew all it could.
	var check []*consumer
	for _, n := range c.tree.nodes {
		if !n.leaf() || !n.reclaiming.Any() && !n.preempting.Any() {
			continue
		}
		var waiting []prioWant
		if n.preempting.Any() {
			c.waitBuf = c.waitingByPriority(n, c.waitBuf)
			waiting = c.waitBuf
		}
		m := &n.wmemo
		now := withdrawMemo{reclaiming: n.reclaiming, owed: owed(n), preempting: n.preempting, waiting: waiting}
		over := !within(now.reclaiming, now.owed) || now.preempting.Any() && !covers(above(waiting, n.victimTop), now.preempting)
		if over && !m.same(&now) {
			check = append(check, n)
		}
		now.waiting = append(m.waiting[:0], waiting...)
		*m = now
	}
	if len(check) == 0 {
		return
	}
	var plan []*task
	for j := len(c.reclaims) - 1; j >= 0; j-- {
		t := c.reclaims[j]
		if t.deadline.IsZero() || !slices.Contains(check, t.claimant) {
			continue // it ended or was withdrawn, or its claimant needs all it claims
		}
		// The plan: the tasks noticed together, side by side in the
		// list but for those that ended since.
		plan = append(plan[:0], t)
		for ; t.plan != 0 && j > 0 && (c.reclaims[j-1].plan == t.plan || c.reclaims[j-1].deadline.IsZero()); j-- {
			if v := c.reclaims[j-1]; !v.deadline.IsZero() {
				plan = append(plan, v)
			}
		}
		slices.Reverse(plan)
		n := t.claimant
		held, due, prio := n.reclaiming, n.wmemo.owed, t.s.spec.Priority
		var claim Resources
		for _, v := range plan {
			claim = claim.Add(v.claim)
			prio = max(prio, v.s.spec.Priority)
		}
		if t.preempt {
			held, due = n.preempting, above(n.wmemo.waiting, prio)
		}
		if !covers(held.Sub(claim), due.Min(held)) {
			continue
		}
		for _, v := range plan {
			c.withdrawNotice(v, "consumer "+n.spec.Name+" no longer needs its resources")
		}
	}
	// Withdrawing only lowers the claims, after which no plan left
	// could go: the next look waits for something else to change.
	for _, n := range check {
		n.wmemo.reclaiming, n.wmemo.preempting = n.reclaiming, n.preempting
	}
	c.dropUnclaimed()
}

// dropUnclaimed takes the tasks whose notice went (they ended or it was
// withdrawn) off the list of noticed tasks, so that a task noticed again
// is on it once.
func (c *Core) dropUnclaimed() {
	keep := c.reclaims[:0]
	for _, t := range c.reclaims {
		if !t.deadline.IsZero() {
			keep = append(keep, t)
		}
	}
	clear(c.reclaims[len(keep):])
	c.reclaims = keep
}

// withdrawNotice cancels t's notice: it keeps running.
func (c *Core) withdrawNotice(t *task, reason string) {
	c.counters.Withdrawn++
	c.ready.Withdrawals = append(c.ready.Withdrawals, Withdrawal{Task: t.id, Session: t.s.spec.ID, Consumer: t.claimant.spec.Name, Reason: reason})
	unclaim(t)
	if t.revocable {
		t.agent.revocable = t.agent.revocable.Add(t.res)
		c.reindex(t.agent, false)
	}
}

// withdrawMemo is what withdraw last saw of a leaf: its claims, what it is
// owed, and what its sessions wait for by priority. While they stay, a
// look withdraws nothing. It only saves work, so it is not in snapshots.
type withdrawMemo struct {
	reclaiming, owed, preempting Resources
	waiting                      []prioWant
}

func (m *withdrawMemo) same(o *withdrawMemo) bool {
	return m.reclaiming == o.reclaiming && m.owed == o.owed && m.preempting == o.preempting && slices.Equal(m.waiting, o.waiting)
}

// prioWant is what a leaf's waiting sessions of priority prio or above ask
// for.
type prioWant struct {
	prio int
	want Resources
}

// waitingByPriority lists, highest priority first, what the leaf's
// waiting sessions ask for at each priority or above, into buf.
func (c *Core) waitingByPriority(n *consumer, buf []prioWant) []prioWant {
	out := buf[:0]
	for _, s := range c.sheaps[n.idx].items {
		var want Resources
		for _, g := range s.groups {
			want = want.Add(g.spec.Resources.Scale(int64(g.pending())))
		}
		i, found := slices.BinarySearchFunc(out, s.spec.Priority, func(p prioWant, prio int) int { return cmp.Compare(prio, p.prio) })
		if !found {
			out = slices.Insert(out, i, prioWant{prio: s.spec.Priority})
		}
		out[i].want = out[i].want.Add(want)
	}
	for i := 1; i < len(out); i++ {
		out[i].want = out[i].want.Add(out[i-1].want)
	}
	return out
}

// above is what waits at a priority above prio.
func above(waiting []prioWant, prio int) Resources {
	var r Resources
	for _, p := range waiting {
		if p.prio <= prio {
			break
		}
		r = p.want
	}
	return r
}

// covers reports whether have holds want in every dimension reclaim
// counts.
func covers(have, want Resources) bool {
	for k := range have {
		if Kind(k) != Ports && have[k] < want[k] {
			return false
		}
	}
	return true
}
