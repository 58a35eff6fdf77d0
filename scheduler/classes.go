package scheduler

import "slices"

// shapeClass holds the waiting sessions of a leaf whose smallest waiting
// task has one shape, in fair order. A fill looks only at the classes
// whose shape fits what the agent has free, merging them in fair order, so
// sessions that could not use the agent cost nothing.
type shapeClass struct {
	shape Resources
	h     minHeap[*session]
}

// reclass keeps s, while it is in its leaf's heap, in the class of its
// smallest waiting task and at its place in the fair order there; out of
// the heap, in none. Every change to a session's heap place or waiting
// tasks goes through here (requeue, requeueSession, unqueue, dropOffer).
func (c *Core) reclass(s *session) {
	shape, _ := s.smallest()
	if cl := s.class; cl != nil && (s.heapIdx < 0 || cl.shape != shape) {
		cl.h.remove(s.classIdx)
		s.class = nil
		if cl.h.len() == 0 {
			list := &c.classes[s.consumer.idx]
			*list = slices.DeleteFunc(*list, func(x *shapeClass) bool { return x == cl })
		}
	}
	switch {
	case s.heapIdx < 0:
	case s.class != nil:
		s.class.h.fix(s.classIdx)
	default:
		list := &c.classes[s.consumer.idx]
		i := slices.IndexFunc(*list, func(x *shapeClass) bool { return x.shape == shape })
		if i < 0 {
			i = len(*list)
			*list = append(*list, &shapeClass{shape: shape, h: minHeap[*session]{
				less:  c.sessionLess,
				setAt: func(s *session, i int) { s.classIdx = i },
			}})
		}
		s.class = (*list)[i]
		s.class.h.push(s)
	}
}

// walkFitting visits the waiting sessions of leaf n whose smallest task
// fits avail, in fair order, until visit returns false. The heaps must not
// change during the walk.
func (c *Core) walkFitting(n *consumer, avail Resources, visit func(*session) bool) {
	its := c.classIters[:0]
	for _, cl := range c.classes[n.idx] {
		if cl.shape.Fits(avail) {
			var buf []int
			if k := len(its); k < len(c.iterBufs) {
				buf = c.iterBufs[k]
			}
			its = append(its, cl.h.iter(buf))
		}
	}
	defer func() {
		for k, it := range its {
			if k < len(c.iterBufs) {
				c.iterBufs[k] = it.f[:0]
			} else {
				c.iterBufs = append(c.iterBufs, it.f[:0])
			}
		}
		clear(its)
		c.classIters = its[:0]
	}()
	for {
		best := -1
		var s *session
		for k := range its {
			if x, ok := its[k].peek(); ok && (best < 0 || c.sessionLess(x, s)) {
				best, s = k, x
			}
		}
		if best < 0 {
			return
		}
		its[best].next()
		if !visit(s) {
			return
		}
	}
}

// checkClasses checks that every waiting session of leaf n is in the
// class of its smallest waiting task, and nothing else is.
func (c *Core) checkClasses(n *consumer) bool {
	in := 0
	for _, cl := range c.classes[n.idx] {
		if cl.h.len() == 0 {
			return false
		}
		for i, s := range cl.h.items {
			shape, _ := s.smallest()
			if s.class != cl || s.classIdx != i || shape != cl.shape || s.heapIdx < 0 || s.consumer != n {
				return false
			}
		}
		in += cl.h.len()
	}
	return in == c.sheaps[n.idx].len()
}
