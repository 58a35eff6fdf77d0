package scheduler

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// consumer is a node of the consumer tree.
type consumer struct {
	spec     ConsumerSpec
	idx      int // position in tree.nodes
	parent   *consumer
	children []*consumer
	depth    int

	// Accounting, for the subtree: what its tasks hold, and the part of
	// that held within owned shares (not revocable).
	alloc    Resources
	owned    Resources // held on owned resources
	pending  Resources // what the pending tasks ask for
	deserved Resources
	sessions int // live sessions under a leaf

	// Being taken back for this leaf: noticed tasks not yet killed.
	reclaiming Resources
	preempting Resources
	// victimTop is, while preempting, at least the highest priority of
	// the tasks noticed for it (see withdraw).
	victimTop int
	wmemo     withdrawMemo
	limitHit  bool // a task was refused for this consumer's limit
	// The last reclaim and preemption rounds for this leaf that took
	// nothing.
	memo [2]reclaimMemo
	// demandSeq counts the times the leaf's demand grew: new tasks,
	// failed ones to run again, a session revived.
	demandSeq uint64

	// heapIdx is the leaf's place in Core.leaves, ordered by leafKey.
	heapIdx int
	// fillMiss is the fill in which none of the leaf's sessions took
	// anything.
	fillMiss uint64
}

func (c *consumer) leaf() bool { return len(c.children) == 0 }

func (c *consumer) weight() float64 {
	if c.spec.Weight <= 0 {
		return 1
	}
	return c.spec.Weight
}

// demand is what the subtree could use: what it holds and what it waits
// for, within its limit.
func (c *consumer) demand() Resources {
	d := c.alloc.Add(c.pending)
	return capLimit(d, c.spec.Limit)
}

// capLimit caps r by limit's non-zero dimensions.
func capLimit(r, limit Resources) Resources {
	for k := range r {
		if limit[k] > 0 {
			r[k] = min(r[k], limit[k])
		}
	}
	return r
}

// overLimit reports whether r exceeds one of limit's non-zero dimensions.
func overLimit(r, limit Resources) bool {
	for k := range r {
		if limit[k] > 0 && r[k] > limit[k] {
			return true
		}
	}
	return false
}

// tree is the consumer tree. The root is implicit: nodes with no parent
// are its children.
type tree struct {
	nodes  []*consumer
	byName map[string]*consumer
	roots  []*consumer
	noLend []*consumer // consumers that keep their idle owned resources
}

// newTree checks the specs and builds the tree: names unique and not
// empty, parents known, no cycles, weights and resources not negative,
// owned within limit, and the children's owned shares within their
// parent's owned share when the parent has one.
func newTree(specs []ConsumerSpec) (*tree, error) {
	t := &tree{byName: make(map[string]*consumer, len(specs))}
	for i, s := range specs {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("consumer %d: name is empty", i+1)
		case strings.ContainsAny(s.Name, " \t\n"):
			return nil, fmt.Errorf("consumer %q: name has white space", s.Name)
		case t.byName[s.Name] != nil:
			return nil, fmt.Errorf("consumer %q is defined twice", s.Name)
		case s.Weight < 0 || math.IsNaN(s.Weight) || math.IsInf(s.Weight, 0):
			return nil, fmt.Errorf("consumer %q: weight %v is not a positive number", s.Name, s.Weight)
		case s.Owned.Negative():
			return nil, fmt.Errorf("consumer %q: owned resources %v are negative", s.Name, s.Owned)
		case s.Limit.Negative():
			return nil, fmt.Errorf("consumer %q: limit %v is negative", s.Name, s.Limit)
		case overLimit(s.Owned, s.Limit):
			return nil, fmt.Errorf("consumer %q: owned %v is above its limit %v", s.Name, s.Owned, s.Limit)
		case s.Grace < 0:
			return nil, fmt.Errorf("consumer %q: grace period %v is negative", s.Name, s.Grace)
		}
		c := &consumer{spec: s, idx: i, heapIdx: -1}
		t.nodes = append(t.nodes, c)
		if s.NoLend && s.Owned.Any() {
			t.noLend = append(t.noLend, c)
		}
		t.byName[s.Name] = c
	}
	for _, c := range t.nodes {
		if c.spec.Parent == "" {
			t.roots = append(t.roots, c)
			continue
		}
		p := t.byName[c.spec.Parent]
		if p == nil {
			return nil, fmt.Errorf("consumer %q: parent %q is not defined", c.spec.Name, c.spec.Parent)
		}
		c.parent = p
		p.children = append(p.children, c)
	}
	// Every node must reach the root; a cycle never does.
	for _, c := range t.nodes {
		seen := 0
		for p := c.parent; p != nil; p = p.parent {
			if seen++; seen > len(t.nodes) || p == c {
				return nil, fmt.Errorf("consumer %q: its parents form a cycle", c.spec.Name)
			}
			c.depth++
		}
	}
	for _, c := range t.nodes {
		if c.leaf() || !c.spec.Owned.Any() {
			continue
		}
		var sum Resources
		for _, ch := range c.children {
			sum = sum.Add(ch.spec.Owned)
		}
		if !sum.Fits(c.spec.Owned) {
			return nil, fmt.Errorf("consumer %q: its children own more than it does: %s (the children %v, its own %v)",
				c.spec.Name, exceeding(sum, c.spec.Owned), sum, c.spec.Owned)
		}
	}
	return t, nil
}

// exceeding names the dimensions in which r is above o: "gpu 2 > 1".
func exceeding(r, o Resources) string {
	var parts []string
	for k := range r {
		if r[k] > o[k] {
			var a Resources
			a[k] = r[k]
			name, v, _ := strings.Cut(a.String(), "=")
			parts = append(parts, name+" "+v+" > "+valueOf(o, Kind(k)))
		}
	}
	return strings.Join(parts, ", ")
}

// valueOf is dimension k of r as Resources.String writes it, without the
// name: "1", "2GiB", "0".
func valueOf(r Resources, k Kind) string {
	var only Resources
	only[k] = r[k]
	if only[k] == 0 {
		return "0"
	}
	_, v, _ := strings.Cut(only.String(), "=")
	return v
}

// computeDeserved sets every node's deserved share of total: at each level
// each child first gets its owned share (up to its demand), then the rest
// is split by weighted dominant-resource fairness (progressive filling),
// each child capped by its limit and its demand. A subtree that wants less
// than it could have leaves the rest to its siblings.
func (t *tree) computeDeserved(total Resources) {
	// Demand bottom-up: nodes are not in tree order, so go deepest first.
	order := slices.Clone(t.nodes)
	slices.SortStableFunc(order, func(a, b *consumer) int { return b.depth - a.depth })
	dem := make([]Resources, len(t.nodes))
	for _, c := range order {
		if c.leaf() {
			dem[c.idx] = c.demand()
			continue
		}
		var sum Resources
		for _, ch := range c.children {
			sum = sum.Add(dem[ch.idx])
		}
		dem[c.idx] = capLimit(sum, c.spec.Limit)
	}
	divide(t.roots, total, dem)
}

// divide splits amount among siblings and recurses. The owned shares of
// consumers that do not lend are set aside in full.
func divide(children []*consumer, amount Resources, dem []Resources) {
	if len(children) == 0 {
		return
	}
	got := make([]Resources, len(children))
	// Owned first, within demand. If the owned shares are more than
	// there is (agents were lost), each gets the same fraction of its
	// owned share.
	var want Resources
	for i, c := range children {
		// A consumer that does not lend keeps its owned resources
		// whether it uses them or not.
		got[i] = c.spec.Owned
		if !c.spec.NoLend {
			got[i] = got[i].Min(dem[c.idx])
		}
		want = want.Add(got[i])
	}
	for k := range want {
		if want[k] > amount[k] && want[k] > 0 {
			for i := range got {
				got[i][k] = got[i][k] * amount[k] / want[k]
			}
		}
	}
	left := amount
	for i := range got {
		left = left.Sub(got[i])
	}
	fill(children, got, left.Clamp(), dem)
	for i, c := range children {
		c.deserved = got[i]
		divide(c.children, got[i], dem)
	}
}

// fill is weighted progressive filling: every child with unmet demand
// grows along its demand vector so that its dominant share of the extra
// grows at a rate proportional to its weight, until its demand is met or
// a resource it needs runs out.
func fill(children []*consumer, got []Resources, left Resources, dem []Resources) {
	n := len(children)
	need := make([][NumKinds]float64, n)
	active := make([]bool, n)
	var pool [NumKinds]float64
	for k := range pool {
		pool[k] = float64(left[k])
	}
	// A child's rate vector: its remaining demand scaled so that the
	// dominant dimension (against the pool at the start) grows by its
	// weight per unit of t.
	rate := make([][NumKinds]float64, n)
	for i, c := range children {
		rem := dem[c.idx].Sub(got[i]).Clamp()
		dom := 0.0
		for k := range rem {
			need[i][k] = float64(rem[k])
			if pool[k] > 0 {
				dom = max(dom, float64(rem[k])/pool[k])
			}
		}
		if dom == 0 {
			continue
		}
		active[i] = true
		for k := range rem {
			rate[i][k] = float64(rem[k]) / dom * c.weight()
		}
	}
	extra := make([][NumKinds]float64, n)
	for iter := 0; iter <= n+int(NumKinds); iter++ {
		// The largest step before a child's demand or a resource runs
		// out.
		step := math.Inf(1)
		var use [NumKinds]float64
		for i := range children {
			if !active[i] {
				continue
			}
			for k := range use {
				use[k] += rate[i][k]
				if rate[i][k] > 0 {
					step = min(step, (need[i][k]-extra[i][k])/rate[i][k])
				}
			}
		}
		for k := range use {
			if use[k] > 0 {
				step = min(step, pool[k]/use[k])
			}
		}
		if math.IsInf(step, 1) {
			break
		}
		step = max(step, 0)
		for k := range use {
			pool[k] -= step * use[k]
		}
		any := false
		for i := range children {
			if !active[i] {
				continue
			}
			done := false
			for k := range use {
				extra[i][k] += step * rate[i][k]
				if rate[i][k] > 0 && (extra[i][k] >= need[i][k]-1e-6 || pool[k] <= 1e-6*math.Max(1, float64(left[k]))) {
					done = true
				}
			}
			if done {
				active[i] = false
			} else {
				any = true
			}
		}
		if !any {
			break
		}
	}
	for i := range children {
		for k := range extra[i] {
			got[i][k] += int64(math.Floor(extra[i][k] + 1e-9))
		}
	}
}

// grace is the reclaim grace period of a consumer: its own, else its
// nearest ancestor's, else def.
func (c *consumer) grace(def time.Duration) time.Duration {
	for n := c; n != nil; n = n.parent {
		if n.spec.Grace > 0 {
			return n.spec.Grace
		}
	}
	return def
}
