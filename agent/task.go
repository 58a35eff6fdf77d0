package agent

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/caisson/caisson/api"
)

// Reasons of the updates the agent makes up itself (the others come from
// the container's termination or the master's kill).
const (
	ReasonLaunchFailed     = "launch-failed"
	ReasonOOMKilled        = "oom-killed"
	ReasonUnknownTask      = "unknown-task"
	ReasonContainerRemoved = "container-removed"
	// ReasonReplaced is the kill reason of the tasks a registration's
	// answer names.
	ReasonReplaced = "replaced"
)

// task is a task the agent runs. Its record's fields are written only by
// the task's own goroutine, under Agent.mu.
type task struct {
	id  string
	rec *taskRecord
	// kills takes the kills of the task to its goroutine.
	kills chan api.TaskKill
	// While the task launches: cancelLaunch stops the launch and
	// launchKill is the kill that did (under Agent.mu).
	cancelLaunch context.CancelFunc
	launchKill   *api.TaskKill
}

func newTask(rec *taskRecord) *task {
	return &task{id: rec.Launch.Task, rec: rec, kills: make(chan api.TaskKill, 8)}
}

func (a *Agent) taskOf(id string) (*task, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tasks[id]
	return t, ok
}

// launch starts a task, unless the agent knows it already (a launch the
// master sent again): its record is written and its staging update queued
// before anything of it runs, so a crash is recovered.
func (a *Agent) launch(ctx context.Context, l *api.TaskLaunch) {
	if l.Task == "" {
		a.log.Warn("the master sent a launch without a task ID")
		return
	}
	a.mu.Lock()
	if _, ok := a.tasks[l.Task]; ok || a.queue.hasTask(l.Task) {
		a.mu.Unlock()
		a.log.Debug("launch of a task the agent knows: ignored", "task", l.Task)
		return
	}
	t := newTask(&taskRecord{Launch: *l, State: api.TaskStaging})
	a.tasks[t.id] = t
	a.mu.Unlock()
	a.metrics.launches.Inc()
	if err := a.store.saveTask(t.rec); err != nil {
		u := a.newUpdate(t.id, api.TaskFailed)
		u.Reason, u.Message = ReasonLaunchFailed, err.Error()
		a.end(ctx, t, u, "")
		return
	}
	a.push(a.newUpdate(t.id, api.TaskStaging))
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if a.start(ctx, t) {
			a.watch(ctx, t)
		}
	}()
}

// push queues an update; an update that cannot be queued is logged.
func (a *Agent) push(u api.StatusUpdate) bool {
	if err := a.queue.push(u); err != nil {
		a.log.Error("status update lost", "task", u.Task, "state", u.State, "err", err)
		return false
	}
	return true
}

// start launches t's container and reports whether it runs. A launch that
// fails ends the task as failed (launch-failed), one that a kill stopped as
// killed, and leaves nothing behind. When ctx ends first, the task is left
// for recovery.
func (a *Agent) start(ctx context.Context, t *task) bool {
	begin := a.clock.Now()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.mu.Lock()
	killed := t.launchKill
	t.cancelLaunch = cancel
	a.mu.Unlock()
	var cid string
	var err error
	if killed == nil {
		var spec api.ContainerSpec
		spec, err = containerSpec(a.ID(), &t.rec.Launch)
		if err == nil {
			cid, err = a.cfg.Containers.Launch(lctx, spec, &t.rec.Launch)
		}
	}
	a.mu.Lock()
	t.cancelLaunch = nil
	killed = t.launchKill
	a.mu.Unlock()
	if killed != nil && err == nil && cid == "" {
		err = context.Canceled
	}
	if err != nil {
		if ctx.Err() != nil {
			return false // recovery reports it
		}
		u := a.newUpdate(t.id, api.TaskFailed)
		u.Reason, u.Message = ReasonLaunchFailed, err.Error()
		if killed != nil {
			u.State, u.Reason, u.Message = api.TaskKilled, killed.Reason, "killed before it started"
		} else {
			a.log.Warn("launch failed", "task", t.id, "err", err)
		}
		a.removeLeftovers(ctx, t.id)
		a.end(ctx, t, u, "")
		return false
	}
	a.mu.Lock()
	t.rec.Container, t.rec.State = cid, api.TaskRunning
	a.mu.Unlock()
	if err := a.store.saveTask(t.rec); err != nil {
		// The container carries the task's label: recovery finds it.
		a.log.Warn("task record", "task", t.id, "err", err)
	}
	u := a.newUpdate(t.id, api.TaskRunning)
	u.Container = cid
	a.push(u)
	a.metrics.launchSeconds.Observe(a.clock.Now().Sub(begin).Seconds())
	a.log.Info("task running", "task", t.id, "container", cid)
	return true
}

// removeLeftovers removes what a failed launch may have left of a task's
// container (the containerizer undoes its own; this is a second look).
func (a *Agent) removeLeftovers(ctx context.Context, taskID string) {
	list, err := a.cfg.Containers.List(ctx)
	if err != nil {
		a.log.Warn("list containers", "err", err)
		return
	}
	id := a.ID()
	for _, c := range list {
		if c.Spec.Labels[LabelTask] == taskID && c.Spec.Labels[LabelAgent] == id {
			a.removeContainer(ctx, c.ID)
		}
	}
}

func (a *Agent) removeContainer(ctx context.Context, id string) bool {
	if err := a.cfg.Containers.Remove(ctx, id, true); err != nil && !errors.Is(err, api.ErrNotFound) {
		a.log.Warn("remove container", "container", id, "err", err)
		return false
	}
	return true
}

// keepLog keeps the log of an ended task's container, for the agent's
// API to serve once the container is gone. It returns false when the
// agent is stopping (ctx is done) before the log is kept: the container
// stays for recovery. A log that cannot be kept otherwise is logged, and
// the container goes all the same.
func (a *Agent) keepLog(ctx context.Context, task, cid string) bool {
	err := a.kept.keep(task, func(w io.Writer) error {
		return a.cfg.Containers.Logs(ctx, cid, false, w)
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return false
	case errors.Is(err, api.ErrNotFound):
		a.log.Debug("no log to keep: the container is gone", "task", task, "container", cid)
	default:
		a.log.Warn("keeping the task's log", "task", task, "container", cid, "err", err)
	}
	return true
}

type waitResult struct {
	term *api.Termination
	err  error
}

// watch waits for t's container to end, and kills it when asked: SIGTERM
// at once, SIGKILL at the kill's deadline. The end becomes t's terminal
// update. When ctx ends first, the container is left running.
func (a *Agent) watch(ctx context.Context, t *task) {
	cid := t.rec.Container
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waited := make(chan waitResult, 1)
	wait := func() {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			term, err := a.cfg.Containers.Wait(wctx, cid)
			waited <- waitResult{term, err}
		}()
	}
	wait()
	var deadline, retry Timer
	stop := func(t Timer) {
		if t != nil {
			t.Stop()
		}
	}
	defer func() { stop(deadline); stop(retry) }()
	fire := func(t Timer) <-chan time.Time {
		if t == nil {
			return nil
		}
		return t.C()
	}
	if t.rec.Kill != nil { // a kill from before a restart
		a.signal(ctx, t, syscall.SIGTERM)
		deadline = a.clock.NewTimer(t.rec.Kill.Deadline.Sub(a.clock.Now()))
	}
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-waited:
			if r.err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("wait for the container; retrying", "task", t.id, "container", cid, "err", r.err)
				retry = a.clock.NewTimer(backoff(failures))
				failures++
				continue
			}
			a.end(ctx, t, a.terminal(t, r.term), cid)
			return
		case <-fire(retry):
			retry = nil
			wait()
		case k := <-t.kills:
			if at, ok := a.applyKill(ctx, t, k); ok {
				stop(deadline)
				deadline = a.clock.NewTimer(at.Sub(a.clock.Now()))
			}
		case <-fire(deadline):
			deadline = nil
			a.log.Info("kill deadline: SIGKILL", "task", t.id, "container", cid)
			a.signal(ctx, t, syscall.SIGKILL)
		}
	}
}

// applyKill records a kill of t and sends SIGTERM the first time. It
// returns the deadline for SIGKILL, and false when an earlier kill's comes
// first.
func (a *Agent) applyKill(ctx context.Context, t *task, k api.TaskKill) (time.Time, bool) {
	at := k.Deadline
	if at.IsZero() {
		grace := k.Grace.D()
		if grace == 0 {
			grace = t.rec.Launch.KillGrace.D()
		}
		if grace == 0 {
			grace = a.cfg.DefaultKillGrace
		}
		at = a.clock.Now().Add(grace)
	}
	first := t.rec.Kill == nil
	if !first && !at.Before(t.rec.Kill.Deadline) {
		return time.Time{}, false
	}
	kr := killRecord{Reason: k.Reason, Deadline: at}
	if !first {
		kr.Reason = t.rec.Kill.Reason
	}
	a.mu.Lock()
	t.rec.Kill = &kr
	a.mu.Unlock()
	if err := a.store.saveTask(t.rec); err != nil {
		a.log.Warn("task record", "task", t.id, "err", err)
	}
	if first {
		a.log.Info("killing task", "task", t.id, "reason", k.Reason, "deadline", at)
		a.signal(ctx, t, syscall.SIGTERM)
	}
	return at, true
}

func (a *Agent) signal(ctx context.Context, t *task, sig syscall.Signal) {
	err := a.cfg.Containers.Kill(ctx, t.rec.Container, sig)
	if err != nil && !errors.Is(err, api.ErrWrongState) && !errors.Is(err, api.ErrNotFound) {
		a.log.Warn("signal the container", "task", t.id, "signal", sig, "err", err)
	}
}

// terminal is the update of a task whose container ended: killed when the
// agent killed it, failed with oom-killed when it ran out of memory,
// finished when it exited 0, failed otherwise.
func (a *Agent) terminal(t *task, term *api.Termination) api.StatusUpdate {
	u := a.newUpdate(t.id, api.TaskFailed)
	u.Container = t.rec.Container
	if term == nil {
		u.State, u.Reason, u.Message = api.TaskLost, ReasonContainerRemoved, "the task's container was removed before its end was read"
		return u
	}
	code := term.ExitCode
	u.ExitCode = &code
	u.Message = term.Message
	switch {
	case t.rec.Kill != nil:
		u.State, u.Reason = api.TaskKilled, t.rec.Kill.Reason
	case term.Reason == api.ReasonOOM:
		u.Reason = ReasonOOMKilled
	case term.Reason == api.ReasonExited && code == 0:
		u.State = api.TaskFinished
	default:
		u.Reason = string(term.Reason)
	}
	return u
}

// end records t's terminal update, queues it, and then removes the
// container and forgets the task. The record keeps the update until the
// queue does, so a crash between them queues it again, with its UUID.
func (a *Agent) end(ctx context.Context, t *task, u api.StatusUpdate, cid string) {
	a.mu.Lock()
	t.rec.Terminal = &u
	a.mu.Unlock()
	if err := a.store.saveTask(t.rec); err != nil {
		a.log.Warn("task record", "task", t.id, "err", err)
	}
	if !a.push(u) {
		return // the record keeps it for a restart
	}
	a.metrics.ended(u)
	a.log.Info("task ended", "task", t.id, "state", u.State, "reason", u.Reason)
	a.forget(ctx, t, cid)
}

// forget keeps the log of a task whose end is queued, removes its
// container, then its record.
func (a *Agent) forget(ctx context.Context, t *task, cid string) {
	if cid != "" && (!a.keepLog(ctx, t.id, cid) || !a.removeContainer(ctx, cid)) {
		return // the record stays: recovery keeps the log and removes the container
	}
	if err := a.store.deleteTask(t.id); err != nil {
		a.log.Warn("task record", "task", t.id, "err", err)
		return
	}
	a.mu.Lock()
	delete(a.tasks, t.id)
	a.mu.Unlock()
	if a.forgotten != nil {
		a.forgotten(t.id)
	}
}

// kill asks t's goroutine to kill it, or stops its launch. A kill from
// the master of a task the agent does not know is answered with a lost
// update, so the master learns.
func (a *Agent) kill(ctx context.Context, k api.TaskKill, fromMaster bool) {
	if k.Task == "" {
		return
	}
	a.mu.Lock()
	t, ok := a.tasks[k.Task]
	if ok {
		if t.rec.Container == "" && t.rec.Terminal == nil {
			if t.launchKill == nil {
				t.launchKill = &k
			}
			if t.cancelLaunch != nil {
				t.cancelLaunch()
			}
		}
		a.mu.Unlock()
		select {
		case t.kills <- k:
		default: // kills are waiting already; the first decides
		}
		return
	}
	queued := a.queue.hasTask(k.Task)
	a.mu.Unlock()
	if queued || !fromMaster {
		return // its end is on its way
	}
	u := a.newUpdate(k.Task, api.TaskLost)
	u.Reason, u.Message = ReasonUnknownTask, "the agent does not know this task"
	a.push(u)
}
