package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/scenario"
)

// Synthetic describes a generated multi-tenant workload: Agents agents of
// 32 cores and 128 GiB (GPUFraction of them with four A100s in two NVLink
// islands), a consumer tree of three business units that own 80% of the
// cluster between them and a lab that owns nothing, and Sessions sessions
// sharing Tasks tasks of work, arriving as a Poisson stream. One session
// in ten is Spark (stages on executors with dynamic allocation), one a GPU
// job (a gang on one NVLink island, when there are GPUs), one a framework
// answering its own offers, two pods spread over agents and the rest
// batch.
type Synthetic struct {
	Agents      int
	Sessions    int
	Tasks       int
	GPUFraction float64
	Seed        uint64
	// Arrival is the mean gap between sessions; 0 is 100ms.
	Arrival time.Duration
}

// Limits of a synthetic workload.
const (
	MaxSyntheticAgents   = 200000
	MaxSyntheticSessions = 1000000
	MaxSyntheticTasks    = 100000000
)

// Scenario generates the workload. The same Synthetic gives the same
// scenario.
func (y Synthetic) Scenario() (*scenario.Scenario, error) {
	switch {
	case y.Agents < 1 || y.Agents > MaxSyntheticAgents:
		return nil, fmt.Errorf("synthetic: agents %d: want 1 to %d: %w", y.Agents, MaxSyntheticAgents, api.ErrInvalid)
	case y.Sessions < 1 || y.Sessions > MaxSyntheticSessions:
		return nil, fmt.Errorf("synthetic: sessions %d: want 1 to %d: %w", y.Sessions, MaxSyntheticSessions, api.ErrInvalid)
	case y.Tasks < y.Sessions || y.Tasks > MaxSyntheticTasks:
		return nil, fmt.Errorf("synthetic: tasks %d: want at least one per session (%d) and at most %d: %w", y.Tasks, y.Sessions, MaxSyntheticTasks, api.ErrInvalid)
	case !(y.GPUFraction >= 0 && y.GPUFraction <= 1):
		return nil, fmt.Errorf("synthetic: gpu fraction %v: want 0 to 1: %w", y.GPUFraction, api.ErrInvalid)
	case y.Arrival < 0:
		return nil, fmt.Errorf("synthetic: arrival gap %v is negative: %w", y.Arrival, api.ErrInvalid)
	}
	if y.Arrival == 0 {
		y.Arrival = 100 * time.Millisecond
	}
	rng := rand.New(rand.NewPCG(y.Seed, y.Seed^0xc0ffee))
	sc := &scenario.Scenario{
		Name:    fmt.Sprintf("synthetic: %d agents, %d sessions, %d tasks, gpu fraction %g", y.Agents, y.Sessions, y.Tasks, y.GPUFraction),
		Version: scenario.Version, Seed: y.Seed, Tick: scenario.DefaultTick,
	}
	gpuAgents := int(float64(y.Agents)*y.GPUFraction + 0.5)
	var total scheduler.Resources
	for i := range y.Agents {
		a := scheduler.AgentSpec{
			ID:         fmt.Sprintf("agent-%06d", i+1),
			Resources:  scheduler.Res(32000, 128<<30),
			Attributes: map[string]string{"zone": string(rune('a' + i%3)), "arch": "amd64"},
		}
		// Every tenth agent with GPUs, as far as GPUFraction goes.
		if gpuAgents > 0 && i*gpuAgents/y.Agents != (i+1)*gpuAgents/y.Agents {
			a.Resources[scheduler.GPU] = 4000
			a.Attributes["gpu_model"] = "A100"
			for d := range 4 {
				a.GPUs = append(a.GPUs, scheduler.GPUDevice{ID: fmt.Sprintf("%s/gpu%d", a.ID, d), Model: "A100", MemoryBytes: 40 << 30, Island: d / 2})
			}
		}
		total = total.Add(a.Resources)
		sc.Agents = append(sc.Agents, a)
	}
	pct := func(p int64) scheduler.Resources {
		r := scheduler.Res(total[scheduler.CPU]*p/100, total[scheduler.Memory]*p/100)
		return r
	}
	gpus := total[scheduler.GPU] / 1000
	withGPU := func(r scheduler.Resources, n int64) scheduler.Resources {
		r[scheduler.GPU] = n * 1000
		return r
	}
	sc.Consumers = []scheduler.ConsumerSpec{
		{Name: "bu1", Owned: withGPU(pct(30), gpus/2)},
		{Name: "bu1-etl", Parent: "bu1", Owned: pct(20)},
		{Name: "bu1-ml", Parent: "bu1", Owned: withGPU(pct(10), gpus/2)},
		{Name: "bu2", Owned: pct(30), Grace: 15 * time.Second},
		{Name: "bu2-risk", Parent: "bu2", Owned: pct(20)},
		{Name: "bu2-reporting", Parent: "bu2", Owned: pct(10)},
		{Name: "bu3", Owned: withGPU(pct(20), gpus-gpus/2), Weight: 2},
		{Name: "bu3-ci", Parent: "bu3", Owned: pct(10)},
		{Name: "bu3-serving", Parent: "bu3", Owned: withGPU(pct(10), gpus-gpus/2)},
		{Name: "lab", Weight: 0.5, Limit: pct(30)},
	}
	leaves := []string{"bu1-etl", "bu2-risk", "bu3-ci", "bu2-reporting", "bu1-etl", "lab", "bu3-serving", "bu1-ml", "bu2-risk", "lab"}
	at := time.Duration(0)
	for i := range y.Sessions {
		// The tasks of session i: an even split, the remainder first.
		n := y.Tasks / y.Sessions
		if i < y.Tasks%y.Sessions {
			n++
		}
		s := scenario.Session{SubmitAt: at}
		at += scenario.Dist{Kind: scenario.Exponential, Mean: y.Arrival}.Sample(rng)
		s.Spec = scheduler.SessionSpec{
			ID: fmt.Sprintf("s%06d", i+1), Consumer: leaves[i%len(leaves)], User: fmt.Sprintf("user%d", i%50),
			Priority: rng.IntN(3), Policy: scheduler.Binpack,
		}
		if s.Spec.Consumer == "lab" {
			s.Spec.Priority = -1
		}
		cpu := int64(1+rng.IntN(4)) * 500
		mem := int64(1+rng.IntN(8)) << 30
		short := scenario.Dist{Kind: scenario.Lognormal, Median: 30 * time.Second, Sigma: 0.5}
		g := scheduler.TaskGroup{Name: "task", Resources: scheduler.Res(cpu, mem), Count: n}
		switch kind := i % 10; {
		case kind == 3: // Spark: the work is n stage tasks on executors
			s.Spec.Kind = scheduler.KindSpark
			execs := max(2, min(64, n/8))
			g = scheduler.TaskGroup{Name: "executor", Resources: scheduler.Res(4000, 16<<30), Count: 1, Max: execs}
			s.Dynamic = &scenario.DynamicAllocation{Group: "executor", Min: 1, Initial: 1, Max: execs,
				IdleTimeout: scenario.DefaultIdleTimeout, BacklogTimeout: scenario.DefaultBacklogTimeout}
			first := max(1, n*4/5)
			s.Stages = []scenario.Stage{{Tasks: first, Duration: scenario.Dist{Kind: scenario.Lognormal, Median: 2 * time.Second, Sigma: 1}}}
			if n-first > 0 {
				s.Stages = append(s.Stages, scenario.Stage{Tasks: n - first, Duration: scenario.Dist{Kind: scenario.Uniform, Min: time.Second, Max: 10 * time.Second}})
			}
		case kind == 7 && gpus > 0: // a GPU job
			s.Spec.Kind = scheduler.KindBatch
			per := []int64{1, 2, 4}[rng.IntN(3)]
			g = scheduler.TaskGroup{Name: "worker", Resources: withGPU(scheduler.Res(8000, 64<<30), per), Count: n,
				GPUModels: []string{"A100"}, SameIsland: per > 1}
			if n <= 8 {
				g.Min = n
			}
			s.Durations = map[string]scenario.Dist{g.Name: {Kind: scenario.Lognormal, Median: 5 * time.Minute, Sigma: 0.3}}
		case kind == 2:
			s.Spec.Kind = scheduler.KindFramework
			s.Durations = map[string]scenario.Dist{g.Name: short}
		case kind == 6 || kind == 9:
			s.Spec.Kind, s.Spec.Policy = scheduler.KindPods, scheduler.Spread
			if kind == 6 && gpus > 0 {
				g.Resources[scheduler.GPU] = 250
				g.GPUModels = []string{"A100"}
			}
			s.Durations = map[string]scenario.Dist{g.Name: {Kind: scenario.Lognormal, Median: 2 * time.Minute, Sigma: 0.5}}
		default:
			s.Spec.Kind = scheduler.KindBatch
			s.Durations = map[string]scenario.Dist{g.Name: short}
		}
		s.Spec.Groups = []scheduler.TaskGroup{g}
		sc.Sessions = append(sc.Sessions, s)
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("synthetic: %w", err)
	}
	return sc, nil
}
