package scheduler

import (
	"fmt"
	"math"
	"slices"
)

// busyOrder keeps the agents in the order serve takes them in: by the
// dominant share of what they can give (their vector in the free index,
// as a share of the cluster's total; see byBusy), then by index. It is a
// treap keyed so; each node also holds the componentwise maximum of the
// free vectors in its subtree and the latest growth epoch there, so a
// walk skips the subtrees where nothing holds a shape or nothing grew, as
// the free index's search does. A session of one task then finds the
// agent it goes to in O(log agents), not by sorting every agent that
// fits.
//
// It follows the free index lazily: reindex marks an agent stale, and
// sync, which serve calls first, moves the stale agents to their new
// places; when the cluster's total changed since, every share did, and
// sync sorts the agents again, as it does when many moved. Between syncs it does not change, which is
// what serve needs: the agents in their order when it began, however its
// placements change them.
type busyOrder struct {
	nodes []orderNode // by agent index
	root  int32       // -1: empty
	stale []int32     // agents touched since the last sync
	total Resources   // the total the shares are of
	built bool
	buf   []int32
}

type orderNode struct {
	share       float64   // of free in the total: the key, with the index
	free        Resources // the agent's vector in the free index at the sync
	grew        uint64    // when that vector last grew
	max         Resources // the componentwise maximum of free in the subtree
	maxGrew     uint64    // the latest grew in the subtree
	left, right int32
	in          bool // in the tree: none (lost, unhealthy) is left out
	stale       bool
}

// orderKey is an agent's place in the order. Bounds use idx -1 and
// math.MaxInt32 to take in or leave out every agent of a share.
type orderKey struct {
	share float64
	idx   int32
}

var (
	firstKey = orderKey{math.Inf(-1), -1}
	lastKey  = orderKey{math.Inf(1), math.MaxInt32}
)

func (k orderKey) less(o orderKey) bool {
	if k.share != o.share {
		return k.share < o.share
	}
	return k.idx < o.idx
}

func (o *busyOrder) key(i int32) orderKey { return orderKey{o.nodes[i].share, i} }

// prio is the treap's heap key: a fixed mix of the index, so that the
// same agents make the same tree.
func prio(i int32) uint32 {
	x := uint32(i) * 0x9e3779b1
	x ^= x >> 15
	x *= 0x85ebca77
	return x ^ x>>13
}

// touch marks agent i's free vector as changed.
func (o *busyOrder) touch(i int32) {
	if int(i) >= len(o.nodes) {
		o.nodes = append(o.nodes, make([]orderNode, int(i)+1-len(o.nodes))...)
	}
	if n := &o.nodes[i]; !n.stale {
		n.stale = true
		o.stale = append(o.stale, i)
	}
}

// sync brings the order up to the free index x of agents agents, with
// shares of total.
func (o *busyOrder) sync(x *agentIndex, agents int, total Resources) {
	// Moving an agent costs some O(log agents) steps more than sorting
	// it does: when many moved, sort them all.
	if !o.built || total != o.total || len(o.stale) > agents/8 {
		o.rebuild(x, agents, total)
		return
	}
	for _, i := range o.stale {
		n := &o.nodes[i]
		n.stale = false
		if n.in && n.free == x.at(int(i)) && n.grew == x.grewAt(int(i)) {
			continue
		}
		if n.in {
			o.root = o.remove(o.root, i)
		}
		o.load(x, i)
		if n.in {
			o.root = o.insert(o.root, i)
		}
	}
	o.stale = o.stale[:0]
}

// load reads agent i's node from the free index, out of the tree.
func (o *busyOrder) load(x *agentIndex, i int32) {
	n := &o.nodes[i]
	n.free, n.grew = x.at(int(i)), x.grewAt(int(i))
	n.share = n.free.Share(o.total)
	n.in = n.free != none
	n.left, n.right = -1, -1
	n.max, n.maxGrew = n.free, n.grew
}

// rebuild sorts every agent again and builds the tree at once: the
// Cartesian tree of the sorted agents by prio, made with a stack.
func (o *busyOrder) rebuild(x *agentIndex, agents int, total Resources) {
	if len(o.nodes) < agents {
		o.nodes = append(o.nodes, make([]orderNode, agents-len(o.nodes))...)
	}
	o.total, o.built = total, true
	ids := o.buf[:0]
	for i := range int32(agents) {
		o.nodes[i].stale = false
		o.load(x, i)
		if o.nodes[i].in {
			ids = append(ids, i)
		}
	}
	o.stale = o.stale[:0]
	slices.SortFunc(ids, func(a, b int32) int {
		switch ka, kb := o.key(a), o.key(b); {
		case ka.less(kb):
			return -1
		case kb.less(ka):
			return 1
		}
		return 0
	})
	stack := ids[:0] // never longer than the part of ids already read
	for _, i := range ids {
		last := int32(-1)
		for len(stack) > 0 && prio(stack[len(stack)-1]) < prio(i) {
			last = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			o.pull(last)
		}
		o.nodes[i].left = last
		if len(stack) > 0 {
			o.nodes[stack[len(stack)-1]].right = i
		}
		stack = append(stack, i)
	}
	for j := len(stack) - 1; j >= 0; j-- {
		o.pull(stack[j])
	}
	o.root = -1
	if len(stack) > 0 {
		o.root = stack[0]
	}
	o.buf = ids[:0]
}

// pull recomputes node t's maxima from its own vector and its children's.
func (o *busyOrder) pull(t int32) {
	n := &o.nodes[t]
	m, g := n.free, n.grew
	if n.left >= 0 {
		l := &o.nodes[n.left]
		m, g = m.Max(l.max), max(g, l.maxGrew)
	}
	if n.right >= 0 {
		r := &o.nodes[n.right]
		m, g = m.Max(r.max), max(g, r.maxGrew)
	}
	n.max, n.maxGrew = m, g
}

// split cuts tree t into the agents before k and the rest.
func (o *busyOrder) split(t int32, k orderKey) (int32, int32) {
	if t < 0 {
		return -1, -1
	}
	n := &o.nodes[t]
	if o.key(t).less(k) {
		l, r := o.split(n.right, k)
		n.right = l
		o.pull(t)
		return t, r
	}
	l, r := o.split(n.left, k)
	n.left = r
	o.pull(t)
	return l, t
}

// merge joins trees a and b, every agent of a before every one of b.
func (o *busyOrder) merge(a, b int32) int32 {
	switch {
	case a < 0:
		return b
	case b < 0:
		return a
	case prio(a) > prio(b):
		o.nodes[a].right = o.merge(o.nodes[a].right, b)
		o.pull(a)
		return a
	}
	o.nodes[b].left = o.merge(a, o.nodes[b].left)
	o.pull(b)
	return b
}

// insert puts agent i, out of the tree, into tree t and returns the tree.
func (o *busyOrder) insert(t, i int32) int32 {
	if t < 0 {
		return i
	}
	if prio(i) > prio(t) {
		n := &o.nodes[i]
		n.left, n.right = o.split(t, o.key(i))
		o.pull(i)
		return i
	}
	n, in := &o.nodes[t], &o.nodes[i]
	if o.key(i).less(o.key(t)) {
		n.left = o.insert(n.left, i)
	} else {
		n.right = o.insert(n.right, i)
	}
	n.max, n.maxGrew = n.max.Max(in.free), max(n.maxGrew, in.grew)
	return t
}

// remove takes agent i out of tree t and returns the tree.
func (o *busyOrder) remove(t, i int32) int32 {
	n := &o.nodes[t]
	if t == i {
		l, r := n.left, n.right
		n.left, n.right = -1, -1
		return o.merge(l, r)
	}
	if o.key(i).less(o.key(t)) {
		n.left = o.remove(n.left, i)
	} else {
		n.right = o.remove(n.right, i)
	}
	o.pull(t)
	return t
}

// each visits the agents whose free vector holds want and grew after
// epoch since (0: any), in serve's order, until visit returns false:
// busiest first, by share and then index, or with emptiest, by share from
// the largest and then index. With after, it begins after that key.
func (o *busyOrder) each(after *orderKey, emptiest bool, want Resources, since uint64, visit func(int32) bool) {
	if !emptiest {
		lo := firstKey
		if after != nil {
			lo = orderKey{after.share, after.idx + 1}
		}
		o.walk(o.root, lo, lastKey, want, since, false, visit)
		return
	}
	// The agents of one share, by index, then those of the next lower
	// share that has one.
	share := math.Inf(1)
	if after != nil {
		share = after.share
		if !o.walk(o.root, orderKey{share, after.idx + 1}, orderKey{share, math.MaxInt32}, want, since, false, visit) {
			return
		}
	}
	for {
		below := int32(-1)
		o.walk(o.root, firstKey, orderKey{share, -1}, want, since, true, func(i int32) bool {
			below = i
			return false
		})
		if below < 0 {
			return
		}
		share = o.nodes[below].share
		if !o.walk(o.root, orderKey{share, -1}, orderKey{share, math.MaxInt32}, want, since, false, visit) {
			return
		}
	}
}

// walk visits the agents of tree t in [lo, hi], in order or in reverse,
// whose free vector holds want and grew after since, until visit returns
// false; it reports whether the walk went on to the end.
func (o *busyOrder) walk(t int32, lo, hi orderKey, want Resources, since uint64, desc bool, visit func(int32) bool) bool {
	if t < 0 {
		return true
	}
	n := &o.nodes[t]
	if !want.Fits(n.max) || since > 0 && n.maxGrew <= since {
		return true
	}
	k := o.key(t)
	before, after := lo.less(k), k.less(hi) // the subtrees may hold agents in range
	self := !k.less(lo) && !hi.less(k) && want.Fits(n.free) && (since == 0 || n.grew > since)
	near, far, nearOK, farOK := n.left, n.right, before, after
	if desc {
		near, far, nearOK, farOK = far, near, farOK, nearOK
	}
	if nearOK && !o.walk(near, lo, hi, want, since, desc, visit) {
		return false
	}
	if self && !visit(t) {
		return false
	}
	return !farOK || o.walk(far, lo, hi, want, since, desc, visit)
}

// check checks the tree: agents in key order, parents before children by
// prio, maxima that hold their subtrees', and, for the agents not touched
// since the last sync, the free index's vectors and shares of total.
func (o *busyOrder) check(x *agentIndex, total Resources) error {
	if !o.built {
		return nil
	}
	var prev int32 = -1
	seen := 0
	var walk func(t int32) (Resources, uint64, error)
	walk = func(t int32) (Resources, uint64, error) {
		if t < 0 {
			return none, 0, nil
		}
		n := &o.nodes[t]
		lmax, lgrew, err := walk(n.left)
		if err != nil {
			return lmax, lgrew, err
		}
		if prev >= 0 && !o.key(prev).less(o.key(t)) {
			return none, 0, fmt.Errorf("busy order: agent %d after agent %d", t, prev)
		}
		prev = t
		seen++
		rmax, rgrew, err := walk(n.right)
		if err != nil {
			return rmax, rgrew, err
		}
		for _, ch := range [2]int32{n.left, n.right} {
			if ch >= 0 && prio(ch) > prio(t) {
				return none, 0, fmt.Errorf("busy order: agent %d above its parent %d", ch, t)
			}
		}
		if !n.in || n.max != n.free.Max(lmax).Max(rmax) || n.maxGrew != max(n.grew, lgrew, rgrew) {
			return none, 0, fmt.Errorf("busy order: the maxima at agent %d are stale", t)
		}
		if !n.stale && total == o.total && (n.free != x.at(int(t)) || n.grew != x.grewAt(int(t)) || n.share != n.free.Share(total)) {
			return none, 0, fmt.Errorf("busy order: agent %d is out of date", t)
		}
		return n.max, n.maxGrew, nil
	}
	if _, _, err := walk(o.root); err != nil {
		return err
	}
	for i := range o.nodes {
		n := &o.nodes[i]
		if n.in {
			seen--
		}
		if !n.stale && total == o.total && i < x.size && n.in != (x.at(i) != none) {
			return fmt.Errorf("busy order: agent %d is in it %v, has free %v", i, n.in, x.at(i))
		}
	}
	if seen != 0 {
		return fmt.Errorf("busy order: %d agents more in the tree than marked in it", seen)
	}
	return nil
}
