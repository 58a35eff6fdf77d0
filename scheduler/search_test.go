package scheduler

import (
	"slices"
	"testing"
	"time"
)

// A session that found no agent with room is served again, after a revive,
// on the agents that gained room in the meantime: a new one, and an old one
// that grew.
func TestServeAfterNoRoom(t *testing.T) {
	for _, grow := range []Event{
		AgentAdded{Agent: AgentSpec{ID: "b", Resources: Res(4000, 8<<30)}},
		AgentUpdated{Agent: AgentSpec{ID: "a", Resources: Res(4000, 8<<30)}},
	} {
		t.Run(grow.event(), func(t *testing.T) {
			c := New(Config{})
			for _, ev := range []Event{
				Tick{Now: t0},
				ConsumersSet{Consumers: []ConsumerSpec{{Name: "t"}}},
				AgentAdded{Agent: AgentSpec{ID: "a", Resources: Res(1000, 8<<30)}},
			} {
				must(t, c, ev)
			}
			for _, policy := range []string{Binpack, Spread} {
				id := "s-" + policy
				r := must(t, c, SessionSubmitted{Session: SessionSpec{ID: id, Consumer: "t", Policy: policy,
					Groups: []TaskGroup{{Name: "g", Resources: Res(2000, 1<<30), Count: 1}}}})
				if len(r.Launches) != 0 {
					t.Fatalf("%s launched with no room: %+v", id, r.Launches)
				}
				must(t, c, Suppress{Session: id})
			}
			if r := must(t, c, grow); len(r.Launches) != 0 {
				t.Fatalf("a suppressed session launched: %+v", r.Launches)
			}
			for _, id := range []string{"s-binpack", "s-spread"} {
				r := must(t, c, Revive{Session: id})
				if len(r.Launches) != 1 || r.Launches[0].Session != id {
					t.Fatalf("revive %s: launches %+v, want one task of it", id, r.Launches)
				}
				must(t, c, Suppress{Session: "s-binpack"}) // leave the room to the next
			}
			if err := c.Verify(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A reclaim round that finds no room for a task of one GPU model still
// looks for a task of the same size that asks for another model.
func TestReclaimOtherModelAfterMiss(t *testing.T) {
	gpu := func(r Resources) Resources { r[GPU] = 1000; return r }
	c := New(Config{})
	for _, ev := range []Event{
		Tick{Now: t0},
		ConsumersSet{Consumers: []ConsumerSpec{
			{Name: "owner", Owned: gpu(Res(2000, 4<<30)), Grace: time.Second},
			{Name: "keeper", Owned: gpu(Res(1000, 2<<30))},
			{Name: "borrower"},
		}},
		AgentAdded{Agent: AgentSpec{ID: "t4", Resources: gpu(Res(4000, 16<<30)), GPUs: []GPUDevice{{ID: "t4/0", Model: "T4"}}}},
		AgentAdded{Agent: AgentSpec{ID: "a100", Resources: gpu(Res(4000, 16<<30)), GPUs: []GPUDevice{{ID: "a100/0", Model: "A100"}}}},
		Tick{Now: t0.Add(time.Second)},
		// The keeper's own task holds the A100; the borrower's
		// revocable one the T4.
		SessionSubmitted{Session: SessionSpec{ID: "keep", Consumer: "keeper",
			Groups: []TaskGroup{{Name: "g", Resources: gpu(Res(500, 1<<30)), Count: 1, GPUModels: []string{"A100"}}}}},
		SessionSubmitted{Session: SessionSpec{ID: "borrow", Consumer: "borrower",
			Groups: []TaskGroup{{Name: "g", Resources: gpu(Res(500, 1<<30)), Count: 1}}}},
		SessionSubmitted{Session: SessionSpec{ID: "want-a100", Consumer: "owner",
			Groups: []TaskGroup{{Name: "g", Resources: gpu(Res(500, 1<<30)), Count: 1, GPUModels: []string{"A100"}}}}},
		SessionSubmitted{Session: SessionSpec{ID: "want-t4", Consumer: "owner",
			Groups: []TaskGroup{{Name: "g", Resources: gpu(Res(500, 1<<30)), Count: 1, GPUModels: []string{"T4"}}}}},
	} {
		must(t, c, ev)
	}
	r := must(t, c, Tick{Now: t0.Add(2 * time.Second)})
	if !slices.ContainsFunc(r.Notices, func(n Notice) bool { return n.Session == "borrow" && n.Consumer == "owner" }) {
		t.Fatalf("notices %+v: want the borrower's task reclaimed for the T4 task", r.Notices)
	}
	if slices.ContainsFunc(r.Notices, func(n Notice) bool { return n.Session == "keep" }) {
		t.Fatalf("notices %+v: the keeper's task is within its owned share", r.Notices)
	}
}

func TestSamePlacement(t *testing.T) {
	base := TaskGroup{Name: "x", Resources: Res(1000, 1<<30), GPUModels: []string{"A100"},
		Constraints: []Constraint{{Attribute: "zone", Op: OpIn, Values: []string{"a", "b"}}}}
	tests := []struct {
		name string
		edit func(*TaskGroup)
		same bool
	}{
		{"another name and size", func(g *TaskGroup) { g.Name, g.Resources = "y", Res(4000, 8<<30) }, true},
		{"another model", func(g *TaskGroup) { g.GPUModels = []string{"T4"} }, false},
		{"no model", func(g *TaskGroup) { g.GPUModels = nil }, false},
		{"one island", func(g *TaskGroup) { g.SameIsland = true }, false},
		{"another value", func(g *TaskGroup) { g.Constraints[0].Values = []string{"a"} }, false},
		{"not in", func(g *TaskGroup) { g.Constraints[0].Op = OpNotIn }, false},
		{"another attribute", func(g *TaskGroup) { g.Constraints[0].Attribute = "rack" }, false},
		{"no constraint", func(g *TaskGroup) { g.Constraints = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := base
			g.GPUModels = slices.Clone(base.GPUModels)
			g.Constraints = []Constraint{{Attribute: "zone", Op: OpIn, Values: []string{"a", "b"}}}
			tt.edit(&g)
			if got := samePlacement(&base, &g); got != tt.same {
				t.Errorf("samePlacement = %v, want %v", got, tt.same)
			}
		})
	}
}

// A reclaim round before any agent has registered finds nothing to take
// (a restarted server's first ticks).
func TestReclaimWithoutAgents(t *testing.T) {
	c := New(Config{})
	for _, ev := range []Event{
		Tick{Now: t0},
		ConsumersSet{Consumers: []ConsumerSpec{{Name: "owner", Owned: Res(1000, 1<<30)}}},
		SessionSubmitted{Session: SessionSpec{ID: "s", Consumer: "owner", Groups: []TaskGroup{{Name: "g", Resources: Res(500, 1<<20), Count: 1}}}},
		Tick{Now: t0.Add(time.Second)},
	} {
		if r := must(t, c, ev); len(r.Notices)+len(r.Launches) != 0 {
			t.Fatalf("%T decided %s with no agents", ev, r)
		}
	}
}

// A gang larger than what the group asks for starts what it asks for,
// together, and no more.
func TestGangAboveCount(t *testing.T) {
	c := New(Config{})
	for _, ev := range []Event{
		Tick{Now: t0},
		ConsumersSet{Consumers: []ConsumerSpec{{Name: "t"}}},
		AgentAdded{Agent: AgentSpec{ID: "a", Resources: Res(4000, 4<<30)}},
	} {
		must(t, c, ev)
	}
	r := must(t, c, SessionSubmitted{Session: SessionSpec{ID: "s", Consumer: "t", Groups: []TaskGroup{{Name: "g", Resources: Res(500, 1<<20), Count: 2, Min: 3}}}})
	if len(r.Launches) != 2 {
		t.Fatalf("launches %v: want the two tasks asked for", r.Launches)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
}
