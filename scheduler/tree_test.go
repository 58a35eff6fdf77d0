package scheduler

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func TestDeserved(t *testing.T) {
	cpu := func(n int64) Resources { return Res(n*1000, 0) }
	tests := []struct {
		name      string
		consumers []ConsumerSpec
		demand    map[string]Resources // pending per leaf
		total     Resources
		want      map[string]Resources
	}{{
		name:      "owned first, then equal weights share the rest",
		consumers: []ConsumerSpec{{Name: "a", Owned: cpu(6)}, {Name: "b", Owned: cpu(2)}},
		demand:    map[string]Resources{"a": cpu(100), "b": cpu(100)},
		total:     cpu(20),
		want:      map[string]Resources{"a": cpu(12), "b": cpu(8)},
	}, {
		name:      "weights split the remainder 3:1",
		consumers: []ConsumerSpec{{Name: "a", Weight: 3}, {Name: "b"}},
		demand:    map[string]Resources{"a": cpu(100), "b": cpu(100)},
		total:     cpu(20),
		want:      map[string]Resources{"a": cpu(15), "b": cpu(5)},
	}, {
		name:      "demand caps a share and the rest goes to the others",
		consumers: []ConsumerSpec{{Name: "a", Owned: cpu(10)}, {Name: "b"}, {Name: "c"}},
		demand:    map[string]Resources{"a": cpu(2), "b": cpu(100), "c": cpu(3)},
		total:     cpu(20),
		want:      map[string]Resources{"a": cpu(2), "b": cpu(15), "c": cpu(3)},
	}, {
		name:      "limit caps a share",
		consumers: []ConsumerSpec{{Name: "a", Limit: cpu(4)}, {Name: "b"}},
		demand:    map[string]Resources{"a": cpu(100), "b": cpu(100)},
		total:     cpu(20),
		want:      map[string]Resources{"a": cpu(4), "b": cpu(16)},
	}, {
		name: "hierarchy: the parent's share is split among its children",
		consumers: []ConsumerSpec{
			{Name: "bu1", Owned: cpu(10)}, {Name: "t1", Parent: "bu1", Owned: cpu(8)}, {Name: "t2", Parent: "bu1"},
			{Name: "bu2"},
		},
		demand: map[string]Resources{"t1": cpu(3), "t2": cpu(100), "bu2": cpu(100)},
		total:  cpu(30),
		want:   map[string]Resources{"bu1": cpu(20), "t1": cpu(3), "t2": cpu(17), "bu2": cpu(10)},
	}, {
		name:      "dominant resource fairness: equal dominant shares",
		consumers: []ConsumerSpec{{Name: "cpuheavy"}, {Name: "memheavy"}},
		// DRF's example: 9 cpus and 18 GiB; tasks of <1 cpu, 4 GiB>
		// and <3 cpus, 1 GiB> end at 3 and 2 tasks.
		demand: map[string]Resources{"memheavy": Res(100000, 400<<30), "cpuheavy": Res(300000, 100<<30)},
		total:  Res(9000, 18<<30),
		want:   map[string]Resources{"memheavy": Res(3000, 12<<30), "cpuheavy": Res(6000, 2<<30)},
	}, {
		name:      "owned above what is left is scaled down",
		consumers: []ConsumerSpec{{Name: "a", Owned: cpu(8)}, {Name: "b", Owned: cpu(8)}},
		demand:    map[string]Resources{"a": cpu(100), "b": cpu(100)},
		total:     cpu(8),
		want:      map[string]Resources{"a": cpu(4), "b": cpu(4)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := newTree(tt.consumers)
			if err != nil {
				t.Fatal(err)
			}
			for name, d := range tt.demand {
				tr.byName[name].pending = d
				for p := tr.byName[name].parent; p != nil; p = p.parent {
					p.pending = p.pending.Add(d)
				}
			}
			tr.computeDeserved(tt.total)
			got := map[string]Resources{}
			for name := range tt.want {
				got[name] = tr.byName[name].deserved
			}
			// Progressive filling works in floating point: allow a
			// rounding unit per dimension.
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b Resources) bool {
				for k := range a {
					if d := a[k] - b[k]; d > 1 || d < -1 {
						return false
					}
				}
				return true
			})); diff != "" {
				t.Errorf("deserved (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTreeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []ConsumerSpec
	}{
		{"empty name", []ConsumerSpec{{Name: ""}}},
		{"twice", []ConsumerSpec{{Name: "a"}, {Name: "a"}}},
		{"unknown parent", []ConsumerSpec{{Name: "a", Parent: "x"}}},
		{"cycle", []ConsumerSpec{{Name: "a", Parent: "b"}, {Name: "b", Parent: "a"}}},
		{"self parent", []ConsumerSpec{{Name: "a", Parent: "a"}}},
		{"negative weight", []ConsumerSpec{{Name: "a", Weight: -1}}},
		{"negative owned", []ConsumerSpec{{Name: "a", Owned: Res(-1, 0)}}},
		{"owned above limit", []ConsumerSpec{{Name: "a", Owned: Res(2000, 0), Limit: Res(1000, 0)}}},
		{"children own more than the parent", []ConsumerSpec{{Name: "p", Owned: Res(1000, 0)}, {Name: "c", Parent: "p", Owned: Res(2000, 0)}}},
		{"negative grace", []ConsumerSpec{{Name: "a", Grace: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newTree(tt.in); err == nil {
				t.Fatal("accepted")
			}
			c := New(Config{})
			r, err := c.Step(ConsumersSet{Consumers: tt.in})
			if err == nil || !r.Empty() {
				t.Fatalf("Step accepted it: %v", err)
			}
		})
	}
}

// A parent whose children own more than it does is refused with the
// dimensions at fault, and only those.
func TestTreeErrorNamesTheDimension(t *testing.T) {
	parent := Res(4000, 8<<30)
	parent[GPU] = 1000
	child := Res(1000, 16<<30)
	child[GPU] = 2000
	_, err := newTree([]ConsumerSpec{{Name: "/eng", Owned: parent}, {Name: "/eng/ml", Parent: "/eng", Owned: child}})
	if err == nil {
		t.Fatal("accepted")
	}
	const want = `consumer "/eng": its children own more than it does: mem 16GiB > 8GiB, gpu 2 > 1 (the children cpu=1 mem=16GiB gpu=2, its own cpu=4 mem=8GiB gpu=1)`
	if err.Error() != want {
		t.Errorf("error:\n %s\nwant\n %s", err, want)
	}
	c := New(Config{})
	if _, err := c.Step(ConsumersSet{Consumers: []ConsumerSpec{{Name: "/eng", Owned: parent}, {Name: "/eng/ml", Parent: "/eng", Owned: child}}}); !errors.Is(err, api.ErrInvalid) || !strings.HasPrefix(err.Error(), `consumer "/eng": `) {
		t.Errorf("Step = %v, want the tree's error wrapping api.ErrInvalid, with no prefix", err)
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, ev := range sampleEvents() {
		b, err := MarshalEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalEvent(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if diff := cmp.Diff(ev, got); diff != "" {
			t.Errorf("%T round trip (-want +got):\n%s", ev, diff)
		}
	}
	for _, bad := range []string{`{}`, `{"nope":{}}`, `{"tick":{"later":1}}`, `{"tick":{},"agent_lost":{}}`, `[`} {
		if _, err := UnmarshalEvent([]byte(bad)); err == nil {
			t.Errorf("%s: decoded", bad)
		}
	}
	if _, err := New(Config{}).Step(nil); err == nil {
		t.Error("nil event accepted")
	}
}
