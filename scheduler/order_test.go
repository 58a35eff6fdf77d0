package scheduler

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBusyOrder checks the busy order's walks against a sort of every
// agent as byBusy sorts them: the agents that hold a vector (and grew
// since an epoch), busiest or emptiest first, from the start or after any
// of them, as the free index and the cluster's total change, a few agents
// or many at a time.
func TestBusyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var x agentIndex
	var o busyOrder
	agents := 0
	total := Resources{40, 40, 40, 40, 40}
	random := func() Resources { return randomVector(rng, 6) } // few values: many equal shares
	for step := range 2000 {
		moves := 1 + rng.IntN(3)
		if rng.IntN(50) == 0 {
			moves = 40 // more than an eighth: sorted again
		}
		for range moves {
			i := rng.IntN(agents + 1)
			if i == agents {
				agents++
			}
			x.set(i, random(), false)
			o.touch(int32(i))
		}
		if rng.IntN(40) == 0 {
			total[rng.IntN(int(NumKinds))] += 10
		}
		o.sync(&x, agents, total)
		if err := o.check(&x, total); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		want := random().Min(Resources{3, 3, 3, 3, 3})
		since := uint64(rng.IntN(int(x.epoch) + 1))
		for _, emptiest := range []bool{false, true} {
			var sorted []int32
			for i := range int32(agents) {
				if v := x.at(int(i)); v != none && want.Fits(v) && (since == 0 || x.grewAt(int(i)) > since) {
					sorted = append(sorted, i)
				}
			}
			slices.SortFunc(sorted, func(a, b int32) int {
				sa, sb := x.at(int(a)).Share(total), x.at(int(b)).Share(total)
				if emptiest {
					sa, sb = sb, sa
				}
				switch {
				case sa < sb:
					return -1
				case sa > sb:
					return 1
				}
				return int(a - b)
			})
			walk := func(after *orderKey, stop int) []int32 {
				var got []int32
				o.each(after, emptiest, want, since, func(i int32) bool {
					got = append(got, i)
					return len(got) < stop
				})
				return got
			}
			if diff := cmp.Diff(sorted, walk(nil, agents+1)); diff != "" {
				t.Fatalf("step %d: agents holding %v grown after %d, emptiest %v (-sort +order):\n%s", step, want, since, emptiest, diff)
			}
			if len(sorted) < 2 {
				continue
			}
			j := rng.IntN(len(sorted) - 1)
			after := o.key(sorted[j])
			if diff := cmp.Diff(sorted[j+1:], walk(&after, agents+1)); diff != "" {
				t.Fatalf("step %d: after agent %d, emptiest %v (-sort +order):\n%s", step, sorted[j], emptiest, diff)
			}
			if diff := cmp.Diff(sorted[:2], walk(nil, 2)); diff != "" {
				t.Fatalf("step %d: a walk stopped after two, emptiest %v (-want +got):\n%s", step, emptiest, diff)
			}
		}
	}
}
