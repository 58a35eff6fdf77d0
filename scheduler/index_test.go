package scheduler

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAgentIndex checks the index's searches against a scan of every
// agent: which agents hold a vector, which grew since an epoch, in order
// from any starting point.
func TestAgentIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var x agentIndex
	vecs := []Resources{}
	grew := []uint64{}
	random := func() Resources { return randomVector(rng, 8) }
	for step := range 3000 {
		i := rng.IntN(len(vecs) + 1)
		v := random()
		if i == len(vecs) {
			vecs, grew = append(vecs, none), append(grew, 0)
		}
		force := rng.IntN(20) == 0
		if force || !v.Fits(vecs[i]) {
			grew[i] = x.epoch + 1
		}
		x.set(i, v, force)
		vecs[i] = v
		if x.grewAt(i) != grew[i] {
			t.Fatalf("step %d: agent %d grew at %d, want %d", step, i, x.grewAt(i), grew[i])
		}
		want := random().Min(Resources{3, 3, 3, 3, 3})
		since := uint64(rng.IntN(int(x.epoch) + 1))
		from := rng.IntN(len(vecs))
		var scan, got []int
		for k := range vecs {
			j := (from + k) % len(vecs)
			if want.Fits(vecs[j]) && (since == 0 || grew[j] > since) {
				scan = append(scan, j)
			}
		}
		x.eachFrom(want, since, from, func(i int) bool { got = append(got, i); return true })
		if diff := cmp.Diff(scan, got); diff != "" {
			t.Fatalf("step %d: agents holding %v grown after %d from %d (-scan +index):\n%s", step, want, since, from, diff)
		}
		if len(scan) > 1 {
			got = got[:0]
			x.eachFrom(want, since, from, func(i int) bool { got = append(got, i); return len(got) < 2 })
			if diff := cmp.Diff(scan[:2], got); diff != "" {
				t.Fatalf("step %d: a search stopped after two (-want +got):\n%s", step, diff)
			}
		}
	}
}

// randomVector is a vector of values below n, or one time in ten none.
func randomVector(rng *rand.Rand, n int64) Resources {
	var r Resources
	for k := range r {
		r[k] = rng.Int64N(n)
	}
	if rng.IntN(10) == 0 {
		return none
	}
	return r
}
