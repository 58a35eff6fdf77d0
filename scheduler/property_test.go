package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// gen makes a random but valid-looking event stream, answering the core's
// offers and finishing its tasks as a cluster would.
type gen struct {
	r        *rand.Rand
	now      time.Time
	agents   []string
	lost     map[string]bool
	sessions []string
	offers   []Offer
	running  []string
	next     int
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newGen(seed uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: t0, lost: map[string]bool{}}
}

func genConsumers() ConsumersSet {
	gi := Res(4000, 8<<30)
	return ConsumersSet{Consumers: []ConsumerSpec{
		{Name: "bu1", Owned: Res(8000, 16<<30)},
		{Name: "t1", Parent: "bu1", Owned: Res(4000, 8<<30), Grace: 5 * time.Second},
		{Name: "t2", Parent: "bu1", Owned: gi, NoLend: true},
		{Name: "bu2", Weight: 2, Limit: Res(24000, 0)},
		{Name: "t3", Parent: "bu2"},
	}}
}

// event returns the next event.
func (g *gen) event() Event {
	r := g.r
	for {
		switch k := r.IntN(100); {
		case k < 12:
			g.now = g.now.Add(time.Duration(r.IntN(8000)) * time.Millisecond)
			return Tick{Now: g.now}
		case k < 20 || len(g.agents) == 0:
			g.next++
			id := fmt.Sprintf("n%d", g.next)
			g.agents = append(g.agents, id)
			spec := AgentSpec{ID: id, Resources: Res(int64(1+r.IntN(8))*1000, int64(1+r.IntN(16))<<30),
				Attributes: map[string]string{"zone": []string{"a", "b"}[r.IntN(2)]}}
			if r.IntN(3) == 0 {
				n := 1 + r.IntN(4)
				spec.Resources[GPU] = int64(n) * 1000
				for i := range n {
					spec.GPUs = append(spec.GPUs, GPUDevice{ID: fmt.Sprintf("%s-g%d", id, i), Model: []string{"A100", "T4"}[r.IntN(2)], Island: i / 2})
				}
			}
			if r.IntN(2) == 0 {
				spec.PortRanges = []api.PortRange{{Begin: 31000, End: 31000 + r.IntN(4)}, {Begin: 32000, End: 32002}}
			}
			return AgentAdded{Agent: spec}
		case k < 22:
			id := g.agents[r.IntN(len(g.agents))]
			if g.lost[id] {
				continue
			}
			g.lost[id] = true
			return AgentLost{ID: id}
		case k < 32:
			g.next++
			id := fmt.Sprintf("s%d", g.next)
			g.sessions = append(g.sessions, id)
			kinds := []string{KindBatch, KindSpark, KindPods, KindFramework}
			s := SessionSpec{ID: id, Consumer: []string{"t1", "t2", "t3"}[r.IntN(3)], Priority: r.IntN(3),
				Kind: kinds[r.IntN(len(kinds))], Policy: []string{Binpack, Spread}[r.IntN(2)]}
			for gi := range 1 + r.IntN(2) {
				tg := TaskGroup{Name: fmt.Sprintf("g%d", gi), Resources: Res(int64(1+r.IntN(4))*500, int64(1+r.IntN(4))<<29), Count: r.IntN(12)}
				switch r.IntN(6) {
				case 0:
					tg.Resources[GPU] = []int64{250, 500, 1000, 2000}[r.IntN(4)]
					if r.IntN(2) == 0 {
						tg.SameIsland = true
					}
				case 1:
					tg.Min = 1 + r.IntN(4)
				case 2:
					tg.Constraints = []Constraint{{Attribute: "zone", Op: OpIn, Values: []string{"a"}}}
				case 3:
					tg.Max = 1 + r.IntN(8)
				case 4:
					tg.Resources[Ports] = int64(1 + r.IntN(3))
				}
				s.Groups = append(s.Groups, tg)
			}
			return SessionSubmitted{Session: s}
		case k < 38 && len(g.sessions) > 0:
			return SessionUpdated{Session: g.sessions[r.IntN(len(g.sessions))], Group: "g0", Count: r.IntN(10)}
		case k < 41 && len(g.sessions) > 0:
			i := r.IntN(len(g.sessions))
			id := g.sessions[i]
			g.sessions = slices.Delete(g.sessions, i, i+1)
			return SessionFinished{Session: id}
		case k < 60 && len(g.offers) > 0:
			i := r.IntN(len(g.offers))
			o := g.offers[i]
			g.offers = slices.Delete(g.offers, i, i+1)
			if r.IntN(4) == 0 {
				return OfferDeclined{Offer: o.ID, Refuse: time.Duration(r.IntN(10)) * time.Second}
			}
			return OfferAccepted{Offer: o.ID, Tasks: []AcceptedTask{{Group: "g0", Count: 1 + r.IntN(3)}}}
		case k < 85 && len(g.running) > 0:
			i := r.IntN(len(g.running))
			id := g.running[i]
			g.running = slices.Delete(g.running, i, i+1)
			return TaskFinished{Task: id, Failed: r.IntN(5) == 0}
		case k < 88 && len(g.sessions) > 0:
			id := g.sessions[r.IntN(len(g.sessions))]
			if r.IntN(2) == 0 {
				return Suppress{Session: id}
			}
			return Revive{Session: id}
		case k == 99 && r.IntN(3) == 0:
			// The tree again, changed: another grace, t2 dropped (refused
			// while sessions run there) or t3 made a parent.
			cs := genConsumers()
			switch r.IntN(3) {
			case 0:
				cs.Consumers[1].Grace = time.Duration(1+r.IntN(9)) * time.Second
			case 1:
				cs.Consumers = slices.Delete(cs.Consumers, 2, 3)
			case 2:
				cs.Consumers = append(cs.Consumers, ConsumerSpec{Name: "t4", Parent: "t3"})
			}
			return cs
		case k >= 88:
			g.now = g.now.Add(time.Second)
			return Tick{Now: g.now}
		}
	}
}

// observe records what the core decided, so later events refer to it.
func (g *gen) observe(r *Ready) {
	g.offers = append(g.offers, r.Offers...)
	gone := map[string]bool{}
	for _, o := range r.Rescinds {
		gone[o.Offer] = true
	}
	g.offers = slices.DeleteFunc(g.offers, func(o Offer) bool { return gone[o.ID] })
	for _, l := range r.Launches {
		g.running = append(g.running, l.Task)
	}
	killed := map[string]bool{}
	for _, k := range r.Kills {
		killed[k.Task] = true
	}
	g.running = slices.DeleteFunc(g.running, func(id string) bool { return killed[id] })
}

// runChecked feeds n events, checking the invariants after each step and
// the decisions against the ones before: no task launched twice, a task
// killed for reclaim was revocable, only a noticed task is withdrawn or
// killed for reclaim or preemption, and a withdrawn one is not, no host
// port is given to two running tasks of an agent. It returns the events
// and the decisions.
func runChecked(t testing.TB, c *Core, g *gen, n int) ([]Event, []string) {
	t.Helper()
	launched := map[string]Launch{}
	noticed := map[string]bool{}
	ports := map[string]map[int]string{} // agent → port → task
	release := func(task string) {
		l := launched[task]
		for _, p := range l.Ports {
			if ports[l.Agent][p] == task {
				delete(ports[l.Agent], p)
			}
		}
	}
	var evs []Event
	var out []string
	for i := range n {
		ev := g.event()
		evs = append(evs, ev)
		r, err := c.Step(ev)
		if err != nil {
			if !errors.Is(err, api.ErrNotFound) && !errors.Is(err, api.ErrConflict) && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("event %d %T: error without a sentinel: %v", i, ev, err)
			}
			if !r.Empty() {
				t.Fatalf("event %d %T: refused (%v) but decided:\n%s", i, ev, err, r)
			}
			out = append(out, "error")
			continue
		}
		if err := c.Verify(); err != nil {
			t.Fatalf("event %d %T: %v", i, ev, err)
		}
		if err := settled(c); err != nil {
			t.Fatalf("event %d %T: %v", i, ev, err)
		}
		for _, k := range r.Kills {
			release(k.Task)
		}
		switch ev := ev.(type) {
		case TaskFinished:
			release(ev.Task)
		case AgentLost:
			delete(ports, ev.ID)
		}
		for _, l := range r.Launches {
			if _, twice := launched[l.Task]; twice {
				t.Fatalf("event %d: task %s launched twice", i, l.Task)
			}
			launched[l.Task] = l
			if int64(len(l.Ports)) != l.Resources[Ports] && len(l.Ports) > 0 {
				t.Fatalf("event %d: task %s asked for %d ports and got %v", i, l.Task, l.Resources[Ports], l.Ports)
			}
			if ports[l.Agent] == nil {
				ports[l.Agent] = map[int]string{}
			}
			for _, p := range l.Ports {
				if other, ok := ports[l.Agent][p]; ok {
					t.Fatalf("event %d: port %d of agent %s given to %s while %s holds it", i, p, l.Agent, l.Task, other)
				}
				ports[l.Agent][p] = l.Task
			}
		}
		for _, k := range r.Kills {
			if strings.HasPrefix(k.Reason, "reclaimed") && !launched[k.Task].Revocable {
				t.Fatalf("event %d: reclaim killed %s, which ran on owned resources", i, k.Task)
			}
			if (strings.HasPrefix(k.Reason, "reclaimed") || strings.HasPrefix(k.Reason, "preempted")) && !noticed[k.Task] {
				t.Fatalf("event %d: killed %s (%s) without a notice in force", i, k.Task, k.Reason)
			}
			delete(noticed, k.Task)
		}
		for _, w := range r.Withdrawals {
			if !noticed[w.Task] {
				t.Fatalf("event %d: withdrew the notice of %s, which had none", i, w.Task)
			}
			delete(noticed, w.Task)
		}
		for _, nt := range r.Notices {
			if noticed[nt.Task] {
				t.Fatalf("event %d: noticed %s twice", i, nt.Task)
			}
			noticed[nt.Task] = true
		}
		if ev, ok := ev.(TaskFinished); ok {
			delete(noticed, ev.Task)
		}
		out = append(out, r.String())
		g.observe(r)
	}
	return evs, out
}

func TestRandomStreams(t *testing.T) {
	withdrawn := 0 // the streams must exercise withdraw
	for seed := range uint64(40) {
		for _, k := range []int{1, 3} {
			t.Run(fmt.Sprintf("seed%d-fanout%d", seed, k), func(t *testing.T) {
				c := New(Config{OfferFanout: k})
				if _, err := c.Step(genConsumers()); err != nil {
					t.Fatal(err)
				}
				_, out := runChecked(t, c, newGen(seed), 600)
				for _, o := range out {
					withdrawn += strings.Count(o, "withdraw ")
				}
			})
		}
	}
	t.Logf("%d notices withdrawn", withdrawn)
	if withdrawn == 0 {
		t.Error("no stream withdrew a notice")
	}
}

// TestRestoreAnywhere crashes the core after every event of a random
// stream: the core restored from a snapshot taken there decides exactly as
// the one that kept running.
func TestRestoreAnywhere(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			c := New(Config{OfferFanout: 2})
			if _, err := c.Step(genConsumers()); err != nil {
				t.Fatal(err)
			}
			evs, want := runChecked(t, c, newGen(seed), 300)
			// Replay, snapshotting and restoring before every event.
			d := New(Config{OfferFanout: 2})
			if _, err := d.Step(genConsumers()); err != nil {
				t.Fatal(err)
			}
			for i, ev := range evs {
				snap, err := d.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if d, err = Restore(snap); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				again, err := d.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(snap), string(again)); diff != "" {
					t.Fatalf("event %d: snapshot of the restored core differs:\n%s", i, diff)
				}
				r, err := d.Step(ev)
				got := "error"
				if err == nil {
					got = r.String()
				}
				if got != want[i] {
					t.Fatalf("event %d %T: restored core decided\n%s\nthe running one\n%s", i, ev, got, want[i])
				}
			}
		})
	}
}

// FuzzEvents drives the core with event streams drawn from the fuzzer's
// seed and checks the invariants after every step.
func FuzzEvents(f *testing.F) {
	f.Add(uint64(1), uint8(1), uint16(300))
	f.Add(uint64(7), uint8(4), uint16(800))
	f.Fuzz(func(t *testing.T, seed uint64, fanout uint8, n uint16) {
		c := New(Config{OfferFanout: int(fanout%8) + 1})
		if _, err := c.Step(genConsumers()); err != nil {
			t.Fatal(err)
		}
		runChecked(t, c, newGen(seed), int(n%2000))
	})
}

// settled checks that a step left nothing undone: no waiting task of a
// session (gangs that have not started aside) fits the free resources of
// an agent it may use, and no framework session lacks an offer for an
// agent where one of its tasks fits.
func settled(c *Core) error {
	for _, s := range sortedSessions(c.sessions) {
		if s.suppressed {
			continue
		}
		for _, a := range c.agents {
			if a.lost || a.unhealthy || (c.cfg.OfferFanout > 1 && len(a.offers) >= c.cfg.OfferFanout) {
				continue
			}
			if until, ok := s.filters[a.idx]; ok && until.After(c.now) {
				continue
			}
			if s.framework && slices.ContainsFunc(a.offers, func(o *offer) bool { return o.session == s }) {
				continue
			}
			for _, g := range s.groups {
				if g.pending() == 0 || !g.started {
					continue
				}
				tr := trial{avail: c.avail(a), gpuFree: a.gpuFree}
				if _, _, why, _ := c.check(s, g, a, &tr); why == "" {
					return fmt.Errorf("session %s group %s waits with %d tasks, but one fits agent %s", s.spec.ID, g.spec.Name, g.pending(), a.spec.ID)
				}
			}
		}
	}
	return nil
}
