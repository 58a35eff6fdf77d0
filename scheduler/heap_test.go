package scheduler

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type heapItem struct{ key, at int }

func TestHeapWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var scratch []int
	for n := range 60 {
		h := minHeap[*heapItem]{
			less:  func(a, b *heapItem) bool { return a.key < b.key },
			setAt: func(x *heapItem, i int) { x.at = i },
		}
		var keys []int
		for range n {
			k := rng.IntN(20) // duplicates on purpose
			keys = append(keys, k)
			h.push(&heapItem{key: k})
		}
		slices.Sort(keys)
		var got []int
		h.walk(&scratch, func(x *heapItem) bool { got = append(got, x.key); return true })
		if diff := cmp.Diff(keys, got); diff != "" {
			t.Fatalf("%d items: walk order (-want +got):\n%s", n, diff)
		}
		// A walk stopped early sees a prefix and leaves the heap whole.
		stop := n / 2
		got = got[:0]
		h.walk(&scratch, func(x *heapItem) bool { got = append(got, x.key); return len(got) < stop })
		if stop > 0 && !slices.Equal(got, keys[:stop]) {
			t.Fatalf("%d items: stopped walk saw %v, want %v", n, got, keys[:stop])
		}
		for i := range n {
			if h.pop().key != keys[i] {
				t.Fatalf("%d items: the heap changed during the walks", n)
			}
		}
	}
}
