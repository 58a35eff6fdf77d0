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
// false, without changing the heap: a frontier of the items whose parents
// were visited, itself a small heap of positions, yields the next one. It
// costs O(k log k) for k items visited. The heap must not change during the
// walk; scratch is the frontier's storage, kept between walks.
func (h *minHeap[T]) walk(scratch *[]int, visit func(T) bool) {
	if len(h.items) == 0 {
		return
	}
	less := func(i, j int) bool { return h.less(h.items[i], h.items[j]) }
	f := append((*scratch)[:0], 0)
	defer func() { *scratch = f[:0] }()
	for len(f) > 0 {
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
			if r := j + 1; r < n && less(f[r], f[j]) {
				j = r
			}
			if !less(f[j], f[i]) {
				break
			}
			f[i], f[j] = f[j], f[i]
			i = j
		}
		if !visit(h.items[top]) {
			return
		}
		// Its children may come next.
		for _, ch := range [2]int{2*top + 1, 2*top + 2} {
			if ch >= len(h.items) {
				break
			}
			f = append(f, ch)
			for j := len(f) - 1; j > 0; {
				i := (j - 1) / 2
				if !less(f[j], f[i]) {
					break
				}
				f[i], f[j] = f[j], f[i]
				j = i
			}
		}
	}
}
