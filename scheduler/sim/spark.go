package sim

import (
	"time"

	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/scenario"
)

// sparkState plays a Spark application's driver: its stages run one after
// the other, each stage's tasks on free executor slots (one per core of an
// executor), and with dynamic allocation it asks the core for more
// executors while tasks wait longer than the backlog timeout, and gives
// back executors idle longer than the idle timeout, down to the minimum.
// It asks for what the backlog needs at once, where Spark ramps up by
// doubling.
type sparkState struct {
	s      *scenario.Session
	ss     *simSession
	group  string // the executors' task group
	gi     int    // its index
	slots  int    // task slots per executor
	dyn    *scenario.DynamicAllocation
	stage  int // the stage running; len(stages) when all are done
	done   int // tasks of the stage completed
	wait   int // tasks of the stage not started
	run    int // tasks of the stage running
	execs  []*executor
	behind bool // tasks have waited since backlogAt
	backAt time.Duration
}

type executor struct {
	t      *simTask
	free   int
	alive  bool
	idleAt time.Duration
}

func newSpark(ss *simSession) *sparkState {
	s := ss.sc
	sp := &sparkState{s: s, ss: ss, dyn: s.Dynamic}
	sp.gi = 0
	if s.Dynamic != nil && s.Dynamic.Group != "" {
		for i, g := range s.Spec.Groups {
			if g.Name == s.Dynamic.Group {
				sp.gi = i
			}
		}
	} else {
		for i, g := range s.Spec.Groups {
			if _, ok := s.Durations[g.Name]; !ok {
				sp.gi = i
				break
			}
		}
	}
	g := s.Spec.Groups[sp.gi]
	sp.group = g.Name
	sp.slots = max(1, int(g.Resources[scheduler.CPU]/1000))
	return sp
}

func (sp *sparkState) start(r *runner) {
	sp.stage, sp.done, sp.run = 0, 0, 0
	sp.wait = sp.s.Stages[0].Tasks
	r.spark = append(r.spark, sp)
	sp.assign(r)
}

func (sp *sparkState) finished() bool { return sp.stage >= len(sp.s.Stages) }

func (sp *sparkState) addExecutor(r *runner, t *simTask) {
	e := &executor{t: t, free: sp.slots, alive: true, idleAt: r.now}
	t.exec = e
	sp.execs = append(sp.execs, e)
	sp.assign(r)
	sp.idle(r, e)
}

// assign starts waiting tasks on free slots, oldest executors first.
func (sp *sparkState) assign(r *runner) {
	for _, e := range sp.execs {
		for e.free > 0 && sp.wait > 0 {
			e.free--
			sp.wait--
			sp.run++
			r.push(&event{at: r.now + sp.s.Stages[sp.stage].Duration.Sample(r.rng), kind: evStageEnd, s: sp.ss, task: e.t})
		}
	}
	if sp.wait == 0 {
		sp.behind = false
	} else if !sp.behind {
		sp.behind, sp.backAt = true, r.now
		if sp.dyn != nil {
			r.push(&event{at: r.now + sp.dyn.BacklogTimeout, kind: evWake})
		}
	}
}

// idle notes an executor that has nothing to run.
func (sp *sparkState) idle(r *runner, e *executor) {
	if e.free == sp.slots {
		e.idleAt = r.now
		if sp.dyn != nil {
			r.push(&event{at: r.now + sp.dyn.IdleTimeout, kind: evWake})
		}
	}
}

func (sp *sparkState) stageTaskEnd(r *runner, t *simTask) error {
	e := t.exec
	if e == nil || !e.alive {
		return nil // the executor was lost: the task went back to wait
	}
	e.free++
	sp.run--
	sp.done++
	if sp.done == sp.s.Stages[sp.stage].Tasks {
		sp.stage++
		sp.done = 0
		if sp.finished() {
			return r.maybeDone(sp.ss)
		}
		sp.wait = sp.s.Stages[sp.stage].Tasks
	}
	sp.assign(r)
	// Only e can have come to be idle: assign only takes slots. An
	// executor idle before keeps the time it went idle.
	sp.idle(r, e)
	return nil
}

// lostExecutor puts the tasks of an executor that ended back to wait.
func (sp *sparkState) lostExecutor(r *runner, e *executor) {
	e.alive = false
	inflight := sp.slots - e.free
	sp.run -= inflight
	sp.wait += inflight
	for i, x := range sp.execs {
		if x == e {
			sp.execs = append(sp.execs[:i], sp.execs[i+1:]...)
			break
		}
	}
	if !sp.finished() && inflight > 0 {
		sp.assign(r)
	}
}

// timers runs dynamic allocation on a tick.
func (sp *sparkState) timers(r *runner) error {
	d := sp.dyn
	if d == nil || sp.finished() {
		return nil
	}
	st, ok := r.core.Session(sp.s.Spec.ID)
	if !ok {
		return nil
	}
	count := st.Groups[sp.gi].Count
	if sp.behind && r.now-sp.backAt >= d.BacklogTimeout {
		need := (sp.run + sp.wait + sp.slots - 1) / sp.slots
		target := min(d.Max, max(need, d.Min))
		sp.backAt = r.now
		r.push(&event{at: r.now + d.BacklogTimeout, kind: evWake})
		if target > count {
			r.m.submitted += int64(target - count)
			if err := r.step(scheduler.SessionUpdated{Session: sp.s.Spec.ID, Group: sp.group, Count: target}); err != nil {
				return err
			}
			count = target
		}
	}
	for _, e := range append([]*executor(nil), sp.execs...) {
		if count <= d.Min {
			break
		}
		if e.alive && e.free == sp.slots && r.now-e.idleAt >= d.IdleTimeout {
			r.end(e.t)
			r.m.finished++
			count--
			if err := r.step(scheduler.TaskFinished{Task: e.t.id}); err != nil {
				return err
			}
		}
	}
	return nil
}

// sparkTimers runs the timers of the Spark sessions still running.
func (r *runner) sparkTimers() error {
	keep := r.spark[:0]
	for _, sp := range r.spark {
		if sp.ss.finished || sp.finished() {
			continue
		}
		keep = append(keep, sp)
		if err := sp.timers(r); err != nil {
			return err
		}
	}
	clear(r.spark[len(keep):])
	r.spark = keep
	return nil
}
