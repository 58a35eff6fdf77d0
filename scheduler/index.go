package scheduler

import "fmt"

// agentIndex finds the agents whose vector holds a given one without
// looking at every agent: a complete binary tree over the agents in index
// order, each node holding the componentwise maximum of its subtree, so a
// search skips every subtree whose maximum lacks some dimension of what it
// looks for. Each node also holds when a vector in its subtree last grew,
// so a search can skip the agents that did not grow since a given epoch.
// An update costs O(log agents); a search costs O(log agents) per agent it
// finds, and little more where nothing fits.
type agentIndex struct {
	size  int         // leaves: a power of two at least the agents
	max   []Resources // max[1] is the root; leaf i is max[size+i]
	grew  []uint64    // the latest growth epoch in the subtree
	epoch uint64      // growths so far
}

// none is the vector of an agent that can take nothing (lost, unhealthy,
// or a slot not in use): no request fits it, not even an empty one.
var none = func() Resources {
	var r Resources
	for k := range r {
		r[k] = -1
	}
	return r
}()

// reindex records what agent a can give: its free resources for new
// tasks, and those with its revocable tasks for reclaim. changed says that
// more than the vectors changed (attributes, devices), which counts as
// growth for reclaim's memo.
func (c *Core) reindex(a *agent, changed bool) {
	free, room := none, none
	if !a.lost && !a.unhealthy {
		free = c.avail(a)
		room = free.Add(a.revocable)
	}
	c.freeIdx.set(int(a.idx), free, false)
	c.roomIdx.set(int(a.idx), room, changed)
	c.order.touch(a.idx)
}

// checkIndex checks that the indexes hold what agent a can give, and that
// every node on the way to the root holds its children's maximum.
func (c *Core) checkIndex(a *agent) error {
	free, room := none, none
	if !a.lost && !a.unhealthy {
		free = c.avail(a)
		room = free.Add(a.revocable)
	}
	for _, x := range []struct {
		name string
		idx  *agentIndex
		want Resources
	}{{"free", &c.freeIdx, free}, {"room", &c.roomIdx, room}} {
		j := x.idx.size + int(a.idx)
		if int(a.idx) >= x.idx.size || x.idx.max[j] != x.want {
			return fmt.Errorf("agent %s is not in the %s index as %v", a.spec.ID, x.name, x.want)
		}
		for j > 1 {
			j /= 2
			if x.idx.max[j] != x.idx.max[2*j].Max(x.idx.max[2*j+1]) || x.idx.grew[j] != max(x.idx.grew[2*j], x.idx.grew[2*j+1]) {
				return fmt.Errorf("the %s index above agent %s is stale", x.name, a.spec.ID)
			}
		}
	}
	return nil
}

// set records agent i's vector, growing the tree as needed. A vector
// larger in some dimension than before, or a forced one, is a growth.
func (x *agentIndex) set(i int, v Resources, force bool) {
	if i >= x.size {
		x.grow(i + 1)
	}
	j := x.size + i
	old := x.max[j]
	grew := force || !v.Fits(old)
	if old == v && !grew {
		return
	}
	x.max[j] = v
	if grew {
		x.epoch++
		x.grew[j] = x.epoch
	}
	for j > 1 {
		j /= 2
		m, g := x.max[2*j].Max(x.max[2*j+1]), max(x.grew[2*j], x.grew[2*j+1])
		if x.max[j] == m && x.grew[j] == g {
			return
		}
		x.max[j], x.grew[j] = m, g
	}
}

// restoreGrowth sets when agent i last grew, for a restore.
func (x *agentIndex) restoreGrowth(i int, at uint64) {
	j := x.size + i
	x.grew[j] = at
	for j > 1 {
		j /= 2
		x.grew[j] = max(x.grew[2*j], x.grew[2*j+1])
	}
}

// at is agent i's vector.
func (x *agentIndex) at(i int) Resources { return x.max[x.size+i] }

// grewAt is when agent i's vector last grew.
func (x *agentIndex) grewAt(i int) uint64 { return x.grew[x.size+i] }

func (x *agentIndex) grow(n int) {
	size := max(x.size, 1)
	for size < n {
		size *= 2
	}
	oldMax, oldGrew := x.max, x.grew
	x.max, x.grew = make([]Resources, 2*size), make([]uint64, 2*size)
	for i := range x.max[size:] {
		x.max[size+i] = none
	}
	if x.size > 0 {
		copy(x.max[size:], oldMax[x.size:])
		copy(x.grew[size:], oldGrew[x.size:])
	}
	x.size = size
	for j := size - 1; j >= 1; j-- {
		x.max[j] = x.max[2*j].Max(x.max[2*j+1])
		x.grew[j] = max(x.grew[2*j], x.grew[2*j+1])
	}
}

// each visits, in index order, the agents whose vector holds r and grew
// after epoch since (0: all), until visit returns false. The index must
// not change during the search.
func (x *agentIndex) each(r Resources, since uint64, visit func(i int) bool) {
	x.eachFrom(r, since, 0, visit)
}

// eachFrom is each starting at agent from and wrapping around.
func (x *agentIndex) eachFrom(r Resources, since uint64, from int, visit func(i int) bool) {
	if x.size > 0 && x.search(1, 0, x.size, from, x.size, r, since, visit) && from > 0 {
		x.search(1, 0, x.size, 0, from, r, since, visit)
	}
}

// search visits the agents in [lo, hi) under node j, which covers [l, r).
func (x *agentIndex) search(j, l, r, lo, hi int, want Resources, since uint64, visit func(i int) bool) bool {
	if r <= lo || l >= hi || x.grew[j] <= since && since > 0 || !want.Fits(x.max[j]) {
		return true
	}
	if j >= x.size {
		return visit(l)
	}
	m := (l + r) / 2
	return x.search(2*j, l, m, lo, hi, want, since, visit) && x.search(2*j+1, m, r, lo, hi, want, since, visit)
}
