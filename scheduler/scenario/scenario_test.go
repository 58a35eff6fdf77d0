package scenario

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

const (
	gi = int64(1) << 30
	ti = int64(1) << 40
)

func res(cpuMilli, mem int64) scheduler.Resources { return scheduler.Res(cpuMilli, mem) }

func withGPU(r scheduler.Resources, milli int64) scheduler.Resources {
	r[scheduler.GPU] = milli
	return r
}

// TestExamples loads the scenario examples that ship with the repository
// (examples/sim-*.yaml; the others are the cluster's files) and
// replays their setup into a core, which must accept all of it.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/sim-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ agents, consumers, sessions int }{
		"sim-small.yaml":       {2, 2, 3},
		"sim-multitenant.yaml": {88, 10, 51},
	}
	found := 0
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			s, err := Load(file)
			if err != nil {
				t.Fatal(err)
			}
			if w, ok := want[filepath.Base(file)]; ok {
				found++
				if len(s.Agents) != w.agents || len(s.Consumers) != w.consumers || len(s.Sessions) != w.sessions {
					t.Errorf("got %d agents, %d consumers, %d sessions; want %d, %d, %d",
						len(s.Agents), len(s.Consumers), len(s.Sessions), w.agents, w.consumers, w.sessions)
				}
			}
			replay(t, s)
		})
	}
	if found != len(want) {
		t.Errorf("examples: got %v, want %d files among them", files, len(want))
	}
}

// replay feeds a scenario's consumers, agents and sessions to a new core.
func replay(t *testing.T, s *Scenario) {
	t.Helper()
	c := scheduler.New(s.Config)
	step := func(ev scheduler.Event) {
		t.Helper()
		if _, err := c.Step(ev); err != nil {
			t.Fatalf("the core refuses %T: %v", ev, err)
		}
	}
	step(scheduler.ConsumersSet{Consumers: s.Consumers})
	for _, a := range s.Agents {
		step(scheduler.AgentAdded{Agent: a})
	}
	for _, ss := range s.Sessions {
		step(scheduler.SessionSubmitted{Session: ss.Spec})
	}
}

func TestMultitenantDetails(t *testing.T) {
	s, err := Load("../../examples/sim-multitenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var total scheduler.Resources
	for _, a := range s.Agents {
		total = total.Add(a.Resources)
	}
	if want := withGPU(res(3200_000, 14080*gi), 48_000); total[scheduler.CPU] != want[scheduler.CPU] || total[scheduler.Memory] != want[scheduler.Memory] || total[scheduler.GPU] != want[scheduler.GPU] {
		t.Errorf("cluster: got %v, want %v", total, want)
	}
	a100 := s.Agents[48+24+8] // after cpu-a, cpu-b and power
	wantAgent := scheduler.AgentSpec{
		ID:         "a100-0001",
		Resources:  scheduler.Resources{64_000, 512 * gi, 4 * ti, 1000, 8000},
		Attributes: map[string]string{"arch": "amd64", "zone": "a", "gpu_model": "A100"},
	}
	for i := range 8 {
		wantAgent.GPUs = append(wantAgent.GPUs, scheduler.GPUDevice{
			ID: fmt.Sprintf("a100-0001/gpu%d", i), Model: "A100", MemoryBytes: 40 * gi, Island: i / 4,
		})
	}
	if diff := cmp.Diff(wantAgent, a100); diff != "" {
		t.Errorf("a100-0001 (-want +got):\n%s", diff)
	}

	byID := map[string]Session{}
	for _, ss := range s.Sessions {
		byID[ss.Spec.ID] = ss
	}
	risk := []time.Duration{}
	for i := 1; i <= 20; i++ {
		ss, ok := byID[fmt.Sprintf("risk-eod-%04d", i)]
		if !ok {
			t.Fatalf("no session risk-eod-%04d", i)
		}
		risk = append(risk, ss.SubmitAt)
	}
	if risk[0] != 60*time.Second {
		t.Errorf("risk-eod-0001 is submitted at %v, want 60s", risk[0])
	}
	for i := 1; i < len(risk); i++ {
		if risk[i] < risk[i-1] {
			t.Errorf("risk-eod submissions go back in time: %v", risk)
		}
	}
	report := byID["report-0003"]
	wantReport := Session{
		Spec: scheduler.SessionSpec{
			ID: "report-0003", Consumer: "reporting", User: "grace", Kind: scheduler.KindSpark, Policy: scheduler.Binpack,
			Groups: []scheduler.TaskGroup{{
				Name: "executor", Resources: res(4000, 16*gi), Count: 4, Max: 32,
				Constraints: []scheduler.Constraint{{Attribute: "arch", Op: scheduler.OpIn, Values: []string{"amd64"}}},
			}},
		},
		SubmitAt: 70 * time.Second,
		Stages: []Stage{
			{Tasks: 200, Duration: Dist{Kind: Lognormal, Median: 2 * time.Second, Sigma: 1}},
			{Tasks: 50, Duration: Dist{Kind: Uniform, Min: time.Second, Max: 10 * time.Second}},
			{Tasks: 1, Duration: FixedDist(20 * time.Second)},
		},
		Dynamic: &DynamicAllocation{Group: "executor", Min: 2, Initial: 4, Max: 32, IdleTimeout: time.Minute, BacklogTimeout: time.Second},
	}
	if diff := cmp.Diff(wantReport, report, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("report-0003 (-want +got):\n%s", diff)
	}
	train := byID["train-llm"].Spec.Groups[0]
	if !train.SameIsland || train.Min != 4 || train.Resources[scheduler.GPU] != 4000 {
		t.Errorf("train-llm worker: got %+v", train)
	}
	if got := byID["infer-0016"].Spec.Groups[0].Resources[scheduler.GPU]; got != 250 {
		t.Errorf("infer-0016 asks for %d milli-GPUs, want 250", got)
	}
}

// TestParse checks a whole small scenario against what it should read as.
func TestParse(t *testing.T) {
	const file = `version: 1
seed: 7
duration: 10m
tick: 1s
config: {offer_fanout: 2, offer_timeout: 3s, refuse: 4s, grace: 5s}
agents:
  - name: n
    count: 2
    cpus: 4
    memory: 16Gi
    disk: 100G
    ports: 10
    port_ranges: [31000-31004, "32000", 32010-32013]
    gpus: 2
    gpu_model: V100
    gpu_memory: 16Gi
consumers:
  - name: bu
    weight: 2
    owned: {cpus: 2, memory: 8Gi, gpus: 1.5}
    limit: {cpus: "6", disk: 1k}
    lend: false
    grace: 1m
    children:
      - name: team
        owned: {cpus: 500m}
  - name: other
    parent: bu
sessions:
  - id: job
    consumer: team
    user: u
    priority: -3
    kind: pods
    policy: spread
    submit_at: 1s
    finish_at: 1m
    groups:
      - name: g
        cpus: 0.25
        memory: 1.5Mi
        gpus: 0.5
        count: 3
        min: 2
        max: 5
        gpu_models: [V100]
        same_island: true
        constraints:
          - {attribute: zone, in: [a, b]}
          - {attribute: arch, not_in: [ppc64le]}
        duration: {dist: exponential, mean: 2s}
  - name: many
    count: 3
    every: 10s
    consumer: other
    submit_at: 5s
    finish_at: 6s
    groups: [{name: g, disk: 1}]
`
	got, err := Parse("t.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	gpus := func(agent string) []scheduler.GPUDevice {
		return []scheduler.GPUDevice{
			{ID: agent + "/gpu0", Model: "V100", MemoryBytes: 16 * gi},
			{ID: agent + "/gpu1", Model: "V100", MemoryBytes: 16 * gi},
		}
	}
	agentRes := scheduler.Resources{4000, 16 * gi, 100e9, 10, 2000}
	portRanges := []api.PortRange{{Begin: 31000, End: 31004}, {Begin: 32000, End: 32000}, {Begin: 32010, End: 32013}}
	many := func(i int, at time.Duration) Session {
		return Session{
			Spec: scheduler.SessionSpec{
				ID: fmt.Sprintf("many-%04d", i), Consumer: "other", Kind: scheduler.KindBatch, Policy: scheduler.Binpack,
				Groups: []scheduler.TaskGroup{{Name: "g", Resources: scheduler.Resources{scheduler.Disk: 1}, Count: 1}},
			},
			SubmitAt: at,
			FinishAt: at + time.Second,
		}
	}
	want := &Scenario{
		Name:     "t.yaml",
		Version:  1,
		Seed:     7,
		Duration: 10 * time.Minute,
		Tick:     time.Second,
		Config:   scheduler.Config{OfferFanout: 2, OfferTimeout: 3 * time.Second, Refuse: 4 * time.Second, Grace: 5 * time.Second},
		Consumers: []scheduler.ConsumerSpec{
			{Name: "bu", Weight: 2, Owned: withGPU(res(2000, 8*gi), 1500), Limit: scheduler.Resources{scheduler.CPU: 6000, scheduler.Disk: 1000}, NoLend: true, Grace: time.Minute},
			{Name: "team", Parent: "bu", Owned: res(500, 0)},
			{Name: "other", Parent: "bu"},
		},
		Agents: []scheduler.AgentSpec{
			{ID: "n-0001", Resources: agentRes, Attributes: map[string]string{"gpu_model": "V100"}, GPUs: gpus("n-0001"), PortRanges: portRanges},
			{ID: "n-0002", Resources: agentRes, Attributes: map[string]string{"gpu_model": "V100"}, GPUs: gpus("n-0002"), PortRanges: portRanges},
		},
		Sessions: []Session{
			{
				Spec: scheduler.SessionSpec{
					ID: "job", Consumer: "team", User: "u", Priority: -3, Kind: scheduler.KindPods, Policy: scheduler.Spread,
					Groups: []scheduler.TaskGroup{{
						Name: "g", Resources: withGPU(res(250, 1572864), 500), Count: 3, Min: 2, Max: 5,
						Constraints: []scheduler.Constraint{
							{Attribute: "zone", Op: scheduler.OpIn, Values: []string{"a", "b"}},
							{Attribute: "arch", Op: scheduler.OpNotIn, Values: []string{"ppc64le"}},
						},
						GPUModels: []string{"V100"}, SameIsland: true,
					}},
				},
				SubmitAt:  time.Second,
				FinishAt:  time.Minute,
				Durations: map[string]Dist{"g": {Kind: Exponential, Mean: 2 * time.Second}},
			},
			many(1, 5*time.Second), many(2, 15*time.Second), many(3, 25*time.Second),
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Scenario{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDefaults(t *testing.T) {
	s, err := Parse("d.yaml", []byte(`version: 1
agents: [{name: a, cpus: 1, memory: 1Gi}]
consumers: [{name: c}]
sessions: [{id: s, consumer: c, groups: [{name: g, cpus: 1}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Tick != DefaultTick || s.Duration != 0 || s.Seed != 0 || s.Config != (scheduler.Config{}) {
		t.Errorf("run defaults: tick %v, duration %v, seed %d, config %+v", s.Tick, s.Duration, s.Seed, s.Config)
	}
	if c := s.Consumers[0]; c.NoLend || c.Weight != 0 || c.Grace != 0 {
		t.Errorf("consumer defaults: %+v", c)
	}
	if a := s.Agents[0]; a.ID != "a-0001" || len(a.Attributes) != 0 || len(a.GPUs) != 0 {
		t.Errorf("agent defaults: %+v", a)
	}
	ss := s.Sessions[0]
	if ss.Spec.Kind != scheduler.KindBatch || ss.Spec.Policy != scheduler.Binpack || ss.Spec.Groups[0].Count != 1 || ss.SubmitAt != 0 || ss.FinishAt != 0 {
		t.Errorf("session defaults: %+v", ss)
	}
}

// TestRepeatedSessions checks ids, spacing and that copies share nothing.
func TestRepeatedSessions(t *testing.T) {
	const file = `version: 1
seed: %d
agents: [{name: a, cpus: 1, memory: 1Gi}]
consumers: [{name: c}]
sessions:
  - name: s
    count: 12000
    every: {dist: exponential, mean: 1s}
    consumer: c
    groups: [{name: g, cpus: 1, constraints: [{attribute: x, in: [y]}]}]
`
	load := func(seed int) *Scenario {
		s, err := Parse("r.yaml", fmt.Appendf(nil, file, seed))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, c := load(1), load(1), load(2)
	if got := []string{a.Sessions[0].Spec.ID, a.Sessions[11999].Spec.ID}; got[0] != "s-00001" || got[1] != "s-12000" {
		t.Errorf("ids %v: want s-00001 and s-12000 (as wide as the count)", got)
	}
	if diff := cmp.Diff(a, b, cmpopts.IgnoreUnexported(Scenario{})); diff != "" {
		t.Errorf("the same seed gives different scenarios:\n%s", diff)
	}
	if a.Sessions[5].SubmitAt == c.Sessions[5].SubmitAt {
		t.Errorf("seeds 1 and 2 give the same submit time %v", a.Sessions[5].SubmitAt)
	}
	// Poisson arrivals with a mean gap of 1s: about 12000s for 12000.
	if last := a.Sessions[11999].SubmitAt; last < 11000*time.Second || last > 13000*time.Second {
		t.Errorf("the last of 12000 sessions a mean 1s apart arrives at %v", last)
	}
	a.Sessions[0].Spec.Groups[0].Constraints[0].Values[0] = "changed"
	if v := a.Sessions[1].Spec.Groups[0].Constraints[0].Values[0]; v != "y" {
		t.Errorf("copies share their constraints: %q", v)
	}
}

func TestDistString(t *testing.T) {
	for _, tc := range []struct {
		d    Dist
		want string
	}{
		{FixedDist(5 * time.Second), "5s"},
		{Dist{Kind: Lognormal, Median: 2 * time.Second, Sigma: 1}, "{dist: lognormal, median: 2s, sigma: 1}"},
		{Dist{Kind: Uniform, Min: time.Second, Max: time.Minute}, "{dist: uniform, min: 1s, max: 1m0s}"},
		{Dist{Kind: Exponential, Mean: 500 * time.Millisecond}, "{dist: exponential, mean: 500ms}"},
	} {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
		// What String writes reads back as the same distribution.
		data := fmt.Sprintf("version: 1\nagents: [{name: a, cpus: 1, memory: 1}]\nconsumers: [{name: c}]\nsessions: [{id: s, consumer: c, groups: [{name: g, cpus: 1, duration: %s}]}]\n", tc.d)
		s, err := Parse("dist.yaml", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.d, s.Sessions[0].Durations["g"]); diff != "" {
			t.Errorf("%s reads back differently (-want +got):\n%s", tc.d, diff)
		}
	}
}

func TestDistSample(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	if got := FixedDist(3 * time.Second).Sample(r); got != 3*time.Second {
		t.Errorf("fixed 3s: got %v", got)
	}
	u := Dist{Kind: Uniform, Min: time.Second, Max: 2 * time.Second}
	ln := Dist{Kind: Lognormal, Median: 2 * time.Second, Sigma: 1}
	below := 0
	for range 10000 {
		if v := u.Sample(r); v < time.Second || v > 2*time.Second {
			t.Fatalf("uniform 1s..2s gave %v", v)
		}
		if v := ln.Sample(r); v < 0 {
			t.Fatalf("lognormal gave %v", v)
		} else if v < 2*time.Second {
			below++
		}
	}
	if below < 4700 || below > 5300 {
		t.Errorf("%d of 10000 lognormal samples below the median 2s, want about half", below)
	}
	if got := (Dist{Kind: Lognormal, Median: time.Hour, Sigma: 10}).Sample(rand.New(rand.NewPCG(3, 3))); got < 0 || got > maxSample {
		t.Errorf("a wide lognormal gave %v", got)
	}
}

func TestQuantities(t *testing.T) {
	for _, tc := range []struct {
		cpus, memory, gpus string
		want               scheduler.Resources
	}{
		{"1", "1", "1", scheduler.Resources{scheduler.CPU: 1000, scheduler.Memory: 1, scheduler.GPU: 1000}},
		{"0.5", "1Ki", "0.25", scheduler.Resources{scheduler.CPU: 500, scheduler.Memory: 1024, scheduler.GPU: 250}},
		{"250m", "1.5Gi", "0.001", scheduler.Resources{scheduler.CPU: 250, scheduler.Memory: 3 << 29, scheduler.GPU: 1}},
		{`"2"`, "2G", "8", scheduler.Resources{scheduler.CPU: 2000, scheduler.Memory: 2e9, scheduler.GPU: 8000}},
		{"1.001", "0.5", "0", scheduler.Resources{scheduler.CPU: 1001, scheduler.Memory: 1}}, // half a byte rounds up
		{"1e1", "1e3", "2.0", scheduler.Resources{scheduler.CPU: 10000, scheduler.Memory: 1000, scheduler.GPU: 2000}},
		{"3", "100M", "0.1", scheduler.Resources{scheduler.CPU: 3000, scheduler.Memory: 100e6, scheduler.GPU: 100}},
		{"4", "1Ti", "0", scheduler.Resources{scheduler.CPU: 4000, scheduler.Memory: ti}},
	} {
		t.Run(tc.cpus+"/"+tc.memory+"/"+tc.gpus, func(t *testing.T) {
			data := fmt.Sprintf(`version: 1
agents: [{name: a, cpus: 100, memory: 2Ti, gpus: 8, gpu_model: X}]
consumers: [{name: c}]
sessions: [{id: s, consumer: c, groups: [{name: g, cpus: %s, memory: %s, gpus: %s}]}]
`, tc.cpus, tc.memory, tc.gpus)
			s, err := Parse("q.yaml", []byte(data))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, s.Sessions[0].Spec.Groups[0].Resources); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// base is a valid scenario that the error cases change one thing of.
const base = `version: 1
agents:
  - name: cpu
    count: 2
    cpus: 8
    memory: 32Gi
  - name: gpu
    cpus: 16
    memory: 64Gi
    gpus: 4
    gpu_model: A100
consumers:
  - name: bu
    owned: {cpus: 16, memory: 64Gi}
    children:
      - name: team
        owned: {cpus: 8}
sessions:
  - id: s
    consumer: team
    groups:
      - name: g
        cpus: 1
`

// TestParseErrors checks that each kind of bad input is refused with an
// error that names the file, the line and the field.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  string
		line  int
		field string
	}{
		{"empty file", ``, 1, "version"},
		{"not yaml", "version: 1\nagents: [\n", 2, ""},
		{"tab indent", "version: 1\nagents:\n\t- name: x\n", 3, ""},
		{"not a mapping", "- 1\n", 1, ""},
		{"no version", "agents: []\nconsumers: []\n", 1, "version"},
		{"unknown version", "consumers: []\nversion: 2\n", 2, "version"},
		{"version not a number", "version: one\n", 1, "version"},
		{"second document", base + "---\nversion: 1\n", 24, ""},
		{"unknown top field", base + "agent: []\n", 24, "agent"},
		{"repeated top field", base + "version: 1\n", 24, "version"},
		{"no agents", "version: 1\nconsumers: [{name: c}]\n", 1, "agents"},
		{"empty agents", "version: 1\nagents: []\nconsumers: [{name: c}]\n", 2, "agents"},
		{"negative cpus", strings.Replace(base, "cpus: 8\n    memory: 32Gi", "cpus: -8\n    memory: 32Gi", 1), 5, "agents[0].cpus"},
		{"cpus not a number", strings.Replace(base, "cpus: 8\n    memory: 32Gi", "cpus: abc\n    memory: 32Gi", 1), 5, "agents[0].cpus"},
		{"cpus a list", strings.Replace(base, "cpus: 8\n    memory: 32Gi", "cpus: [8]\n    memory: 32Gi", 1), 5, "agents[0].cpus"},
		{"cpus finer than milli", strings.Replace(base, "cpus: 8\n    memory: 32Gi", "cpus: 0.0001\n    memory: 32Gi", 1), 5, "agents[0].cpus"},
		{"memory with GB", strings.Replace(base, "memory: 32Gi", "memory: 32GB", 1), 6, "agents[0].memory"},
		{"memory negative", strings.Replace(base, "memory: 32Gi", "memory: -1Gi", 1), 6, "agents[0].memory"},
		{"memory missing", strings.Replace(base, "    memory: 32Gi\n", "", 1), 3, "agents[0].memory"},
		{"count negative", strings.Replace(base, "count: 2", "count: -2", 1), 4, "agents[0].count"},
		{"count huge", strings.Replace(base, "count: 2", "count: 1000000000", 1), 4, "agents[0].count"},
		{"unknown agent field", strings.Replace(base, "count: 2", "count: 2\n    cores: 8", 1), 5, "agents[0].cores"},
		{"agent gpus fraction", strings.Replace(base, "gpus: 4", "gpus: 2.5", 1), 10, "agents[1].gpus"},
		{"agent gpus without model", strings.Replace(base, "    gpu_model: A100\n", "", 1), 7, "agents[1].gpu_model"},
		{"gpu_model without gpus", strings.Replace(base, "count: 2", "count: 2\n    gpu_model: T4", 1), 3, "agents[0].gpu_model"},
		{"islands uneven", strings.Replace(base, "gpu_model: A100", "gpu_model: A100\n    nvlink_islands: 3", 1), 7, "agents[1].nvlink_islands"},
		{"duplicate agent ids", strings.Replace(base, "name: gpu", "name: cpu", 1), 7, "agents[1].name"},
		{"port range reversed", strings.Replace(base, "count: 2", "count: 2\n    port_ranges: [32000-31000]", 1), 5, "agents[0].port_ranges[0]"},
		{"port zero", strings.Replace(base, "count: 2", "count: 2\n    port_ranges: [0-10]", 1), 5, "agents[0].port_ranges[0]"},
		{"port ranges overlap", strings.Replace(base, "count: 2", "count: 2\n    port_ranges: [31000-31010, 31005-31020]", 1), 5, "agents[0].port_ranges[1]"},
		{"port ranges overlap at one port", strings.Replace(base, "count: 2", "count: 2\n    port_ranges: [80, 90-100, 100-110]", 1), 5, "agents[0].port_ranges[2]"},
		{"port repeated", strings.Replace(base, "count: 2", "count: 2\n    port_ranges:\n      - 8080\n      - 8080", 1), 7, "agents[0].port_ranges[1]"},
		{"port ranges out of order", strings.Replace(base, "count: 2", "count: 2\n    port_ranges: [32000, 31000]", 1), 5, "agents[0].port_ranges[1]"},
		{"ports against port ranges", strings.Replace(base, "count: 2", "count: 2\n    ports: 5\n    port_ranges: [31000-31001]", 1), 3, "agents[0].ports"},
		{"attribute a list", strings.Replace(base, "count: 2", "count: 2\n    attributes: {zone: [a]}", 1), 5, "agents[0].attributes.zone"},
		{"no consumers", "version: 1\nagents: [{name: a, cpus: 1, memory: 1}]\n", 1, "consumers"},
		{"consumer without name", strings.Replace(base, "  - name: bu\n", "  - weight: 1\n", 1), 13, "consumers[0].name"},
		{"duplicate consumer", strings.Replace(base, "name: team", "name: bu", 1), 16, "consumers[0].children[0].name"},
		{"consumer name with space", strings.Replace(base, "name: team", "name: my team", 1), 16, "consumers[0].children[0].name"},
		{"negative weight", strings.Replace(base, "name: bu", "name: bu\n    weight: -1", 1), 14, "consumers[0].weight"},
		{"owned not a number", strings.Replace(base, "owned: {cpus: 8}", "owned: {cpus: lots}", 1), 17, "consumers[0].children[0].owned.cpus"},
		{"owned negative", strings.Replace(base, "owned: {cpus: 8}", "owned: {cpus: -8}", 1), 17, "consumers[0].children[0].owned.cpus"},
		{"owned unknown resource", strings.Replace(base, "owned: {cpus: 8}", "owned: {cores: 8}", 1), 17, "consumers[0].children[0].owned.cores"},
		{"owned above cluster", strings.Replace(base, "owned: {cpus: 16, memory: 64Gi}", "owned: {cpus: 33, memory: 64Gi}", 1), 14, "consumers[0].owned.cpus"},
		{"owned gpus above cluster", strings.Replace(base, "owned: {cpus: 16, memory: 64Gi}", "owned: {cpus: 16, memory: 64Gi, gpus: 5}", 1), 14, "consumers[0].owned.gpus"},
		{"children own more", strings.Replace(base, "owned: {cpus: 8}", "owned: {cpus: 17}", 1), 17, "consumers[0].children[0].owned.cpus"},
		{"owned above limit", strings.Replace(base, "owned: {cpus: 8}", "owned: {cpus: 8}\n        limit: {cpus: 4}", 1), 17, "consumers[0].children[0].owned.cpus"},
		{"lend not bool", strings.Replace(base, "name: bu", "name: bu\n    lend: maybe", 1), 14, "consumers[0].lend"},
		{"grace not duration", strings.Replace(base, "name: bu", "name: bu\n    grace: 30", 1), 14, "consumers[0].grace"},
		{"unknown parent", strings.Replace(base, "sessions:\n", "  - name: x\n    parent: nobody\nsessions:\n", 1), 19, "consumers[1].parent"},
		{"parent and nesting", strings.Replace(base, "name: team", "name: team\n        parent: bu", 1), 17, "consumers[0].children[0].parent"},
		{"parent cycle", strings.Replace(base, "consumers:\n", "consumers:\n  - name: x\n    parent: y\n  - name: y\n    parent: x\n", 1), 14, "consumers[0].parent"},
		{"too deep", deep(40), 3 + 2*maxDepth, "consumers[0]" + strings.Repeat(".children[0]", maxDepth)},
		{"unknown consumer", strings.Replace(base, "consumer: team", "consumer: nobody", 1), 20, "sessions[0].consumer"},
		{"consumer not a leaf", strings.Replace(base, "consumer: team", "consumer: bu", 1), 20, "sessions[0].consumer"},
		{"session without id", strings.Replace(base, "  - id: s\n", "  - user: u\n", 1), 19, "sessions[0].id"},
		{"id and name", strings.Replace(base, "id: s", "id: s\n    name: t", 1), 19, "sessions[0].name"},
		{"count with id", strings.Replace(base, "id: s", "id: s\n    count: 2", 1), 19, "sessions[0].count"},
		{"duplicate session id", base + "  - id: s\n    consumer: team\n    groups: [{name: g, cpus: 1}]\n", 24, "sessions[1].id"},
		{"expanded id clash", base + "  - name: t\n    count: 2\n    consumer: team\n    groups: [{name: g, cpus: 1}]\n  - id: t-0002\n    consumer: team\n    groups: [{name: g, cpus: 1}]\n", 28, "sessions[2].id"},
		{"bad kind", strings.Replace(base, "consumer: team", "consumer: team\n    kind: mpi", 1), 21, "sessions[0].kind"},
		{"bad policy", strings.Replace(base, "consumer: team", "consumer: team\n    policy: random", 1), 21, "sessions[0].policy"},
		{"submit_at bad", strings.Replace(base, "consumer: team", "consumer: team\n    submit_at: soon", 1), 21, "sessions[0].submit_at"},
		{"finish before submit", strings.Replace(base, "consumer: team", "consumer: team\n    submit_at: 1m\n    finish_at: 30s", 1), 22, "sessions[0].finish_at"},
		{"no groups", strings.Replace(base, "    groups:\n      - name: g\n        cpus: 1\n", "    groups: []\n", 1), 21, "sessions[0].groups"},
		{"group without name", strings.Replace(base, "      - name: g\n", "      - count: 1\n", 1), 22, "sessions[0].groups[0].name"},
		{"duplicate group", base + "      - name: g\n        cpus: 1\n", 24, "sessions[0].groups[1].name"},
		{"group asks nothing", strings.Replace(base, "        cpus: 1\n", "        count: 1\n", 1), 22, "sessions[0].groups[0].cpus"},
		{"task gpus 1.5", base + "        gpus: 1.5\n", 24, "sessions[0].groups[0].gpus"},
		{"task gpus abc", base + "        gpus: abc\n", 24, "sessions[0].groups[0].gpus"},
		{"min above max", base + "        min: 3\n        max: 2\n", 24, "sessions[0].groups[0].min"},
		{"count above max", base + "        count: 3\n        max: 2\n", 24, "sessions[0].groups[0].count"},
		{"count not whole", base + "        count: 1.5\n", 24, "sessions[0].groups[0].count"},
		{"constraint in and not_in", base + "        constraints: [{attribute: a, in: [x], not_in: [y]}]\n", 24, "sessions[0].groups[0].constraints[0].not_in"},
		{"constraint without op", base + "        constraints:\n          - attribute: a\n", 25, "sessions[0].groups[0].constraints[0].in"},
		{"constraint no values", base + "        constraints: [{attribute: a, in: []}]\n", 24, "sessions[0].groups[0].constraints[0].in"},
		{"unknown gpu model", base + "        gpus: 1\n        gpu_models: [H100]\n", 25, "sessions[0].groups[0].gpu_models[0]"},
		{"same_island without gpus", base + "        same_island: true\n", 24, "sessions[0].groups[0].same_island"},
		{"duration without unit", base + "        duration: 10\n", 24, "sessions[0].groups[0].duration"},
		{"unknown dist", base + "        duration: {dist: pareto, value: 1s}\n", 24, "sessions[0].groups[0].duration.dist"},
		{"dist missing param", base + "        duration: {dist: lognormal, median: 1s}\n", 24, "sessions[0].groups[0].duration.sigma"},
		{"dist wrong param", base + "        duration: {dist: fixed, value: 1s, mean: 2s}\n", 24, "sessions[0].groups[0].duration.mean"},
		{"dist bad param", base + "        duration:\n          dist: lognormal\n          median: 0s\n          sigma: 1\n", 26, "sessions[0].groups[0].duration.median"},
		{"uniform reversed", base + "        duration: {dist: uniform, min: 2s, max: 1s}\n", 24, "sessions[0].groups[0].duration.max"},
		{"stages on batch", strings.Replace(base, "consumer: team", "consumer: team\n    stages: [{tasks: 1, duration: 1s}]", 1), 21, "sessions[0].stages"},
		{"stage without tasks", strings.Replace(base, "consumer: team", "consumer: team\n    kind: spark\n    stages:\n      - duration: 1s", 1), 23, "sessions[0].stages[0].tasks"},
		{"stage zero tasks", strings.Replace(base, "consumer: team", "consumer: team\n    kind: spark\n    stages:\n      - {tasks: 0, duration: 1s}", 1), 23, "sessions[0].stages[0].tasks"},
		{"dynamic on batch", strings.Replace(base, "consumer: team", "consumer: team\n    dynamic_allocation: {max: 2}", 1), 21, "sessions[0].dynamic_allocation"},
		{"dynamic without max", strings.Replace(base, "consumer: team", "consumer: team\n    kind: spark\n    dynamic_allocation: {min: 1}", 1), 22, "sessions[0].dynamic_allocation.max"},
		{"dynamic initial above max", strings.Replace(base, "consumer: team", "consumer: team\n    kind: spark\n    dynamic_allocation: {initial: 5, max: 2}", 1), 22, "sessions[0].dynamic_allocation.initial"},
		{"dynamic min above max", strings.Replace(base, "consumer: team", "consumer: team\n    kind: spark\n    dynamic_allocation: {min: 5, initial: 5, max: 2}", 1), 22, "sessions[0].dynamic_allocation.min"},
		{"dynamic unknown group", strings.Replace(base, "consumer: team", "consumer: team\n    kind: spark\n    dynamic_allocation: {group: x, max: 2}", 1), 22, "sessions[0].dynamic_allocation.group"},
		{"dynamic and count", strings.Replace(base, "consumer: team", "consumer: team\n    kind: spark\n    dynamic_allocation: {max: 2}", 1) + "        count: 2\n", 26, "sessions[0].groups[0].count"},
		{"offer_fanout negative", base + "config: {offer_fanout: -1}\n", 24, "config.offer_fanout"},
		{"unknown config", base + "config: {fanout: 2}\n", 24, "config.fanout"},
		{"seed negative", base + "seed: -1\n", 24, "seed"},
		{"tick zero", base + "tick: 0s\n", 24, "tick"},
		{"merge key", strings.Replace(base, "  - name: cpu\n", "  - <<: {name: cpu}\n", 1), 3, "agents[0].<<"},
		{"null value", strings.Replace(base, "cpus: 8\n    memory: 32Gi", "cpus:\n    memory: 32Gi", 1), 5, "agents[0].cpus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-") + ".yaml"
			s, err := Parse(name, []byte(tc.file))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.file)
			}
			if s != nil {
				t.Errorf("returned a scenario with the error")
			}
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("error %q does not wrap api.ErrInvalid", err)
			}
			if n := strings.Count(err.Error(), api.ErrInvalid.Error()); n != 1 {
				t.Errorf("error %q says %q %d times", err, api.ErrInvalid, n)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %q is not an *Error", err)
			}
			want := Error{File: name, Line: tc.line, Field: tc.field}
			if diff := cmp.Diff(want, *e, cmpopts.IgnoreFields(Error{}, "Err")); diff != "" {
				t.Errorf("error %q is located otherwise (-want +got):\n%s", err, diff)
			}
			t.Log(err)
		})
	}
}

// deep is a consumer tree nested n deep.
func deep(n int) string {
	var b strings.Builder
	b.WriteString("version: 1\nconsumers:\n")
	for i := range n {
		ind := strings.Repeat("    ", i)
		fmt.Fprintf(&b, "%s  - name: c%d\n%s    children:\n", ind, i, ind)
	}
	return b.String()
}

// TestValidateBuilt checks Validate on a Scenario built in code: errors
// name fields by their index and have no line.
func TestValidateBuilt(t *testing.T) {
	good := func() *Scenario {
		return &Scenario{
			Name: "code", Version: Version, Tick: time.Second,
			Agents:    []scheduler.AgentSpec{{ID: "a", Resources: res(4000, gi)}},
			Consumers: []scheduler.ConsumerSpec{{Name: "c"}},
			Sessions: []Session{{Spec: scheduler.SessionSpec{ID: "s", Consumer: "c", Kind: scheduler.KindBatch, Policy: scheduler.Binpack,
				Groups: []scheduler.TaskGroup{{Name: "g", Resources: res(1000, 0), Count: 1}}}}},
		}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("a good scenario: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Scenario)
		field  string
	}{
		{"kind", func(s *Scenario) { s.Sessions[0].Spec.Kind = "" }, "sessions[0].kind"},
		{"consumer", func(s *Scenario) { s.Sessions[0].Spec.Consumer = "x" }, "sessions[0].consumer"},
		{"gpus without devices", func(s *Scenario) { s.Agents[0].Resources[scheduler.GPU] = 1000 }, "agents[0].gpus"},
		{"duration of unknown group", func(s *Scenario) { s.Sessions[0].Durations = map[string]Dist{"x": FixedDist(1)} }, "sessions[0].groups"},
		{"bad dist", func(s *Scenario) { s.Sessions[0].Durations = map[string]Dist{"g": {Kind: Fixed, Value: -1}} }, "sessions[0].groups[0].duration.value"},
		{"dynamic count", func(s *Scenario) {
			s.Sessions[0].Spec.Kind = scheduler.KindSpark
			s.Sessions[0].Dynamic = &DynamicAllocation{Group: "g", Initial: 2, Max: 3}
		}, "sessions[0].groups[0].count"},
		{"self parent", func(s *Scenario) { s.Consumers[0].Parent = "c" }, "consumers[0].parent"},
		{"version", func(s *Scenario) { s.Version = 0 }, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.change(s)
			err := s.Validate()
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if e.Field != tc.field || e.Line != 0 || e.File != "code" || !errors.Is(err, api.ErrInvalid) {
				t.Errorf("got %q (field %q, line %d), want field %q and no line", err, e.Field, e.Line, tc.field)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a not-exist error", err)
	}
}

// TestAliases checks that anchors and aliases stand for whole values.
func TestAliases(t *testing.T) {
	s, err := Parse("a.yaml", []byte(`version: 1
agents: [{name: a, cpus: 4, memory: 4Gi}]
consumers:
  - {name: c, owned: &share {cpus: 1, memory: 1Gi}}
  - {name: d, owned: *share}
sessions:
  - id: s1
    consumer: c
    groups: &groups
      - name: g
        cpus: 1
        duration: &d {dist: lognormal, median: 1s, sigma: 0.5}
  - id: s2
    consumer: d
    groups: *groups
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Consumers[0].Owned != s.Consumers[1].Owned || s.Consumers[1].Owned[scheduler.CPU] != 1000 {
		t.Errorf("owned through an alias: %v and %v", s.Consumers[0].Owned, s.Consumers[1].Owned)
	}
	if diff := cmp.Diff(s.Sessions[0].Spec.Groups, s.Sessions[1].Spec.Groups); diff != "" {
		t.Errorf("groups through an alias (-s1 +s2):\n%s", diff)
	}
	if diff := cmp.Diff(s.Sessions[0].Durations, s.Sessions[1].Durations); diff != "" {
		t.Errorf("durations through an alias (-s1 +s2):\n%s", diff)
	}
	// An alias that contains itself is refused, not followed forever.
	_, err = Parse("loop.yaml", []byte("version: 1\nagents: [{name: a, cpus: 1, memory: 1}]\nconsumers: [&c {name: c, children: [*c]}]\n"))
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a consumer that contains itself: got %v", err)
	}
	t.Log(err)
}
