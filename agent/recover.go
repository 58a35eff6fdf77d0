package agent

import (
	"context"
	"fmt"

	"github.com/caisson/caisson/api"
)

// recover rebuilds the agent's tasks from its records and the containers
// that carry its ID, before it registers: running containers are watched
// again (never restarted), those that ended while the agent was down get
// their terminal update, a task whose launch a crash interrupted fails,
// and containers of this agent that no record names are killed and
// removed.
func (a *Agent) recover(ctx context.Context) error {
	recs, bad, err := a.store.loadTasks()
	if err != nil {
		return err
	}
	for _, e := range bad {
		a.log.Error("a task record cannot be read; it is set aside", "err", e)
	}
	list, err := a.cfg.Containers.List(ctx)
	if err != nil {
		return fmt.Errorf("recover: list containers: %w", err)
	}
	id := a.ID()
	mine := map[string][]api.Container{}
	for _, c := range list {
		if id != "" && c.Spec.Labels[LabelAgent] == id {
			task := c.Spec.Labels[LabelTask]
			mine[task] = append(mine[task], c)
		}
	}
	var orphans []api.Container
	for _, rec := range recs {
		cs := mine[rec.Launch.Task]
		delete(mine, rec.Launch.Task)
		// The record's container, or the newest of the task's (List
		// gives the newest first) when the record has none yet.
		pick := -1
		for i, c := range cs {
			if c.ID == rec.Container || (rec.Container == "" && pick < 0) {
				pick = i
			}
		}
		var c *api.Container
		for i := range cs {
			if i == pick {
				c = &cs[i]
			} else {
				orphans = append(orphans, cs[i])
			}
		}
		a.recoverTask(ctx, rec, c)
	}
	for _, cs := range mine {
		orphans = append(orphans, cs...)
	}
	for _, c := range orphans {
		a.log.Warn("removing an orphan container: no task of this agent's has it", "container", c.ID, "task", c.Spec.Labels[LabelTask])
		a.removeContainer(ctx, c.ID)
	}
	return ctx.Err()
}

// recoverTask takes up a task of a previous run, with its container (nil
// when there is none).
func (a *Agent) recoverTask(ctx context.Context, rec *taskRecord, c *api.Container) {
	t := newTask(rec)
	a.mu.Lock()
	a.tasks[t.id] = t
	a.mu.Unlock()
	cid := rec.Container
	if c != nil {
		cid = c.ID
	}
	switch {
	case rec.Terminal != nil:
		// It ended; the crash came before its container or record was
		// gone, perhaps before its update was queued.
		if !a.queue.has(rec.Terminal.UUID) && !a.push(*rec.Terminal) {
			return
		}
		if c == nil {
			cid = ""
		}
		a.forget(ctx, t, cid)
	case c == nil || c.State == api.StateCreating:
		u := a.newUpdate(t.id, api.TaskFailed)
		u.Reason, u.Message = ReasonLaunchFailed, "agent restarted during launch"
		if rec.State == api.TaskRunning {
			u.State, u.Reason, u.Message = api.TaskLost, ReasonContainerRemoved, "the task's container is gone"
		}
		if c == nil {
			cid = ""
		}
		a.log.Warn("task lost to a restart of the agent", "task", t.id, "state", u.State)
		a.end(ctx, t, u, cid)
	default:
		if rec.State != api.TaskRunning || rec.Container != c.ID {
			// The crash came between the launch and its running update.
			a.mu.Lock()
			rec.State, rec.Container = api.TaskRunning, c.ID
			a.mu.Unlock()
			if err := a.store.saveTask(rec); err != nil {
				a.log.Warn("task record", "task", t.id, "err", err)
			}
			u := a.newUpdate(t.id, api.TaskRunning)
			u.Container = c.ID
			a.push(u)
		}
		if c.State == api.StateExited {
			// It ended while the agent was down: report it before the
			// registration lists it.
			if term, err := a.cfg.Containers.Wait(ctx, c.ID); err == nil {
				a.end(ctx, t, a.terminal(t, term), c.ID)
				return
			}
		}
		a.log.Info("task recovered", "task", t.id, "container", c.ID, "state", c.State)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.watch(ctx, t)
		}()
	}
}
