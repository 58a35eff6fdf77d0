package sim

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler/scenario"
	"github.com/caisson/caisson/scheduler/trace"
)

// fixedClock makes runs reproducible byte for byte: every Step takes 1µs.
func fixedClock() func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time {
		t = t.Add(500 * time.Nanosecond)
		return t
	}
}

func load(t *testing.T, file string) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestSmall replays examples/sim-small.yaml: team-a's batch borrows
// team-b's share until team-b's Spark session asks for it back; the
// borrowed tasks are killed when team-b's grace period (the default 30s)
// ends, and every session finishes.
func TestSmall(t *testing.T) {
	rep, err := Run(context.Background(), load(t, "../../examples/sim-small.yaml"), Options{Series: true, Clock: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case rep.SessionsFinished != 3:
		t.Errorf("%d sessions finished, want 3", rep.SessionsFinished)
	case rep.OvercommitViolations != 0:
		t.Errorf("%d over-commit violations", rep.OvercommitViolations)
	case rep.TasksPending != 0:
		t.Errorf("%d tasks pending at the end", rep.TasksPending)
	case rep.Reclaim.Events != 1 || rep.Reclaim.TasksNoticed == 0 || rep.Reclaim.TasksPreempted != rep.Reclaim.TasksNoticed:
		t.Errorf("reclaim %+v: want one event whose noticed tasks were all killed", rep.Reclaim)
	case rep.Reclaim.Latency.Max < 30 || rep.Reclaim.Latency.Max > 31:
		t.Errorf("reclaim took %vs: want team-b's 30s grace and a tick", rep.Reclaim.Latency.Max)
	case rep.SLA.EpisodesViolating != 0:
		t.Errorf("SLA %+v: want no violation within grace+5s", rep.SLA)
	case rep.VirtualSeconds != 180:
		t.Errorf("ran %vs of virtual time, want the scenario's 3m", rep.VirtualSeconds)
	case rep.Utilization.CPU <= 0 || rep.Utilization.CPU > 1:
		t.Errorf("cpu utilization %v", rep.Utilization.CPU)
	}
	c := rep.Chart()
	if len(c.Series) != 2 || len(c.Times) == 0 || c.Series[0].Name != "team-a" {
		t.Fatalf("chart: %d series over %d samples", len(c.Series), len(c.Times))
	}
}

// TestDeterministic: the same scenario and seed give the same report.
func TestDeterministic(t *testing.T) {
	run := func() *Report {
		rep, err := Run(context.Background(), load(t, "../../examples/sim-multitenant.yaml"), Options{Clock: fixedClock()})
		if err != nil {
			t.Fatal(err)
		}
		rep.PeakRSSBytes = 0
		return rep
	}
	a, b := run(), run()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("two runs differ:\n%s\n%s", ja, jb)
	}
	if a.OvercommitViolations != 0 || a.Reclaim.Events == 0 || a.Offers.Sent == 0 {
		t.Fatalf("multi-tenant run: %+v", a)
	}
}

// TestFanout runs the same generated workload with K = 1 and 4: with K=4
// framework sessions race for the same offers and some accepts conflict;
// with K=1 none can.
func TestFanout(t *testing.T) {
	sc, err := Synthetic{Agents: 20, Sessions: 30, Tasks: 1500, GPUFraction: 0.1, Seed: 3}.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = 10 * time.Minute
	for _, k := range []int{1, 4} {
		rep, err := Run(context.Background(), sc, Options{OfferFanout: k, Clock: fixedClock()})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OfferFanout != k || rep.OvercommitViolations != 0 || rep.TasksPlaced == 0 {
			t.Fatalf("K=%d: %+v", k, rep)
		}
		if k == 1 && rep.Offers.Conflicts != 0 {
			t.Errorf("K=1: %d conflicts", rep.Offers.Conflicts)
		}
		if k == 4 && rep.Offers.Conflicts == 0 {
			t.Errorf("K=4: no conflict in %+v", rep.Offers)
		}
	}
}

// TestOpenB replays the first pods of the Alibaba trace: every one is
// placed and finishes.
func TestOpenB(t *testing.T) {
	nodes, pods, err := trace.OpenB()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := FromOpenB("openb", nodes, pods[:400])
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Consumers) == 0 || len(sc.Agents) != 1213 {
		t.Fatalf("%d consumers, %d agents", len(sc.Consumers), len(sc.Agents))
	}
	rep, err := Run(context.Background(), sc, Options{Clock: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TasksPlaced != 400 || rep.SessionsFinished != 400 || rep.TasksPending != 0 || rep.OvercommitViolations != 0 || rep.GPUAllocationRatio == 0 {
		t.Fatalf("replay: %+v", rep)
	}
}

func TestBadInput(t *testing.T) {
	for _, y := range []Synthetic{
		{Agents: 0, Sessions: 1, Tasks: 1},
		{Agents: 1, Sessions: 0, Tasks: 1},
		{Agents: 1, Sessions: 2, Tasks: 1},
		{Agents: 1, Sessions: 1, Tasks: 1, GPUFraction: 1.5},
	} {
		if _, err := y.Scenario(); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", y, err)
		}
	}
	if _, err := FromOpenB("x", nil, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("empty trace: %v", err)
	}
	if _, err := Run(context.Background(), nil, Options{}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("no scenario: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, load(t, "../../examples/sim-small.yaml"), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestPorts replays web servers that each need two host ports on agents
// that name four: two run at a time on each, every one gets ports of its
// agent no other running task holds, and all finish.
func TestPorts(t *testing.T) {
	sc, err := scenario.Parse("ports.yaml", []byte(`version: 1
duration: 10m
agents:
  - {name: web, count: 2, cpus: 8, memory: 16Gi, port_ranges: [31000-31002, 31500]}
consumers:
  - name: team
sessions:
  - id: web
    consumer: team
    kind: pods
    groups:
      - {name: server, cpus: 1, memory: 1Gi, ports: 2, count: 10, duration: 30s}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), sc, Options{Clock: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OvercommitViolations != 0 || rep.TasksFinished != 10 || rep.TasksPending != 0 {
		t.Errorf("violations %d, finished %d, pending %d: want 0, 10, 0", rep.OvercommitViolations, rep.TasksFinished, rep.TasksPending)
	}
	// Four at a time: 10 tasks of 30s take three rounds.
	if rep.VirtualSeconds < 90 {
		t.Errorf("done in %vs: more than four servers ran at once", rep.VirtualSeconds)
	}
}
