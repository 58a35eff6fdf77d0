package master

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

// The master's tables, rebuilt by replay exactly as the live master built
// them: apply is the one way records change them.

type session struct {
	rec      sessionRecord
	finished time.Time
	// groups is the status when the session finished.
	groups []api.GroupStatus
	tasks  []*task // in launch order
	// unacked are the status updates of a framework session's tasks that
	// the program has not acknowledged, oldest first.
	unacked []api.StatusUpdate
	// streams are the live event streams (not persisted).
	streams map[*stream]struct{}
}

func (s *session) running() bool { return s.finished.IsZero() }

func (s *session) framework() bool { return s.rec.Spec.Kind == api.SessionFramework }

func (s *session) group(name string) *api.TaskGroup {
	for i := range s.rec.Spec.Groups {
		if s.rec.Spec.Groups[i].Name == name {
			return &s.rec.Spec.Groups[i]
		}
	}
	return nil
}

type task struct {
	api.Task
	seq uint64
	// inCore: the core runs the task (it has not ended it).
	inCore bool
	// heard: its agent reported it, so its launch is not sent again.
	heard bool
	// kill is a kill sent and not yet confirmed by a terminal update: it
	// is sent again when the agent's stream reconnects.
	kill *api.TaskKill
	// notice is why the task has a deadline; preempt says it is for a
	// preemption, not a reclaim.
	notice  string
	preempt bool
}

func (t *task) ended() bool { return api.TaskTerminal(t.State) }

type agent struct {
	reg   agentRecord
	attrs map[string]string
	lost  bool
	// unreachable: disconnected past the heartbeat timeout, so the core
	// places nothing new on it (AgentUpdated, unhealthy).
	unreachable bool
	// tasks are the tasks on the agent that have not ended.
	tasks map[string]*task

	// Not persisted. registered: the agent registered with this master
	// (after a restart, each must again, to be reconciled).
	lastSeen   time.Time
	stream     *stream
	registered bool
}

type offer struct {
	session string
	offer   api.Offer
}

// apply changes the tables (and the core) by one record: all of it, or,
// with an error, nothing.
func (m *Master) apply(r *record, tx *txn) error {
	switch {
	case r.ev != nil:
		return m.applyEvent(r.ev, tx)
	case r.Consumers != nil:
		return m.applyConsumers(*r.Consumers, tx)
	case r.Session != nil:
		return m.applySession(r.Session, tx)
	case r.Agent != nil:
		return m.applyAgent(r.Agent, tx)
	case r.Update != nil:
		return m.applyUpdate(r.Update, tx)
	case r.Kill != nil:
		return m.applyKill(r.Kill, tx)
	case r.Token != nil:
		if m.tokens[r.Token.ID] != nil {
			return fmt.Errorf("token %s exists: %w", r.Token.ID, api.ErrConflict)
		}
		m.tokens[r.Token.ID] = r.Token
		tx.after(m.publishTokens)
		return nil
	case r.Revoke != nil:
		if m.tokens[r.Revoke.ID] == nil {
			return fmt.Errorf("token %s: %w", r.Revoke.ID, api.ErrNotFound)
		}
		delete(m.tokens, r.Revoke.ID)
		tx.after(m.publishTokens)
		return nil
	case r.Acked != nil:
		s := m.sessions[r.Acked.Session]
		if s == nil {
			return fmt.Errorf("session %s: %w", r.Acked.Session, api.ErrNotFound)
		}
		acked := map[string]bool{}
		for _, u := range r.Acked.UUIDs {
			acked[u] = true
		}
		s.unacked = slices.DeleteFunc(s.unacked, func(u api.StatusUpdate) bool { return acked[u.UUID] })
		return nil
	case r.Forget != nil:
		return m.applyForget(r.Forget, tx)
	case r.Term != nil:
		t := m.tasks[r.Term.Task]
		if t == nil || !m.awaitsTerm(t) {
			return fmt.Errorf("SIGTERM of task %s: it awaits none: %w", r.Term.Task, api.ErrWrongState)
		}
		m.term(t, tx)
		return nil
	}
	return fmt.Errorf("empty record: %w", api.ErrInvalid)
}

// step steps the core and takes in its decisions.
func (m *Master) step(ev scheduler.Event, tx *txn) error {
	ready, err := m.core.Step(ev)
	if err != nil {
		return err
	}
	if _, tick := ev.(scheduler.Tick); tick {
		m.idle = ready.Empty()
	} else {
		m.idle = false
	}
	m.absorb(ready, tx)
	return nil
}

func (m *Master) applyEvent(ev scheduler.Event, tx *txn) error {
	var before scheduler.SessionStatus
	if e, ok := ev.(scheduler.SessionFinished); ok {
		before, _ = m.core.Session(e.Session)
	}
	if err := m.step(ev, tx); err != nil {
		return err
	}
	now := m.core.Now()
	switch e := ev.(type) {
	case scheduler.SessionFinished:
		if s := m.sessions[e.Session]; s != nil {
			s.finished = now
			s.groups = groupStatus(before)
			for i := range s.groups {
				s.groups[i].Running, s.groups[i].Pending = 0, 0
			}
			streams := slices.Collect(maps.Keys(s.streams))
			tx.after(func() {
				for _, st := range streams {
					st.close()
				}
			})
		}
	case scheduler.AgentLost:
		a := m.agents[e.ID]
		if a == nil {
			break
		}
		a.lost = true
		for _, t := range sortedTasks(a.tasks) {
			u := api.StatusUpdate{UUID: t.ID + "#lost", Task: t.ID, State: api.TaskLost, Reason: "agent-lost",
				Message: "its agent " + a.reg.ID + " was unreachable past the lost-agent timeout", Time: now}
			if !t.inCore {
				// A kill the agent never confirmed: the task is gone with it.
				u.UUID, u.State, u.Reason, u.Message = t.ID+"#killed", api.TaskKilled, t.Reason, t.Message
			}
			t.inCore = false
			m.endTask(t, u, tx)
		}
		tx.after(func() {
			if a.stream != nil {
				a.stream.close()
				a.stream = nil
			}
		})
	case scheduler.AgentUpdated:
		if a := m.agents[e.Agent.ID]; a != nil {
			a.unreachable = e.Unhealthy
		}
	case scheduler.OfferAccepted:
		delete(m.offers, e.Offer)
	case scheduler.OfferDeclined:
		delete(m.offers, e.Offer)
	}
	return nil
}

// applyForget drops finished sessions and their tasks. A session that
// runs, or has a task that has not ended, is refused: forgetting it would
// lose what an agent or a program may still report.
func (m *Master) applyForget(r *forgetRecord, tx *txn) error {
	for _, id := range r.Sessions {
		s := m.sessions[id]
		switch {
		case s == nil:
			return fmt.Errorf("forget session %s: %w", id, api.ErrNotFound)
		case s.running() || !allEnded(s.tasks):
			return fmt.Errorf("forget session %s: it has not finished: %w", id, api.ErrWrongState)
		}
	}
	for _, id := range r.Sessions {
		s := m.sessions[id]
		for _, t := range s.tasks {
			delete(m.tasks, t.ID)
		}
		delete(m.sessions, id)
		streams := slices.Collect(maps.Keys(s.streams))
		tx.after(func() {
			for _, st := range streams {
				st.close()
			}
		})
	}
	return nil
}

func groupStatus(st scheduler.SessionStatus) []api.GroupStatus {
	out := make([]api.GroupStatus, len(st.Groups))
	for i, g := range st.Groups {
		out[i] = api.GroupStatus{Name: g.Name, Count: g.Count, Running: g.Running, Pending: g.Pending}
	}
	return out
}

func (m *Master) applyConsumers(tree api.ConsumerTree, tx *txn) error {
	if err := m.step(scheduler.ConsumersSet{Consumers: scheduler.ConsumersFrom(tree)}, tx); err != nil {
		return err
	}
	m.consumers = tree
	m.leaves = leafPaths(tree)
	return nil
}

// leafPaths are the consumers without children.
func leafPaths(tree api.ConsumerTree) map[string]bool {
	leaves := map[string]bool{}
	for _, c := range tree.Consumers {
		leaves[c.Path] = true
	}
	for _, c := range tree.Consumers {
		delete(leaves, parentPath(c.Path))
	}
	return leaves
}

func parentPath(p string) string { return p[:strings.LastIndex(p, "/")] }

func (m *Master) applySession(r *sessionRecord, tx *txn) error {
	if m.sessions[r.ID] != nil {
		return fmt.Errorf("session %s exists: %w", r.ID, api.ErrConflict)
	}
	// In the table before the core places its tasks, out again if the
	// core refuses it.
	s := &session{rec: *r, streams: map[*stream]struct{}{}}
	m.sessions[r.ID] = s
	ev := scheduler.SessionSubmitted{Session: scheduler.SessionFrom(r.ID, r.Spec.Consumer, r.User, r.Spec)}
	if err := m.step(ev, tx); err != nil {
		delete(m.sessions, r.ID)
		return err
	}
	return nil
}

func (m *Master) applyAgent(r *agentRecord, tx *txn) error {
	spec := (&agent{reg: *r}).spec()
	a := m.agents[r.ID]
	var ev scheduler.Event = scheduler.AgentUpdated{Agent: spec}
	if a == nil || a.lost {
		ev = scheduler.AgentAdded{Agent: spec}
	}
	old, existed := a, a != nil
	if a == nil {
		a = &agent{tasks: map[string]*task{}}
	} else {
		cp := *a
		old = &cp
	}
	// The agent's new entry is in the table while the core places tasks
	// on it; the old one comes back if the core refuses.
	a.reg, a.attrs, a.lost, a.unreachable = *r, spec.Attributes, false, false
	m.agents[r.ID] = a
	if err := m.step(ev, tx); err != nil {
		if existed {
			*a = *old
		} else {
			delete(m.agents, r.ID)
		}
		return err
	}
	return nil
}

// spec is the agent as the core knows it.
func (a *agent) spec() scheduler.AgentSpec {
	return scheduler.AgentFromNode(a.reg.ID, a.reg.Hostname, a.reg.Resources, a.reg.Labels)
}

// reachable says the agent is heard from again: the core may place tasks
// on it again.
func (m *Master) reachable(tx *txn, a *agent) error {
	if !a.unreachable {
		return nil
	}
	m.log.Info("agent reachable again", "agent", a.reg.ID)
	return tx.log(eventRecord(scheduler.AgentUpdated{Agent: a.spec()}))
}

// forward reports whether a task in state from may go to state to: on
// through staging, running and an end, never back; a staging task that
// its agent has not reported may be reported staging.
func forward(t *task, to string) bool {
	rank := func(s string) int {
		switch s {
		case api.TaskStaging:
			return 0
		case api.TaskRunning:
			return 1
		}
		return 2
	}
	return rank(to) > rank(t.State) || (to == api.TaskStaging && t.State == api.TaskStaging && !t.heard)
}

func (m *Master) applyUpdate(r *updateRecord, tx *txn) error {
	u := r.Update
	t := m.tasks[u.Task]
	switch {
	case t == nil:
		return fmt.Errorf("update of task %s: %w", u.Task, api.ErrNotFound)
	case t.Agent != r.Agent:
		return fmt.Errorf("update of task %s from agent %s: the task is on %s: %w", u.Task, r.Agent, t.Agent, api.ErrConflict)
	case t.ended() || !forward(t, u.State):
		return fmt.Errorf("update of task %s: %s after %s: %w", u.Task, u.State, t.State, api.ErrConflict)
	}
	if api.TaskTerminal(u.State) && t.inCore {
		if err := m.step(scheduler.TaskFinished{Task: t.ID, Failed: u.State != api.TaskFinished}, tx); err != nil {
			return err
		}
		t.inCore = false
	}
	t.heard = true
	if !api.TaskTerminal(u.State) {
		t.State = u.State
		if u.Container != "" {
			t.Container = u.Container
		}
		m.sessionUpdate(t.Session, u, tx)
		return nil
	}
	if t.State == api.TaskStaging && u.State == api.TaskFailed && !tx.replay {
		m.metrics.launchFailure(u.Reason)
	}
	m.endTask(t, u, tx)
	return nil
}

// endTask ends a task with a terminal update: its state, exit, reason,
// and the update to its session.
func (m *Master) endTask(t *task, u api.StatusUpdate, tx *txn) {
	t.State = u.State
	if u.Container != "" {
		t.Container = u.Container
	}
	t.ExitCode = u.ExitCode
	// A kill's reason (reclaimed, preempted, killed) stays unless the
	// agent knows better (oom-killed).
	if u.Reason != "" {
		t.Reason = u.Reason
	}
	if u.Message != "" {
		t.Message = u.Message
	}
	u.Reason, u.Message = t.Reason, t.Message
	t.Ended = u.Time
	t.Deadline = time.Time{}
	t.kill = nil
	if a := m.agents[t.Agent]; a != nil {
		delete(a.tasks, t.ID)
	}
	if !tx.replay {
		m.metrics.taskEnded(u.State, t.Reason)
	}
	m.sessionUpdate(t.Session, u, tx)
}

// sessionUpdate passes a task's status update to its session's streams;
// a framework session's is kept until the program acknowledges it.
func (m *Master) sessionUpdate(id string, u api.StatusUpdate, tx *txn) {
	s := m.sessions[id]
	if s == nil {
		return
	}
	if s.framework() {
		s.unacked = append(s.unacked, u)
	}
	tx.after(func() { s.send(api.SessionEvent{Update: &u}) })
}

func (m *Master) applyKill(r *killRecord, tx *txn) error {
	t := m.tasks[r.Task]
	if t == nil || !t.inCore {
		return fmt.Errorf("kill task %s: it is not running: %w", r.Task, api.ErrConflict)
	}
	// Finished, not failed: its group needs one task fewer, so the task
	// is not started again.
	if err := m.step(scheduler.TaskFinished{Task: t.ID}, tx); err != nil {
		return err
	}
	t.inCore = false
	m.sendKill(t, api.TaskKill{Task: t.ID, Reason: "killed", Grace: m.killGrace(t)}, r.Reason, tx)
	return nil
}

// termAt is when a batch session's task under a notice gets its SIGTERM:
// its group's kill grace before the notice's deadline, so that it runs as
// long as it can and still has its grace to end cleanly.
func (m *Master) termAt(t *task) time.Time {
	return t.Deadline.Add(-time.Duration(m.killGrace(t)))
}

// term sends the SIGTERM of t's notice to its agent, with the notice's
// deadline for the SIGKILL.
func (m *Master) term(t *task, tx *txn) {
	delete(m.noticed, t.ID)
	m.sendKill(t, api.TaskKill{Task: t.ID, Reason: reclaimReason(t.preempt), Deadline: t.Deadline}, t.notice, tx)
}

// awaitsTerm reports whether t is under a notice whose SIGTERM has not
// been sent.
func (m *Master) awaitsTerm(t *task) bool {
	s := m.sessions[t.Session]
	return !t.ended() && !t.Deadline.IsZero() && t.kill == nil && s != nil && !s.framework()
}

// killGrace is the time a killed task of t's group has between SIGTERM
// and SIGKILL.
func (m *Master) killGrace(t *task) api.Duration {
	if s := m.sessions[t.Session]; s != nil {
		if g := s.group(t.Group); g != nil && g.KillGrace > 0 {
			return g.KillGrace
		}
	}
	return api.Duration(m.cfg.DefaultKillGrace)
}

// sendKill sends a kill to the task's agent and keeps it until the agent
// confirms the task's end.
func (m *Master) sendKill(t *task, k api.TaskKill, why string, tx *txn) {
	t.kill = &k
	t.Reason, t.Message = k.Reason, why
	m.toAgent(t.Agent, api.AgentMessage{Kill: &k}, tx)
}

// toAgent sends a message on the agent's stream, once the group is
// durable. With no stream, it is sent when the agent reconnects (see
// resend).
func (m *Master) toAgent(id string, msg api.AgentMessage, tx *txn) {
	a := m.agents[id]
	if a == nil {
		return
	}
	tx.after(func() {
		if a.stream != nil {
			a.stream.push(msg)
		}
	})
}

// absorb takes in the core's decisions: the tables change now (and on
// replay), the messages go out once the group is durable. The order is
// the one scheduler.Ready documents.
func (m *Master) absorb(r *scheduler.Ready, tx *txn) {
	now := m.core.Now()
	for _, x := range r.Rescinds {
		delete(m.offers, x.Offer)
		ev := api.SessionEvent{Rescind: &api.Rescind{Offer: x.Offer, Reason: x.Reason}}
		m.toSession(x.Session, ev, tx)
	}
	for _, x := range r.Conflicts {
		id := x.Session
		if id == "" {
			id = tx.conflictTo
		}
		m.toSession(id, api.SessionEvent{Conflict: &api.Rescind{Offer: x.Offer, Reason: x.Reason}}, tx)
	}
	for _, x := range r.Kills {
		t := m.tasks[x.Task]
		if t == nil {
			continue
		}
		t.inCore = false
		k := api.TaskKill{Task: t.ID, Reason: "killed", Grace: m.killGrace(t)}
		if !t.Deadline.IsZero() {
			// Its notice's deadline came: SIGKILL now.
			k.Reason, k.Grace, k.Deadline = reclaimReason(t.preempt), 0, t.Deadline
		}
		m.sendKill(t, k, x.Reason, tx)
	}
	for _, x := range r.Withdrawals {
		if t := m.tasks[x.Task]; t != nil {
			t.Deadline, t.notice = time.Time{}, ""
		}
		delete(m.noticed, x.Task)
		m.toSession(x.Session, api.SessionEvent{Withdrawal: &api.Notice{Task: x.Task, Reason: x.Reason}}, tx)
	}
	for _, x := range r.Notices {
		t := m.tasks[x.Task]
		if t == nil {
			continue
		}
		t.Deadline, t.preempt, t.notice = x.Deadline, x.Preempt, x.Reason
		m.toSession(x.Session, api.SessionEvent{Notice: &api.Notice{Task: x.Task, Deadline: x.Deadline, Reason: x.Reason}}, tx)
		if s := m.sessions[x.Session]; s != nil && !s.framework() {
			// The built-in scheduler's tasks end themselves: SIGTERM at
			// termAt, SIGKILL at the deadline. Until the SIGTERM, a
			// withdrawn notice leaves the task untouched.
			if now.Before(m.termAt(t)) {
				m.noticed[t.ID] = t
			} else {
				m.term(t, tx)
			}
		}
	}
	for _, x := range r.Offers {
		o := api.Offer{ID: x.ID, Agent: x.Agent, Resources: scheduler.WireResources(x.Resources),
			GPUs: slices.Clone(x.GPUs), Ports: slices.Clone(x.Ports), Revocable: x.Revocable}
		if a := m.agents[x.Agent]; a != nil {
			o.Attributes = a.attrs
		}
		m.offers[x.ID] = &offer{session: x.Session, offer: o}
		m.toSession(x.Session, api.SessionEvent{Offer: &o}, tx)
	}
	for _, x := range r.Launches {
		m.taskSeq++
		t := &task{seq: m.taskSeq, inCore: true, Task: api.Task{
			ID: x.Task, Session: x.Session, Group: x.Group, Agent: x.Agent, State: api.TaskStaging,
			Resources: scheduler.WireResources(x.Resources), GPUs: slices.Clone(x.GPUs), Ports: slices.Clone(x.Ports),
			Revocable: x.Revocable, Launched: now,
		}}
		m.tasks[t.ID] = t
		s := m.sessions[x.Session]
		if s != nil {
			s.tasks = append(s.tasks, t)
		}
		a := m.agents[x.Agent]
		if a == nil || s == nil {
			continue
		}
		a.tasks[t.ID] = t
		if !tx.replay {
			m.metrics.launches.Inc()
			tx.after(func() {
				if a.stream != nil {
					a.stream.push(api.AgentMessage{Launch: m.launchOf(s, t)})
				}
			})
		}
	}
}

func reclaimReason(preempt bool) string {
	if preempt {
		return "preempted"
	}
	return "reclaimed"
}

// launchOf is the message that starts a task on its agent.
func (m *Master) launchOf(s *session, t *task) *api.TaskLaunch {
	l := &api.TaskLaunch{Task: t.ID, Session: t.Session, Group: t.Group, Resources: t.Resources, GPUs: t.GPUs, Ports: t.Ports}
	if g := s.group(t.Group); g != nil {
		l.Container, l.PortMaps, l.KillGrace = g.Container, g.Ports, m.killGrace(t)
	}
	return l
}

// toSession sends an event to a session's streams once the group is
// durable.
func (m *Master) toSession(id string, ev api.SessionEvent, tx *txn) {
	if s := m.sessions[id]; s != nil {
		tx.after(func() { s.send(ev) })
	}
}

func (s *session) send(ev api.SessionEvent) {
	for st := range s.streams {
		st.push(ev)
	}
}

// resend is what an agent's new stream starts with: the launches it has
// not reported and the kills it has not confirmed.
func (m *Master) resend(a *agent) []any {
	var out []any
	for _, t := range sortedTasks(a.tasks) {
		if t.inCore && !t.heard {
			if s := m.sessions[t.Session]; s != nil {
				out = append(out, api.AgentMessage{Launch: m.launchOf(s, t)})
			}
		}
		if t.kill != nil {
			k := *t.kill
			out = append(out, api.AgentMessage{Kill: &k})
		}
	}
	return out
}

// replayTo is what a session's new stream starts with: its outstanding
// offers and notices, and the status updates not acknowledged.
func (m *Master) replayTo(s *session) []any {
	var out []any
	var offers []*offer
	for _, o := range m.offers {
		if o.session == s.rec.ID {
			offers = append(offers, o)
		}
	}
	slices.SortFunc(offers, func(a, b *offer) int {
		return cmp.Or(cmp.Compare(len(a.offer.ID), len(b.offer.ID)), cmp.Compare(a.offer.ID, b.offer.ID))
	})
	for _, o := range offers {
		ov := o.offer
		out = append(out, api.SessionEvent{Offer: &ov})
	}
	for _, t := range s.tasks {
		if !t.Deadline.IsZero() && !t.ended() {
			out = append(out, api.SessionEvent{Notice: &api.Notice{Task: t.ID, Deadline: t.Deadline, Reason: t.notice}})
		}
	}
	for _, u := range s.unacked {
		out = append(out, api.SessionEvent{Update: &u})
	}
	return out
}

func sortedTasks(m map[string]*task) []*task {
	ts := slices.Collect(maps.Values(m))
	slices.SortFunc(ts, func(a, b *task) int { return cmp.Compare(a.seq, b.seq) })
	return ts
}

func sortedAgents(m map[string]*agent) []*agent {
	as := slices.Collect(maps.Values(m))
	slices.SortFunc(as, func(a, b *agent) int { return cmp.Compare(a.reg.ID, b.reg.ID) })
	return as
}
