package scheduler

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkAllocationCycle is the Mesos allocator benchmark's shape: N
// agents and M framework sessions in one consumer, no filters. Every
// offer times out at once, so one tick rescinds them all and offers every
// agent again in fair order: one full allocation cycle. Mesos 1.8 took
// about 1.1 s for 10,000 x 1,000 and 3.8 s for 20,000 x 2,000.
func BenchmarkAllocationCycle(b *testing.B) {
	for _, sz := range []struct{ agents, sessions int }{{10000, 1000}, {20000, 2000}} {
		b.Run(fmt.Sprintf("%dx%d", sz.agents, sz.sessions), func(b *testing.B) {
			c := New(Config{OfferTimeout: time.Second})
			must(b, c, ConsumersSet{Consumers: []ConsumerSpec{{Name: "role"}}})
			must(b, c, Tick{Now: t0})
			for i := range sz.sessions {
				must(b, c, SessionSubmitted{Session: SessionSpec{ID: fmt.Sprintf("fw%d", i), Consumer: "role", Kind: KindFramework,
					Groups: []TaskGroup{{Name: "t", Resources: Res(1000, 1<<30), Count: 1 << 20}}}})
			}
			for i := range sz.agents {
				must(b, c, AgentAdded{Agent: AgentSpec{ID: fmt.Sprintf("a%d", i), Resources: Res(32000, 128<<30)}})
			}
			now := t0
			offers := 0
			b.ResetTimer()
			for range b.N {
				now = now.Add(2 * time.Second)
				r := must(b, c, Tick{Now: now})
				offers = len(r.Offers)
			}
			b.StopTimer()
			if offers != sz.agents {
				b.Fatalf("a cycle made %d offers, want %d", offers, sz.agents)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/cycle")
		})
	}
}

// BenchmarkPlacement places tasks of built-in sessions on 10,000 agents
// (32 cores, 128 GiB; one in ten with 4 GPUs) and reports placements per
// second. Each iteration finishes one task and lets the core place the
// next.
func BenchmarkPlacement(b *testing.B) {
	c := New(Config{})
	must(b, c, ConsumersSet{Consumers: []ConsumerSpec{{Name: "bu1", Owned: Res(100000000, 400<<40)}, {Name: "bu2"}}})
	must(b, c, Tick{Now: t0})
	for i := range 10000 {
		spec := AgentSpec{ID: fmt.Sprintf("a%d", i), Resources: Res(32000, 128<<30)}
		if i%10 == 0 {
			spec.Resources[GPU] = 4000
		}
		must(b, c, AgentAdded{Agent: spec})
	}
	var running []string
	for i := range 1000 {
		r := must(b, c, SessionSubmitted{Session: SessionSpec{ID: fmt.Sprintf("s%d", i), Consumer: []string{"bu1", "bu2"}[i%2],
			Groups: []TaskGroup{{Name: "t", Resources: Res(1000, 2<<30), Count: 1000}}}})
		for _, l := range r.Launches {
			running = append(running, l.Task)
		}
	}
	b.ResetTimer()
	placed := int64(0)
	for i := range b.N {
		id := running[i%len(running)]
		r := must(b, c, TaskFinished{Task: id})
		if len(r.Launches) > 0 {
			running[i%len(running)] = r.Launches[0].Task
			placed += int64(len(r.Launches))
		}
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}

// BenchmarkOneTaskSessions submits 10,000 sessions of one task each
// (1 core, 2 GiB; the shape of Kubernetes pods and small jobs) to 5,000
// idle agents (32 cores, 128 GiB), one step each, and reports placements
// per second; next to it, in the same run, the same 10,000 tasks
// submitted as two sessions of 5,000 (grouped-placements/s), and how many
// times faster the grouped ones are placed (x-grouped). Each iteration
// starts from a fresh core. The goal is 50,000 placements/s of one-task
// sessions with either policy.
func BenchmarkOneTaskSessions(b *testing.B) {
	const agents, tasks = 5000, 10000
	cluster := func(b *testing.B) *Core {
		c := New(Config{})
		must(b, c, ConsumersSet{Consumers: []ConsumerSpec{{Name: "bu"}}})
		must(b, c, Tick{Now: t0})
		for i := range agents {
			must(b, c, AgentAdded{Agent: AgentSpec{ID: fmt.Sprintf("a%d", i), Resources: Res(32000, 128<<30)}})
		}
		return c
	}
	// submit steps the sessions in and returns how long that took.
	submit := func(b *testing.B, c *Core, sessions []SessionSpec) time.Duration {
		placed := 0
		start := time.Now()
		for _, s := range sessions {
			placed += len(must(b, c, SessionSubmitted{Session: s}).Launches)
		}
		took := time.Since(start)
		if placed != tasks {
			b.Fatalf("placed %d tasks, want %d", placed, tasks)
		}
		return took
	}
	for _, policy := range []string{Binpack, Spread} {
		var rate, grouped float64 // of the last round, printed once
		b.Run(policy, func(b *testing.B) {
			session := func(id string, count int) SessionSpec {
				return SessionSpec{ID: id, Consumer: "bu", Kind: KindPods, Policy: policy,
					Groups: []TaskGroup{{Name: "t", Resources: Res(1000, 2<<30), Count: count}}}
			}
			var single, two []SessionSpec
			for i := range tasks {
				single = append(single, session(fmt.Sprintf("p%d", i), 1))
			}
			for i := range 2 {
				two = append(two, session(fmt.Sprintf("g%d", i), tasks/2))
			}
			var tSingle, tTwo time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				c := cluster(b)
				b.StartTimer()
				tSingle += submit(b, c, single)
				b.StopTimer()
				c = cluster(b)
				tTwo += submit(b, c, two)
			}
			n := float64(tasks * b.N)
			rate, grouped = n/tSingle.Seconds(), n/tTwo.Seconds()
			b.ReportMetric(rate, "placements/s")
			b.ReportMetric(grouped, "grouped-placements/s")
			b.ReportMetric(grouped/rate, "x-grouped")
		})
		fmt.Printf("%d one-task sessions on %d agents, %s: %.0f placements/s (goal ≥ 50,000), as two sessions %.0f/s: %.1fx faster grouped\n",
			tasks, agents, policy, rate, grouped, grouped/rate)
	}
}

// BenchmarkMemory reports what the core keeps in memory: per agent (10,000
// agents of 32 cores and 128 GiB, one in ten with 4 GPUs, nothing else),
// per pending task (1,000 sessions of 1,000 tasks each and no agent, so
// none runs) and per running task (the same sessions on those agents). It
// measures the live heap after a collection, once, whatever -benchtime.
func BenchmarkMemory(b *testing.B) {
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	agents := func(c *Core) {
		for i := range 10000 {
			spec := AgentSpec{ID: fmt.Sprintf("a%d", i), Resources: Res(32000, 128<<30)}
			if i%10 == 0 {
				spec.Resources[GPU] = 4000
			}
			must(b, c, AgentAdded{Agent: spec})
		}
	}
	sessions := func(c *Core) {
		for i := range 1000 {
			must(b, c, SessionSubmitted{Session: SessionSpec{ID: fmt.Sprintf("s%d", i), Consumer: "bu",
				Groups: []TaskGroup{{Name: "t", Resources: Res(1000, 2<<30), Count: 1000}}}})
		}
	}
	core := func() *Core {
		c := New(Config{})
		must(b, c, ConsumersSet{Consumers: []ConsumerSpec{{Name: "bu"}}})
		must(b, c, Tick{Now: t0})
		return c
	}
	b.ResetTimer()
	base := heap()
	c := core()
	agents(c)
	perAgent := float64(heap()-base) / 10000
	runtime.KeepAlive(c)
	base = heap()
	c = core()
	sessions(c)
	perPending := float64(heap()-base) / 1e6
	agents(c)
	running := len(c.tasks)
	perRunning := (float64(heap()-base) - perPending*float64(1e6-running) - perAgent*10000) / float64(running)
	runtime.KeepAlive(c)
	b.ReportMetric(perAgent, "B/agent")
	b.ReportMetric(perPending, "B/pending-task")
	b.ReportMetric(perRunning, "B/running-task")
}

func must(b testing.TB, c *Core, ev Event) *Ready {
	b.Helper()
	r, err := c.Step(ev)
	if err != nil {
		b.Fatal(err)
	}
	return r
}
