package sim

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/scenario"
)

// Options tune a run. The zero value is usable.
type Options struct {
	// OfferFanout, when above 0, replaces the scenario's offer_fanout (K).
	OfferFanout int
	// FrameworkDelay is how long a framework session takes to answer an
	// offer, in virtual time; the zero Dist is 50ms fixed. Offers answered
	// later hold (K=1) or race for (K>1) the resources longer.
	FrameworkDelay scenario.Dist
	// SLASlack is added to a consumer's grace period to make the time by
	// which it must hold its owned share once it asks for it; 0 is 5s.
	SLASlack time.Duration
	// VerifyEvery checks the core's invariants every this many ticks (and
	// always at the end); 0 is 1000.
	VerifyEvery int
	// Series records every consumer's share at each tick, for Chart.
	Series bool
	// Clock reads the wall clock for the decision latency; nil is
	// time.Now.
	Clock func() time.Time
}

// epoch is the wall time virtual time 0 stands for in the core's events.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type eventKind int

const (
	evSubmit   eventKind = iota // a session arrives
	evFinish                    // a session ends (finish_at, or its work is done)
	evTaskEnd                   // a task with a duration completes
	evDecide                    // a framework session answers an offer
	evStageEnd                  // a Spark stage task completes on an executor
	evWake                      // nothing but a tick: a Spark timer is due
)

type event struct {
	at    time.Duration
	seq   uint64
	kind  eventKind
	s     *simSession
	task  *simTask
	offer scheduler.Offer
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

type simSession struct {
	sc        *scenario.Session
	id        string
	submitted bool
	finished  bool
	// remaining counts, per group with a duration, the tasks still to
	// complete.
	remaining map[string]int
	spark     *sparkState
}

type simTask struct {
	id    string
	s     *simSession
	group string
	agent *simAgent
	res   scheduler.Resources
	gpus  []int
	ports []int
	exec  *executor // a Spark executor
	live  bool
}

type simAgent struct {
	spec scheduler.AgentSpec
	used scheduler.Resources
	gpu  []int64 // milli-GPUs used per device
	gpuI map[string]int
	// ports are the host ports in use, on an agent that names them.
	ports map[int]bool
}

// runner is one run's state.
type runner struct {
	sc    *scenario.Scenario
	opts  Options
	core  *scheduler.Core
	rng   *rand.Rand
	q     eventQueue
	seq   uint64
	now   time.Duration
	tick  time.Duration
	clock func() time.Time

	sessions []*simSession
	byID     map[string]*simSession
	tasks    map[string]*simTask
	agents   map[string]*simAgent
	held     scheduler.Resources // the ledger's sum over agents
	total    scheduler.Resources
	spark    []*sparkState // Spark sessions whose stages run

	m metrics
}

// Run replays a scenario against a new core in virtual time and reports
// what happened. It stops at the scenario's duration, or, when that is 0,
// once nothing is left to happen: every session finished, or what waits
// can never run.
func Run(ctx context.Context, sc *scenario.Scenario, opts Options) (*Report, error) {
	if sc == nil {
		return nil, fmt.Errorf("sim: no scenario: %w", api.ErrInvalid)
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	r, err := newRunner(sc, opts)
	if err != nil {
		return nil, err
	}
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	return r.report(), nil
}

func newRunner(sc *scenario.Scenario, opts Options) (*runner, error) {
	if opts.FrameworkDelay.Kind == "" {
		opts.FrameworkDelay = scenario.FixedDist(50 * time.Millisecond)
	}
	if opts.SLASlack <= 0 {
		opts.SLASlack = 5 * time.Second
	}
	if opts.VerifyEvery <= 0 {
		opts.VerifyEvery = 1000
	}
	if opts.OfferFanout < 0 {
		return nil, fmt.Errorf("sim: offer fan-out %d is negative: %w", opts.OfferFanout, api.ErrInvalid)
	}
	cfg := sc.Config
	if opts.OfferFanout > 0 {
		cfg.OfferFanout = opts.OfferFanout
	}
	tick := sc.Tick
	if tick <= 0 {
		tick = scenario.DefaultTick
	}
	r := &runner{
		sc: sc, opts: opts, core: scheduler.New(cfg), tick: tick, clock: opts.Clock,
		rng:    rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x5ca1ab1e)),
		byID:   make(map[string]*simSession, len(sc.Sessions)),
		tasks:  map[string]*simTask{},
		agents: make(map[string]*simAgent, len(sc.Agents)),
	}
	if r.clock == nil {
		r.clock = time.Now
	}
	r.m.init(r)
	if err := r.step(scheduler.ConsumersSet{Consumers: sc.Consumers}); err != nil {
		return nil, err
	}
	if err := r.step(scheduler.Tick{Now: epoch}); err != nil {
		return nil, err
	}
	for _, a := range sc.Agents {
		sa := &simAgent{spec: a, gpu: make([]int64, len(a.GPUs)), gpuI: make(map[string]int, len(a.GPUs))}
		for i, g := range a.GPUs {
			sa.gpuI[g.ID] = i
		}
		r.agents[a.ID] = sa
		r.total = r.total.Add(a.Resources)
		if err := r.step(scheduler.AgentAdded{Agent: a}); err != nil {
			return nil, err
		}
	}
	for i := range sc.Sessions {
		s := &sc.Sessions[i]
		ss := &simSession{sc: s, id: s.Spec.ID, remaining: map[string]int{}}
		for _, g := range s.Spec.Groups {
			if _, ok := s.Durations[g.Name]; ok {
				ss.remaining[g.Name] = g.Count
			}
		}
		if s.Spec.Kind == scheduler.KindSpark && len(s.Stages) > 0 {
			ss.spark = newSpark(ss)
		}
		r.sessions = append(r.sessions, ss)
		r.byID[ss.id] = ss
		r.push(&event{at: s.SubmitAt, kind: evSubmit, s: ss})
		if s.FinishAt > 0 {
			r.push(&event{at: s.FinishAt, kind: evFinish, s: ss})
		}
	}
	return r, nil
}

func (r *runner) push(e *event) {
	r.seq++
	e.seq = r.seq
	heap.Push(&r.q, e)
}

// step feeds the core one event, timing it, and applies what it decided.
func (r *runner) step(ev scheduler.Event) error {
	start := r.clock()
	ready, err := r.core.Step(ev)
	r.m.latency(r.clock().Sub(start))
	if err != nil {
		return fmt.Errorf("sim: at %v the core refused %T: %w", r.now, ev, err)
	}
	return r.apply(ready)
}

// apply acts on the core's decisions as the cluster would: kills and
// rescinds first, then notices, offers and launches.
func (r *runner) apply(rd *scheduler.Ready) error {
	for _, k := range rd.Kills {
		t := r.tasks[k.Task]
		if t == nil {
			return fmt.Errorf("sim: the core killed task %s, which is not running", k.Task)
		}
		r.m.tasksKilled++
		r.end(t)
	}
	for _, n := range rd.Notices {
		r.m.notice(r, n)
	}
	for _, o := range rd.Offers {
		r.push(&event{at: r.now + r.opts.FrameworkDelay.Sample(r.rng), kind: evDecide, s: r.byID[o.Session], offer: o})
	}
	for _, l := range rd.Launches {
		if err := r.launch(l); err != nil {
			return err
		}
	}
	return nil
}

// launch starts a task on the ledger, checking that the agent is not
// over-committed, and schedules its end.
func (r *runner) launch(l scheduler.Launch) error {
	s := r.byID[l.Session]
	a := r.agents[l.Agent]
	if s == nil || a == nil {
		return fmt.Errorf("sim: the core launched %s of unknown session %s or on unknown agent %s", l.Task, l.Session, l.Agent)
	}
	if r.tasks[l.Task] != nil {
		r.m.overcommit++ // launched twice
		return nil
	}
	t := &simTask{id: l.Task, s: s, group: l.Group, agent: a, res: l.Resources, live: true}
	a.used = a.used.Add(l.Resources)
	r.held = r.held.Add(l.Resources)
	if !a.used.Fits(a.spec.Resources) {
		r.m.overcommit++
	}
	per := perDevice(l.Resources[scheduler.GPU], len(l.GPUs))
	for _, id := range l.GPUs {
		i, ok := a.gpuI[id]
		if !ok {
			return fmt.Errorf("sim: task %s was granted unknown GPU %s of agent %s", l.Task, id, l.Agent)
		}
		t.gpus = append(t.gpus, i)
		if a.gpu[i] += per; a.gpu[i] > 1000 {
			r.m.overcommit++
		}
	}
	if len(l.Ports) > 0 && a.ports == nil {
		a.ports = map[int]bool{}
	}
	for _, p := range l.Ports {
		if a.ports[p] || !slices.ContainsFunc(a.spec.PortRanges, func(pr api.PortRange) bool { return pr.Begin <= p && p <= pr.End }) {
			r.m.overcommit++ // a port in use, or not the agent's
		}
		a.ports[p] = true
	}
	t.ports = slices.Clone(l.Ports)
	r.tasks[t.id] = t
	r.m.placed++
	if s.spark != nil && l.Group == s.spark.group {
		s.spark.addExecutor(r, t)
		return nil
	}
	if d, ok := s.sc.Durations[l.Group]; ok {
		r.push(&event{at: r.now + d.Sample(r.rng), kind: evTaskEnd, task: t})
	}
	return nil
}

// perDevice is what a task holds of each GPU it was granted: the ledger
// keeps its own reckoning rather than the core's, to check it.
func perDevice(milli int64, devices int) int64 {
	if devices > 1 || milli >= 1000 {
		return 1000
	}
	return milli
}

// end takes a task off the ledger: it finished, failed or was killed.
func (r *runner) end(t *simTask) {
	if !t.live {
		return
	}
	t.live = false
	delete(r.tasks, t.id)
	a := t.agent
	a.used = a.used.Sub(t.res)
	r.held = r.held.Sub(t.res)
	per := perDevice(t.res[scheduler.GPU], len(t.gpus))
	for _, i := range t.gpus {
		a.gpu[i] -= per
	}
	for _, p := range t.ports {
		delete(a.ports, p)
	}
	if t.exec != nil {
		t.s.spark.lostExecutor(r, t.exec)
	}
}

func (r *runner) run(ctx context.Context) error {
	var lastTick time.Duration
	needTick := true
	ticks := 0
	const never = time.Duration(math.MaxInt64)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		te := never
		if len(r.q) > 0 {
			te = r.q[0].at
		}
		var tt time.Duration
		if needTick {
			// The next tick of the grid, after the last one and not
			// before now.
			tt = max(lastTick+r.tick, (r.now+r.tick-1)/r.tick*r.tick)
		} else {
			next := te
			if d, ok := r.core.NextDeadline(); ok {
				next = min(next, d.Sub(epoch))
			}
			if next == never {
				break // nothing more can happen
			}
			// The first tick at or after it.
			tt = max(lastTick+r.tick, (next+r.tick-1)/r.tick*r.tick)
		}
		if d := r.sc.Duration; d > 0 && min(te, tt) > d {
			r.advance(d)
			break
		}
		if te <= tt {
			r.advance(te)
			for len(r.q) > 0 && r.q[0].at == te {
				if err := r.handle(heap.Pop(&r.q).(*event)); err != nil {
					return err
				}
			}
			needTick = true
			continue
		}
		r.advance(tt)
		start := r.clock()
		ready, err := r.core.Step(scheduler.Tick{Now: epoch.Add(tt)})
		r.m.latency(r.clock().Sub(start))
		if err != nil {
			return fmt.Errorf("sim: tick at %v: %w", tt, err)
		}
		needTick = !ready.Empty()
		if err := r.apply(ready); err != nil {
			return err
		}
		lastTick = tt
		ticks++
		r.m.ticks++
		if ticks%r.opts.VerifyEvery == 0 {
			r.m.verify(r)
		}
		if err := r.sparkTimers(); err != nil {
			return err
		}
		r.m.checkpoint(r)
	}
	r.m.verify(r)
	r.m.finish(r)
	return nil
}

// advance moves virtual time forward, integrating what the cluster held.
func (r *runner) advance(to time.Duration) {
	if to <= r.now {
		return
	}
	r.m.integrate(r, to-r.now)
	r.now = to
}

func (r *runner) handle(e *event) error {
	switch e.kind {
	case evSubmit:
		s := e.s
		s.submitted = true
		for _, g := range s.sc.Spec.Groups {
			r.m.submitted += int64(g.Count)
		}
		if err := r.step(scheduler.SessionSubmitted{Session: s.sc.Spec}); err != nil {
			return err
		}
		if s.spark != nil {
			s.spark.start(r)
		}
		return r.maybeDone(s)
	case evFinish:
		return r.finish(e.s)
	case evTaskEnd:
		t := e.task
		if !t.live {
			return nil // killed before it completed
		}
		r.end(t)
		r.m.finished++
		if n, ok := t.s.remaining[t.group]; ok {
			t.s.remaining[t.group] = n - 1
		}
		if err := r.step(scheduler.TaskFinished{Task: t.id}); err != nil {
			return err
		}
		return r.maybeDone(t.s)
	case evDecide:
		return r.decide(e.s, e.offer)
	case evStageEnd:
		return e.s.spark.stageTaskEnd(r, e.task)
	case evWake:
		return nil
	}
	return nil
}

// maybeDone finishes a session without finish_at once its work is done:
// every group with a duration has completed its tasks and every stage is
// complete. A session with neither runs until finish_at or the end.
func (r *runner) maybeDone(s *simSession) error {
	if s.finished || !s.submitted || s.sc.FinishAt > 0 {
		return nil
	}
	if len(s.remaining) == 0 && s.spark == nil {
		return nil
	}
	for _, n := range s.remaining {
		if n > 0 {
			return nil
		}
	}
	if s.spark != nil && !s.spark.finished() {
		return nil
	}
	return r.finish(s)
}

func (r *runner) finish(s *simSession) error {
	if s.finished || !s.submitted {
		return nil
	}
	s.finished = true
	r.m.sessionsFinished++
	return r.step(scheduler.SessionFinished{Session: s.id})
}

// decide answers an offer as a framework would: as many of its waiting
// tasks as fit the offered resources, group by group, on an agent that
// meets their constraints and GPU models; a decline when none does.
func (r *runner) decide(s *simSession, o scheduler.Offer) error {
	st, ok := r.core.Session(s.id)
	if !ok || s.finished {
		return nil
	}
	a := r.agents[o.Agent]
	left := o.Resources
	gpusLeft := int64(len(o.GPUs)) * 1000
	var tasks []scheduler.AcceptedTask
	for i, g := range s.sc.Spec.Groups {
		pending := st.Groups[i].Pending
		if pending == 0 || !meets(g, a.spec) {
			continue
		}
		n := 0
		for n < pending && g.Resources.Fits(left) && g.Resources[scheduler.GPU] <= gpusLeft {
			left = left.Sub(g.Resources)
			gpusLeft -= g.Resources[scheduler.GPU]
			n++
		}
		if n > 0 {
			tasks = append(tasks, scheduler.AcceptedTask{Group: g.Name, Count: n})
		}
	}
	if len(tasks) == 0 {
		return r.step(scheduler.OfferDeclined{Offer: o.ID})
	}
	return r.step(scheduler.OfferAccepted{Offer: o.ID, Tasks: tasks})
}

// meets reports whether an agent meets a group's constraints and, for a
// GPU task, has a GPU of a model the group may use.
func meets(g scheduler.TaskGroup, a scheduler.AgentSpec) bool {
	for _, c := range g.Constraints {
		if !c.Match(a.Attributes) {
			return false
		}
	}
	if g.Resources[scheduler.GPU] == 0 || len(g.GPUModels) == 0 {
		return true
	}
	for _, m := range g.GPUModels {
		if a.Attributes["gpu_model"] == m {
			return true
		}
		for _, d := range a.GPUs {
			if d.Model == m {
				return true
			}
		}
	}
	return false
}
