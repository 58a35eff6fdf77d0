package scheduler

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/caisson/caisson/api"
)

type session struct {
	spec       SessionSpec
	seq        uint64
	consumer   *consumer
	groups     []*group
	alloc      Resources // held by its tasks
	offered    Resources // in its outstanding offers
	offers     int       // outstanding offers
	suppressed bool
	framework  bool
	filters    map[int32]time.Time // agent → declined until
	heapIdx    int
	taskSeq    uint64
	share      float64 // dominant share of alloc+offered: the fair order's key
	spreadFill uint64  // the fill in which a spread session took a task
	fillMiss   uint64  // the fill in which the session took nothing
	class      *shapeClass
	classIdx   int
	queued     bool // in Core.serveq
	// unfit remembers that no agent had room for the shape when serve
	// last looked, at the free index's growth epoch then: only agents
	// that grew since can have room for it now.
	unfit struct {
		shape Resources
		epoch uint64
	}
}

type group struct {
	spec     TaskGroup
	running  []*task
	started  bool   // the gang has started (or there is no gang)
	gangFail uint64 // freeEpoch+1 of the last gang attempt that failed
}

func (g *group) pending() int { return max(0, g.spec.Count-len(g.running)) }

// gang is how many tasks of a group that has not started must start
// together: Min, or all it asks for when that is fewer.
func (g *group) gang() int { return min(g.spec.Min, g.pending()) }

type task struct {
	id        string
	s         *session
	g         *group
	agent     *agent
	res       Resources
	gpus      []int // device indexes on the agent
	revocable bool
	seq       uint64 // launch order in the session
	agentPos  int
	groupPos  int
	deadline  time.Time // set when noticed for reclaim or preemption
	reason    string
	claimant  *consumer // the consumer it is reclaimed or preempted for
	claim     Resources // the part of the claimant's waiting task it makes room for
	preempt   bool
	plan      uint64 // the tasks noticed together to make room for one task
	ports     []int
}

// smallest is the smallest waiting task of the session in every
// dimension; false when none waits.
func (s *session) smallest() (Resources, bool) {
	var r Resources
	found := false
	for _, g := range s.groups {
		switch {
		case g.pending() == 0:
		case !found:
			r, found = g.spec.Resources, true
		default:
			r = r.Min(g.spec.Resources)
		}
	}
	return r, found
}

func (s *session) pending() bool {
	for _, g := range s.groups {
		if g.pending() > 0 {
			return true
		}
	}
	return false
}

func validSession(s SessionSpec) error {
	switch {
	case s.ID == "":
		return errorf(api.ErrInvalid, "session: id is empty")
	case s.Consumer == "":
		return errorf(api.ErrInvalid, "session %s: consumer is empty", s.ID)
	case len(s.Groups) == 0:
		return errorf(api.ErrInvalid, "session %s: no task groups", s.ID)
	}
	switch s.Kind {
	case "", KindSpark, KindPods, KindBatch, KindFramework:
	default:
		return errorf(api.ErrInvalid, "session %s: kind %q: want spark, pods, batch or framework", s.ID, s.Kind)
	}
	switch s.Policy {
	case "", Binpack, Spread:
	default:
		return errorf(api.ErrInvalid, "session %s: policy %q: want binpack or spread", s.ID, s.Policy)
	}
	names := map[string]bool{}
	for _, g := range s.Groups {
		switch {
		case g.Name == "" || names[g.Name]:
			return errorf(api.ErrInvalid, "session %s: group name %q is empty or repeated", s.ID, g.Name)
		case g.Resources.Negative() || !g.Resources.Any():
			return errorf(api.ErrInvalid, "session %s group %s: resources %v must be positive", s.ID, g.Name, g.Resources)
		case g.Resources[GPU] > 1000 && g.Resources[GPU]%1000 != 0:
			return errorf(api.ErrInvalid, "session %s group %s: gpu_milli %d: a task takes a fraction of one GPU or whole GPUs", s.ID, g.Name, g.Resources[GPU])
		case g.Count < 0 || g.Min < 0 || g.Max < 0:
			return errorf(api.ErrInvalid, "session %s group %s: count, min and max cannot be negative", s.ID, g.Name)
		case g.Max > 0 && g.Min > g.Max:
			return errorf(api.ErrInvalid, "session %s group %s: min %d is above max %d", s.ID, g.Name, g.Min, g.Max)
		}
		for _, ct := range g.Constraints {
			if ct.Attribute == "" || (ct.Op != OpIn && ct.Op != OpNotIn) {
				return errorf(api.ErrInvalid, "session %s group %s: constraint on %q with op %q: want an attribute and in or not_in", s.ID, g.Name, ct.Attribute, ct.Op)
			}
		}
		names[g.Name] = true
	}
	return nil
}

func (c *Core) submit(spec SessionSpec) error {
	if err := validSession(spec); err != nil {
		return err
	}
	if c.sessions[spec.ID] != nil {
		return errorf(api.ErrConflict, "session %s is already running", spec.ID)
	}
	n := c.tree.byName[spec.Consumer]
	switch {
	case n == nil:
		return errorf(api.ErrNotFound, "session %s: consumer %q is not defined", spec.ID, spec.Consumer)
	case !n.leaf():
		return errorf(api.ErrInvalid, "session %s: consumer %q has children; sessions run under leaf consumers", spec.ID, spec.Consumer)
	}
	if spec.Kind == "" {
		spec.Kind = KindBatch
	}
	if spec.Policy == "" {
		spec.Policy = Binpack
	}
	spec.Groups = slices.Clone(spec.Groups)
	c.sessionSeq++
	s := &session{spec: spec, seq: c.sessionSeq, consumer: n, heapIdx: -1, framework: spec.Kind == KindFramework}
	for _, g := range spec.Groups {
		if g.Max > 0 {
			g.Count = min(g.Count, g.Max)
		}
		s.groups = append(s.groups, &group{spec: g, started: g.Min <= 1})
		c.addPending(n, g.Resources.Scale(int64(g.Count)))
	}
	n.sessions++
	c.sessions[spec.ID] = s
	c.treeDirty = true
	c.requeue(s)
	c.serve(s)
	return nil
}

func pendingOf(n *consumer) *Resources { return &n.pending }

// addPending adds r to what leaf n and its ancestors wait for, and counts
// a growth of the leaf's demand (see reclaimMemo).
func (c *Core) addPending(n *consumer, r Resources) {
	addUp(n, pendingOf, r)
	if !r.Fits(Resources{}) {
		n.demandSeq++
	}
}

func (c *Core) session(id string) (*session, error) {
	s := c.sessions[id]
	if s == nil {
		return nil, errorf(api.ErrNotFound, "session %s is not running", id)
	}
	return s, nil
}

func (s *session) group(name string) *group {
	for _, g := range s.groups {
		if g.spec.Name == name {
			return g
		}
	}
	return nil
}

func (c *Core) updateSession(id, name string, count int) error {
	s, err := c.session(id)
	if err != nil {
		return err
	}
	g := s.group(name)
	switch {
	case g == nil:
		return errorf(api.ErrNotFound, "session %s has no group %q", id, name)
	case count < 0:
		return errorf(api.ErrInvalid, "session %s group %s: count %d is negative", id, name, count)
	}
	if g.spec.Max > 0 {
		count = min(count, g.spec.Max)
	}
	c.setCount(s, g, count)
	if g.pending() > 0 {
		c.noteShape(g.spec.Resources)
	}
	// Release the youngest tasks beyond the count.
	for len(g.running) > g.spec.Count {
		y := g.running[0]
		for _, t := range g.running {
			if t.seq > y.seq {
				y = t
			}
		}
		c.kill(y, "released: the session needs fewer tasks")
	}
	c.treeDirty = true
	c.requeue(s)
	if g.pending() > 0 {
		c.serve(s)
	}
	return nil
}

// setCount changes a group's count and its consumer's pending demand.
func (c *Core) setCount(s *session, g *group, count int) {
	before := g.pending()
	g.spec.Count = count
	if d := g.pending() - before; d != 0 {
		c.addPending(s.consumer, g.spec.Resources.Scale(int64(d)))
	}
}

func (c *Core) finishSession(id string) error {
	s, err := c.session(id)
	if err != nil {
		return err
	}
	for _, o := range c.sessionOffers(s) {
		c.rescind(o, "the session finished")
	}
	for _, g := range s.groups {
		c.setCount(s, g, 0)
		for len(g.running) > 0 {
			c.kill(g.running[len(g.running)-1], "the session finished")
		}
	}
	c.unqueue(s)
	s.consumer.sessions--
	delete(c.sessions, id)
	c.treeDirty = true
	return nil
}

// sessionOffers lists a session's outstanding offers in ID order.
func (c *Core) sessionOffers(s *session) []*offer {
	var out []*offer
	if s.offers == 0 {
		return nil
	}
	for _, o := range c.offers {
		if o.session == s {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b *offer) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

func (c *Core) suppress(id string, on bool) error {
	s, err := c.session(id)
	if err != nil {
		return err
	}
	s.suppressed = on
	if !on {
		s.consumer.demandSeq++
	}
	c.requeue(s)
	if !on {
		s.filters = nil
		c.serve(s)
	}
	return nil
}

func (c *Core) taskFinished(id string, failed bool) error {
	t := c.tasks[id]
	if t == nil {
		return errorf(api.ErrNotFound, "task %s is not running", id)
	}
	c.counters.TasksFinished++
	c.endTask(t, !failed)
	return nil
}

// endTask removes a task from its agent and session. A task that is done
// lowers its group's count; otherwise (failed, lost, killed) the count
// stays, so the task is pending again unless the count was lowered first.
func (c *Core) endTask(t *task, done bool) {
	a, s, g := t.agent, t.s, t.g
	// Off the agent.
	last := a.tasks[len(a.tasks)-1]
	a.tasks[t.agentPos], last.agentPos = last, t.agentPos
	a.tasks = a.tasks[:len(a.tasks)-1]
	a.alloc = a.alloc.Sub(t.res)
	if t.revocable && t.deadline.IsZero() {
		a.revocable = a.revocable.Sub(t.res)
	}
	giveGPUs(a.gpuFree, t)
	a.givePorts(t.ports)
	// A growth for reclaim even where the room vector stays (a revocable
	// task's end): its devices are free now, not merely takable.
	c.reindex(a, true)
	// Off the group.
	before := g.pending()
	last = g.running[len(g.running)-1]
	g.running[t.groupPos], last.groupPos = last, t.groupPos
	g.running = g.running[:len(g.running)-1]
	s.alloc = s.alloc.Sub(t.res)
	s.rekey(c.total)
	c.freeing(s.consumer)
	charge(s.consumer, t.res, !t.revocable, -1)
	if done {
		g.spec.Count--
	}
	if d := g.pending() - before; d != 0 {
		c.addPending(s.consumer, g.spec.Resources.Scale(int64(d)))
	}
	if g.pending() > 0 {
		c.noteShape(g.spec.Resources)
		if !done {
			c.serveLater(s) // to run again, elsewhere if need be
		}
	}
	delete(c.tasks, t.id)
	unclaim(t)
	c.treeDirty = true
	c.freeEpoch++
	c.markDirty(a)
	c.requeue(s)
}

// freeing is told that a task of consumer n is about to end. If a task
// was refused because n or an ancestor was at its limit, the waiting
// sessions under that consumer are served again once the task is gone: on
// any agent, not only the one it leaves. If borrowing was refused because
// it would have eaten into owned shares that are not lent, it may fit once
// the resources are free: then every agent is filled again.
func (c *Core) freeing(n *consumer) {
	if c.lendHit {
		c.lendHit, c.rescan = false, true
	}
	for x := n; x != nil; x = x.parent {
		if x.limitHit {
			x.limitHit = false
			c.serveUnder(x)
		}
	}
}

// serveUnder queues the waiting sessions of x's subtree for serve.
func (c *Core) serveUnder(x *consumer) {
	if x.leaf() {
		for _, s := range c.sheaps[x.idx].items {
			c.serveLater(s)
		}
		return
	}
	for _, ch := range x.children {
		c.serveUnder(ch)
	}
}

// atLimit reports whether a task of shape r would take s's consumer or an
// ancestor over its limit, and marks that consumer so that freeing serves
// s again.
func (c *Core) atLimit(s *session, r Resources) bool {
	for x := s.consumer; x != nil; x = x.parent {
		if overLimit(x.alloc.Add(r), x.spec.Limit) {
			x.limitHit = true
			return true
		}
	}
	return false
}

// kill stops a running task now. Its group's count stays: lower it first
// for a task that is not to run again.
func (c *Core) kill(t *task, reason string) {
	c.ready.Kills = append(c.ready.Kills, Kill{Task: t.id, Session: t.s.spec.ID, Agent: t.agent.spec.ID, Reason: reason})
	c.counters.Killed++
	c.endTask(t, false)
}

// Fair order.

func (c *Core) initHeaps() {
	c.leaves = minHeap[*consumer]{
		less:  c.leafLess,
		setAt: func(n *consumer, i int) { n.heapIdx = i },
	}
	c.sheaps = make([]minHeap[*session], len(c.tree.nodes))
	c.classes = make([][]*shapeClass, len(c.tree.nodes))
	for i := range c.sheaps {
		c.sheaps[i] = minHeap[*session]{
			less:  c.sessionLess,
			setAt: func(s *session, i int) { s.heapIdx = i },
		}
	}
	for _, n := range c.tree.nodes {
		n.heapIdx = -1
	}
}

// leafKey is how much of its deserved share a leaf holds (and is offered):
// the largest ratio over the dimensions; a leaf that deserves nothing of a
// dimension it holds sorts after every leaf that does.
func (c *Core) leafKey(n *consumer) float64 {
	held := n.alloc
	key := 0.0
	for k := range held {
		if Kind(k) == Ports || held[k] <= 0 {
			continue
		}
		if n.deserved[k] <= 0 {
			return 1e9 + held.Share(c.total)
		}
		key = max(key, float64(held[k])/float64(n.deserved[k]))
	}
	return key
}

func (c *Core) leafLess(a, b *consumer) bool {
	ka, kb := c.leafKey(a), c.leafKey(b)
	if ka != kb {
		return ka < kb
	}
	return a.idx < b.idx
}

// sessionLess orders the sessions of a consumer: higher priority first,
// then the smaller dominant share, then the older.
func (c *Core) sessionLess(a, b *session) bool {
	if a.spec.Priority != b.spec.Priority {
		return a.spec.Priority > b.spec.Priority
	}
	sa, sb := a.share, b.share
	if math.Abs(sa-sb) > 1e-12 {
		return sa < sb
	}
	return a.seq < b.seq
}

// rekey recomputes the session's key in the fair order; the caller fixes
// its place in the heap.
func (s *session) rekey(total Resources) { s.share = s.alloc.Add(s.offered).Share(total) }

// totalChanged rekeys every session and reorders the heaps once the
// cluster's size changed.
func (c *Core) totalChanged() {
	for _, s := range c.sessions {
		s.rekey(c.total)
	}
	for i := range c.sheaps {
		h := &c.sheaps[i]
		for j := h.len()/2 - 1; j >= 0; j-- {
			h.down(j)
		}
		for _, cl := range c.classes[i] {
			for j := cl.h.len()/2 - 1; j >= 0; j-- {
				cl.h.down(j)
			}
		}
	}
	c.rekeyLeaves()
}

// requeue puts a session in or out of its consumer's heap as it has
// pending tasks or not, and fixes its key and its leaf's; a session that
// comes to wait lowers the smallest waiting shape.
func (c *Core) requeue(s *session) {
	if r, ok := s.smallest(); ok && s.heapIdx < 0 && !s.suppressed && s.pending() {
		c.noteShape(r)
	}
	c.requeueSession(s)
	c.requeueLeaf(s.consumer)
}

func (c *Core) unqueue(s *session) {
	if s.heapIdx >= 0 {
		c.sheaps[s.consumer.idx].remove(s.heapIdx)
	}
	c.reclass(s)
	c.requeueLeaf(s.consumer)
}

func (c *Core) requeueLeaf(n *consumer) {
	want := c.sheaps[n.idx].len() > 0
	switch {
	case want && n.heapIdx < 0:
		c.leaves.push(n)
	case !want && n.heapIdx >= 0:
		c.leaves.remove(n.heapIdx)
	case want:
		c.leaves.fix(n.heapIdx)
	}
}

// rekeyLeaves re-sorts the leaves after the deserved shares changed.
func (c *Core) rekeyLeaves() {
	for i := c.leaves.len()/2 - 1; i >= 0; i-- {
		c.leaves.down(i)
	}
}

func sortedSessions(m map[string]*session) []*session {
	out := make([]*session, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *session) int { return cmp.Compare(a.seq, b.seq) })
	return out
}
