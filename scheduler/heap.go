package scheduler

// minHeap is a binary heap that tells its items where they are, so that an
// item whose key changed can be fixed in place.
type minHeap[T any] struct {
	items []T
	less  func(a, b T) bool
	setAt func(x T, i int) // i is -1 when x leaves the heap
}

func (h *minHeap[T]) len() int { return len(h.items) }

func (h *minHeap[T]) push(x T) {
	h.items = append(h.items, x)
	h.setAt(x, len(h.items)-1)
	h.up(len(h.items) - 1)
}

func (h *minHeap[T]) pop() T {
	x := h.items[0]
	h.remove(0)
	return x
}

func (h *minHeap[T]) peek() T { return h.items[0] }

func (h *minHeap[T]) remove(i int) {
	n := len(h.items) - 1
	x := h.items[i]
	if i != n {
		h.swap(i, n)
	}
	var zero T
	h.items[n] = zero
	h.items = h.items[:n]
	h.setAt(x, -1)
	if i != n {
		h.fix(i)
	}
}

func (h *minHeap[T]) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h *minHeap[T]) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.setAt(h.items[i], i)
	h.setAt(h.items[j], j)
}

func (h *minHeap[T]) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(h.items[j], h.items[i]) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

func (h *minHeap[T]) down(i0 int) bool {
	i, n := i0, len(h.items)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && h.less(h.items[r], h.items[j]) {
			j = r
		}
		if !h.less(h.items[j], h.items[i]) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}

// walk visits the items in key order, smallest first, until visit returns
// false, without changing the heap (see iter). scratch is the frontier's
// storage, kept between walks.
func (h *minHeap[T]) walk(scratch *[]int, visit func(T) bool) {
	it := h.iter(*scratch)
	defer func() { *scratch = it.f[:0] }()
	for x, ok := it.next(); ok; x, ok = it.next() {
		if !visit(x) {
			return
		}
	}
}

// heapIter yields a heap's items in key order without changing it: a
// frontier of the items whose parents were yielded, itself a small heap of
// positions, gives the next one. k items cost O(k log k). The heap must not
// change while it is iterated.
type heapIter[T any] struct {
	h *minHeap[T]
	f []int
}

// iter starts an iteration; f is storage for the frontier.
func (h *minHeap[T]) iter(f []int) heapIter[T] {
	f = f[:0]
	if len(h.items) > 0 {
		f = append(f, 0)
	}
	return heapIter[T]{h: h, f: f}
}

func (it *heapIter[T]) less(i, j int) bool { return it.h.less(it.h.items[i], it.h.items[j]) }

// peek is the next item, without moving on.
func (it *heapIter[T]) peek() (T, bool) {
	if len(it.f) == 0 {
		var zero T
		return zero, false
	}
	return it.h.items[it.f[0]], true
}

// next yields the next item.
func (it *heapIter[T]) next() (T, bool) {
	if len(it.f) == 0 {
		var zero T
		return zero, false
	}
	f := it.f
	top := f[0]
	// Pop the frontier's least position.
	n := len(f) - 1
	f[0] = f[n]
	f = f[:n]
	for i := 0; ; {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && it.less(f[r], f[j]) {
			j = r
		}
		if !it.less(f[j], f[i]) {
			break
		}
		f[i], f[j] = f[j], f[i]
		i = j
	}
	// Its children may come next.
	for _, ch := range [2]int{2*top + 1, 2*top + 2} {
		if ch >= len(it.h.items) {
			break
		}
		f = append(f, ch)
		for j := len(f) - 1; j > 0; {
			i := (j - 1) / 2
			if !it.less(f[j], f[i]) {
				break
			}
			f[i], f[j] = f[j], f[i]
			j = i
		}
	}
	it.f = f
	return it.h.items[top], true
}
