package scheduler

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// offer is an outstanding offer.
type offer struct {
	id        string
	seq       uint64
	session   *session
	agent     *agent
	res       Resources
	revocable bool
	gone      bool
	expires   int64 // unix nanoseconds
}

// avail is what can still be given out on an agent: its free resources,
// less what pessimistic offers lock.
func (c *Core) avail(a *agent) Resources {
	return a.free().Sub(a.offered)
}

// allocate gives the free resources of the agents that changed to the
// sessions that wait, in fair order: offers to framework sessions, tasks
// placed for the others.
func (c *Core) allocate() {
	if c.rescan {
		c.rescan = false
		c.markAllFree()
	}
	for len(c.dirty) > 0 || len(c.serveq) > 0 {
		if len(c.dirty) == 0 {
			// Then the sessions whose demand grew, and spread
			// sessions that took one task on each agent filled, go
			// on across the others.
			again := c.serveq
			c.serveq = nil
			for _, s := range again {
				s.queued = false
				c.serve(s)
			}
			continue
		}
		list := c.dirty
		c.dirty = nil
		if c.leaves.len() == 0 {
			for _, i := range list {
				c.agents[i].dirty = false
			}
			continue
		}
		// Busiest agents first: packing fills them before it opens
		// empty ones.
		agents := make([]*agent, len(list))
		for j, i := range list {
			agents[j] = c.agents[i]
		}
		c.byBusy(agents, false)
		for _, a := range agents {
			a.dirty = false
			c.fill(a)
		}
	}
}

// fill gives one agent's free resources away, best-served first: each
// round walks the leaves and their sessions in fair order, without taking
// them out of their heaps, to the first session that takes something. A
// leaf or session that takes nothing is not asked again in this fill: the
// agent only has less to give as the fill goes on.
func (c *Core) fill(a *agent) {
	if a.lost || a.unhealthy || !c.hasPending || !c.minShape.Fits(c.avail(a)) {
		return
	}
	c.fillSeq++
	for c.minShape.Fits(c.avail(a)) {
		if c.cfg.OfferFanout > 1 && len(a.offers) >= c.cfg.OfferFanout {
			break
		}
		s := c.fillOnce(a)
		if s == nil {
			break
		}
		c.requeueSession(s)
		c.requeueLeaf(s.consumer)
	}
}

// fillOnce gives the agent to the first session in fair order that takes
// something, and returns it; nil when none does.
func (c *Core) fillOnce(a *agent) *session {
	avail := c.avail(a)
	var took *session
	c.leaves.walk(&c.leafWalk, func(n *consumer) bool {
		if n.fillMiss == c.fillSeq {
			return true
		}
		c.walkFitting(n, avail, func(s *session) bool {
			if s.fillMiss == c.fillSeq || s.spreadFill == c.fillSeq {
				return true
			}
			if until, ok := s.filters[a.idx]; ok && until.After(c.now) {
				return true
			}
			if shape, ok := s.smallest(); !ok || !shape.Fits(avail) {
				s.fillMiss = c.fillSeq
				return true
			}
			// Neither an offer nor a placement that fails changes
			// the heaps, so the walk may go on after one.
			if s.framework {
				if c.offerTo(s, a) {
					took = s
				}
			} else if c.place(s, a) > 0 {
				took = s
				if s.spec.Policy == Spread {
					s.spreadFill = c.fillSeq
					c.serveLater(s)
				}
			}
			if took == nil {
				s.fillMiss = c.fillSeq
			}
			return took == nil
		})
		if took == nil {
			n.fillMiss = c.fillSeq
		}
		return took == nil
	})
	return took
}

// serve gives a session whose demand just appeared (submitted, grown or
// revived) the free resources of the agents that are not being filled
// anyway. Nothing else that waits can use them: every waiting session was
// tried on them when they became free, and only new demand or more free
// resources change that. Binpack takes the busiest agents first; spread
// puts one task on each agent, emptiest first, in rounds.
func (c *Core) serve(s *session) {
	shape, ok := s.smallest()
	if s.suppressed || !ok {
		return
	}
	if c.atLimit(s, shape) {
		return // until a task under the limit ends (see freeing)
	}
	// After a search that found no room for the shape, only agents
	// whose free resources grew since can have it: a spread session that
	// took one task in a fill is served again on every fill, mostly to
	// find nothing. The free index tells that at little cost; the busy
	// order is brought up to date only when some agent has room.
	var since uint64
	if s.unfit.epoch > 0 && s.unfit.shape == shape {
		since = s.unfit.epoch
	}
	s.unfit.shape, s.unfit.epoch = shape, 0
	fits := false
	c.freeIdx.each(shape, since, func(int) bool {
		fits = true
		return false
	})
	if !fits {
		s.unfit.epoch = c.freeIdx.epoch
		c.requeue(s)
		return
	}
	c.order.sync(&c.freeIdx, len(c.agents), c.total)
	cand := candidates{c: c, s: s, shape: shape, since: since, spread: s.spec.Policy == Spread, list: c.candBuf[:0]}
	if s.gangWaits() {
		// A gang launches on agents ahead in the order: take them as
		// they are now.
		cand.all()
	}
	switch {
	case s.framework:
		for i := 0; ; i++ {
			a := cand.at(i)
			if a == nil {
				break
			}
			c.offerTo(s, a)
		}
	case cand.spread:
		for placed := true; placed && s.pending(); {
			placed = false
			for i := 0; s.pending(); i++ {
				a := cand.at(i)
				if a == nil {
					break
				}
				if c.place(s, a) > 0 {
					placed = true
				} else if c.servedUp(s) {
					break
				}
			}
		}
	default:
		for i := 0; s.pending(); i++ {
			a := cand.at(i)
			if a == nil || c.place(s, a) == 0 && c.servedUp(s) {
				break
			}
		}
	}
	clear(cand.list)
	c.candBuf = cand.list[:0]
	c.requeue(s)
}

// candidates are the agents serve tries for a session, in its order: the
// ones whose free resources hold the session's smallest task (and grew
// since, see unfit) and that it may use, busiest first for binpack and
// emptiest first for spread, by index among equals, as byBusy sorts them.
// They are found in the busy order as serve asks for them, a few more
// each time, and kept, for spread goes round them again. An agent's place
// and room are the order's, from when serve began; whether the session may
// use it is read when it is found, which gives the same for every agent
// but the ones serve already placed on, unless a gang launched on others:
// then serve finds them all first.
type candidates struct {
	c      *Core
	s      *session
	shape  Resources
	since  uint64
	spread bool
	list   []*agent
	done   bool
	begun  bool
	last   orderKey // the last agent found
	batch  int      // how many agents the next search finds at most
}

// at returns the i-th candidate, or nil when there are fewer.
func (x *candidates) at(i int) *agent {
	for len(x.list) <= i && !x.done {
		x.batch = max(1, 2*x.batch)
		x.more(x.batch)
	}
	if i < len(x.list) {
		return x.list[i]
	}
	return nil
}

// all finds every candidate.
func (x *candidates) all() {
	for !x.done {
		x.more(math.MaxInt)
	}
}

// more finds up to n more agents that hold the shape and keeps those the
// session may use.
func (x *candidates) more(n int) {
	var after *orderKey
	if x.begun {
		last := x.last
		after = &last
	}
	found := 0
	o := &x.c.order
	o.each(after, x.spread, x.shape, x.since, func(i int32) bool {
		x.begun, x.last = true, o.key(i)
		found++
		if a := x.c.agents[i]; x.usable(a) {
			x.list = append(x.list, a)
		}
		return found < n
	})
	x.done = found < n
}

// usable reports whether serve may use agent a for the session: it is not
// about to be filled, has room for another offer, and is not filtered.
func (x *candidates) usable(a *agent) bool {
	if a.dirty || x.c.cfg.OfferFanout > 1 && len(a.offers) >= x.c.cfg.OfferFanout {
		return false
	}
	until, ok := x.s.filters[a.idx]
	return !ok || !until.After(x.c.now)
}

// gangWaits reports whether a group of the session waits for its gang to
// start.
func (s *session) gangWaits() bool {
	for _, g := range s.groups {
		if !g.started && g.pending() > 0 {
			return true
		}
	}
	return false
}

// servedUp reports whether serve can stop: the session waits for nothing
// more, or its smallest task is over a limit.
func (c *Core) servedUp(s *session) bool {
	shape, ok := s.smallest()
	return !ok || c.atLimit(s, shape)
}

// serveLater queues a session for serve once the dirty agents are filled.
func (c *Core) serveLater(s *session) {
	if !s.queued {
		s.queued = true
		c.serveq = append(c.serveq, s)
	}
}

// byBusy sorts agents busiest first (least free, as a share of the
// cluster), or emptiest first.
func (c *Core) byBusy(list []*agent, emptiest bool) {
	if len(list) < 2 {
		return
	}
	type keyed struct {
		share float64
		a     *agent
	}
	ks := make([]keyed, len(list))
	for i, a := range list {
		ks[i] = keyed{c.avail(a).Share(c.total), a}
	}
	slices.SortFunc(ks, func(x, y keyed) int {
		d := cmp.Compare(x.share, y.share)
		if emptiest {
			d = -d
		}
		if d != 0 {
			return d
		}
		return cmp.Compare(x.a.idx, y.a.idx)
	})
	for i, k := range ks {
		list[i] = k.a
	}
}

// requeueSession puts a session in or out of its consumer's heap as it
// has pending tasks or not and fixes its key, leaving the leaf's place to
// the caller (see requeue).
func (c *Core) requeueSession(s *session) {
	h := &c.sheaps[s.consumer.idx]
	want := !s.suppressed && s.pending()
	switch {
	case want && s.heapIdx < 0:
		h.push(s)
	case !want && s.heapIdx >= 0:
		h.remove(s.heapIdx)
	case want:
		h.fix(s.heapIdx)
	}
	c.reclass(s)
}

// trial is what is left on an agent while tasks are tried on it: the
// resources, the GPU devices, and what the tried tasks add to their
// consumer.
type trial struct {
	avail      Resources
	gpuFree    []int64
	extra      Resources
	extraOwned Resources
}

// fit checks one task of a group on an agent (see check) and remembers a
// refusal for a consumer's limit or for owned resources that are not lent:
// resources freed elsewhere may then let the task run (see freeing).
func (c *Core) fit(s *session, g *group, a *agent, tr *trial) (gpus []int, revocable bool, why string) {
	gpus, revocable, why, limited := c.check(s, g, a, tr)
	switch {
	case limited != nil:
		limited.limitHit = true
	case why == whyNoLend:
		c.lendHit = true
	}
	return gpus, revocable, why
}

const whyNoLend = "the free resources are owned by consumers that do not lend"

// check checks one task of a group on an agent: constraints, resources,
// GPU devices, the consumer's limits, and, for a task on borrowed
// resources, the owned resources that non-lending consumers keep. It
// returns the devices and whether the task is revocable, or why it does
// not fit and, when a limit is the reason, whose.
func (c *Core) check(s *session, g *group, a *agent, tr *trial) (gpus []int, revocable bool, why string, limited *consumer) {
	for _, ct := range g.spec.Constraints {
		if !ct.Match(a.spec.Attributes) {
			return nil, false, "constraint on " + ct.Attribute, nil
		}
	}
	res := g.spec.Resources
	if !res.Fits(tr.avail) {
		return nil, false, "not enough " + short(res, tr.avail), nil
	}
	if res[GPU] > 0 {
		if gpus = pickGPUs(a, &g.spec, tr.gpuFree); gpus == nil {
			return nil, false, "no free GPU of the models and links asked for", nil
		}
	}
	n := s.consumer
	for x := n; x != nil; x = x.parent {
		if overLimit(x.alloc.Add(tr.extra).Add(res), x.spec.Limit) {
			return nil, false, "consumer " + x.spec.Name + " is at its limit", x
		}
	}
	revocable = !ownedRoom(n, res.Add(tr.extraOwned))
	if revocable && !c.lendable(n, res.Add(tr.extra)) {
		return nil, false, whyNoLend, nil
	}
	return gpus, revocable, "", nil
}

// short names the dimensions where r does not fit in avail.
func short(r, avail Resources) string {
	var out []string
	for k := range r {
		if r[k] > avail[k] {
			out = append(out, strings.TrimSuffix(strings.TrimSuffix(Kind(k).String(), "_milli"), "_bytes"))
		}
	}
	return strings.Join(out, ", ")
}

// ownedRoom reports whether r more fits in the owned shares of a leaf and
// its ancestors: then it is not borrowed.
func ownedRoom(n *consumer, r Resources) bool {
	if !n.spec.Owned.Any() {
		return false
	}
	for x := n; x != nil; x = x.parent {
		if x.spec.Owned.Any() && !within(x.owned.Add(r), x.spec.Owned) {
			return false
		}
	}
	return true
}

// lendable reports whether borrowing r for n leaves the cluster enough free
// resources for the idle owned shares of the consumers that do not lend.
func (c *Core) lendable(n *consumer, r Resources) bool {
	var reserve Resources
	for _, y := range c.tree.noLend {
		if isAncestor(y, n) {
			continue
		}
		reserve = reserve.Add(y.spec.Owned.Sub(y.owned).Clamp())
	}
	if !reserve.Any() {
		return true
	}
	var used Resources
	for _, x := range c.tree.roots {
		used = used.Add(x.alloc)
	}
	free := c.total.Sub(used).Sub(r)
	for k := range reserve {
		if reserve[k] > 0 && free[k] < reserve[k] {
			return false
		}
	}
	return true
}

func isAncestor(y, n *consumer) bool {
	for x := n; x != nil; x = x.parent {
		if x == y {
			return true
		}
	}
	return false
}

// pickGPUs chooses devices for one task: for a fraction, the device that
// fits it most tightly; for whole GPUs, free devices from the NVLink island
// with the fewest free devices that still holds them all, so that larger
// islands stay whole (with SameIsland, only such an island will do). It
// returns nil when nothing fits.
func pickGPUs(a *agent, g *TaskGroup, free []int64) []int {
	need := g.Resources[GPU]
	ok := func(i int) bool {
		d := a.spec.GPUs[i]
		return len(g.GPUModels) == 0 || slices.Contains(g.GPUModels, d.Model)
	}
	if need < 1000 {
		best := -1
		for i := range free {
			if ok(i) && free[i] >= need && (best < 0 || free[i] < free[best]) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		return []int{best}
	}
	want := int(need / 1000)
	// Free whole devices per island.
	type island struct{ id, free int }
	var islands []island
	total := 0
	for i := range free {
		if !ok(i) || free[i] != 1000 {
			continue
		}
		total++
		id := a.spec.GPUs[i].Island
		j := slices.IndexFunc(islands, func(x island) bool { return x.id == id })
		if j < 0 {
			islands = append(islands, island{id, 0})
			j = len(islands) - 1
		}
		islands[j].free++
	}
	if total < want {
		return nil
	}
	slices.SortFunc(islands, func(x, y island) int {
		if d := cmp.Compare(x.free, y.free); d != 0 {
			return d
		}
		return cmp.Compare(x.id, y.id)
	})
	take := func(ids []int) []int {
		out := make([]int, 0, want)
		for _, id := range ids {
			for i := range free {
				if len(out) < want && ok(i) && free[i] == 1000 && a.spec.GPUs[i].Island == id {
					out = append(out, i)
				}
			}
		}
		return out
	}
	for _, is := range islands {
		if is.free >= want {
			return take([]int{is.id})
		}
	}
	if g.SameIsland {
		return nil
	}
	ids := make([]int, len(islands))
	for i, is := range islands {
		ids[i] = is.id
	}
	return take(ids)
}

// place runs the built-in session scheduler for one session on one agent:
// tasks of its groups in order, as many as fit (binpack) or one (spread).
// A gang that has not started is placed whole across the free agents or
// not at all. It returns how many tasks it launched.
func (c *Core) place(s *session, a *agent) int {
	launched := 0
	for _, g := range s.groups {
		if g.pending() == 0 {
			continue
		}
		if !g.started {
			if n := g.gang(); g.gangFail != c.freeEpoch+1 && c.placeGang(s, g, a) {
				launched += n
				continue
			}
			g.gangFail = c.freeEpoch + 1
			continue
		}
		for g.pending() > 0 {
			tr := trial{avail: c.avail(a), gpuFree: a.gpuFree}
			gpus, rev, why := c.fit(s, g, a, &tr)
			if why != "" {
				break
			}
			c.launch(s, g, a, gpus, rev)
			launched++
			if s.spec.Policy == Spread {
				return launched
			}
		}
	}
	return launched
}

// placeGang places the group's gang at once, starting with agent first
// and going on through the other agents with free resources. Nothing is
// launched unless all of it fits.
func (c *Core) placeGang(s *session, g *group, first *agent) bool {
	type spot struct {
		a    *agent
		gpus []int
		rev  bool
	}
	size := g.gang()
	var spots []spot
	var extra, extraOwned Resources
	trials := map[int32]*trial{}
	try := func(a *agent) {
		if a.lost || a.unhealthy {
			return
		}
		tr := trials[a.idx]
		if tr == nil {
			tr = &trial{avail: c.avail(a), gpuFree: slices.Clone(a.gpuFree)}
			trials[a.idx] = tr
		}
		for len(spots) < size {
			tr.extra, tr.extraOwned = extra, extraOwned
			gpus, rev, why := c.fit(s, g, a, tr)
			if why != "" {
				return
			}
			res := g.spec.Resources
			tr.avail = tr.avail.Sub(res)
			takeGPUs(tr.gpuFree, gpus, res[GPU])
			extra = extra.Add(res)
			if !rev {
				extraOwned = extraOwned.Add(res)
			}
			spots = append(spots, spot{a, gpus, rev})
			if s.spec.Policy == Spread {
				return
			}
		}
	}
	try(first)
	c.freeIdx.each(g.spec.Resources, 0, func(i int) bool {
		if len(spots) >= size {
			return false
		}
		if a := c.agents[i]; a != first {
			try(a)
		}
		return true
	})
	if len(spots) < size {
		return false
	}
	for _, sp := range spots {
		c.launch(s, g, sp.a, sp.gpus, sp.rev)
	}
	g.started = true
	c.serveLater(s) // the rest of the group goes task by task anywhere
	return true
}

// perDevice is what a task of milli milli-GPUs holds of each of its
// devices: all of each when it has whole GPUs, else its fraction of one.
func perDevice(milli int64, devices int) int64 {
	if devices > 1 || milli >= 1000 {
		return 1000
	}
	return milli
}

func takeGPUs(free []int64, gpus []int, milli int64) {
	per := perDevice(milli, len(gpus))
	for _, i := range gpus {
		free[i] -= per
	}
}

// launch starts one task of a group on an agent.
func (c *Core) launch(s *session, g *group, a *agent, gpus []int, revocable bool) {
	res := g.spec.Resources
	s.taskSeq++
	t := &task{
		id: s.spec.ID + "/" + g.spec.Name + "/" + itoa(int(s.taskSeq)), s: s, g: g, agent: a,
		res: res, gpus: gpus, revocable: revocable, seq: s.taskSeq,
		agentPos: len(a.tasks), groupPos: len(g.running), ports: a.takePorts(res[Ports]),
	}
	before := g.pending()
	a.tasks = append(a.tasks, t)
	a.alloc = a.alloc.Add(res)
	if revocable {
		a.revocable = a.revocable.Add(res)
	}
	takeGPUs(a.gpuFree, gpus, res[GPU])
	c.reindex(a, false)
	g.running = append(g.running, t)
	s.alloc = s.alloc.Add(res)
	s.rekey(c.total)
	charge(s.consumer, res, !revocable, 1)
	if d := g.pending() - before; d != 0 {
		c.addPending(s.consumer, res.Scale(int64(d)))
	}
	c.tasks[t.id] = t
	var ids []string
	for _, i := range gpus {
		ids = append(ids, a.spec.GPUs[i].ID)
	}
	c.ready.Launches = append(c.ready.Launches, Launch{
		Task: t.id, Session: s.spec.ID, Group: g.spec.Name, Agent: a.spec.ID,
		Resources: res, GPUs: ids, Ports: t.ports, Revocable: revocable,
	})
	c.counters.Placements++
	if len(a.offers) > 0 {
		c.revalidateOffers(a, "another session took the resources")
	}
}
