package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestIdleTicks checks what NextDeadline promises: once a tick has
// decided nothing, a tick before the next deadline decides nothing and
// changes nothing but the time.
func TestIdleTicks(t *testing.T) {
	for seed := range uint64(10) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			c := New(Config{OfferFanout: int(seed%3) + 1})
			must(t, c, genConsumers())
			g := newGen(seed)
			checked := 0
			for range 400 {
				ev := g.event()
				r, err := c.Step(ev)
				if err != nil {
					continue
				}
				g.observe(r)
				tick, ok := ev.(Tick)
				if !ok || !r.Empty() {
					continue
				}
				next := tick.Now.Add(time.Hour)
				if at, ok := c.NextDeadline(); ok {
					if !at.After(tick.Now) {
						t.Fatalf("next deadline %v is not after the tick %v that handled it", at, tick.Now)
					}
					next = at.Add(-time.Nanosecond)
				}
				before, err := c.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				d, err := Restore(before)
				if err != nil {
					t.Fatal(err)
				}
				r2 := must(t, d, Tick{Now: next})
				if !r2.Empty() {
					t.Fatalf("idle tick at %v (last %v) decided:\n%s", next, tick.Now, r2)
				}
				after, err := d.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				strip := func(b []byte) string {
					s := string(b)
					i := strings.Index(s, `"now":`)
					j := strings.Index(s[i:], ",")
					return s[:i] + s[i+j:]
				}
				if strip(before) != strip(after) {
					t.Fatalf("idle tick at %v changed the state:\n%s\n%s", next, before, after)
				}
				checked++
			}
			if checked == 0 {
				t.Fatal("no tick checked")
			}
		})
	}
}

func TestStatus(t *testing.T) {
	c := New(Config{})
	must(t, c, ConsumersSet{Consumers: []ConsumerSpec{{Name: "bu", Owned: Res(4000, 8<<30), Grace: 7 * time.Second}, {Name: "a", Parent: "bu"}, {Name: "b"}}})
	must(t, c, AgentAdded{Agent: AgentSpec{ID: "n1", Resources: Res(4000, 8<<30)}})
	must(t, c, SessionSubmitted{Session: SessionSpec{ID: "s1", Consumer: "a", Groups: []TaskGroup{
		{Name: "big", Resources: Res(3000, 1<<30), Count: 2},
		{Name: "small", Resources: Res(500, 2<<30), Count: 1, Min: 1}}}})
	must(t, c, Tick{Now: t0})
	st, ok := c.Session("s1")
	if !ok {
		t.Fatal("s1 not found")
	}
	if st.Groups[0].Running != 1 || st.Groups[0].Pending != 1 || st.Groups[1].Running != 1 {
		t.Fatalf("status %+v", st)
	}
	if _, ok := c.Session("nope"); ok {
		t.Fatal("unknown session found")
	}
	cs := c.Consumers()
	if len(cs) != 3 || cs[1].Name != "a" || !cs[1].Leaf || cs[0].Leaf {
		t.Fatalf("consumers %+v", cs)
	}
	if cs[1].Grace != 7*time.Second || cs[2].Grace != 30*time.Second {
		t.Fatalf("grace %v %v", cs[1].Grace, cs[2].Grace)
	}
	if cs[1].Smallest != Res(3000, 1<<30) || cs[1].Held != Res(3500, 3<<30) || cs[0].Held != cs[1].Held {
		t.Fatalf("a: %+v", cs[1])
	}
	if c.Waiting() != 1 || c.Held() != Res(3500, 3<<30) || c.Total() != Res(4000, 8<<30) {
		t.Fatalf("waiting %d held %v total %v", c.Waiting(), c.Held(), c.Total())
	}
	if got := c.WaitingSessions("a"); len(got) != 1 || got[0] != "s1" {
		t.Fatalf("waiting sessions %v", got)
	}
	if got := c.WaitingSessions("bu"); got != nil {
		t.Fatalf("waiting sessions of a parent %v", got)
	}
}
