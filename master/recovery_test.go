package master

import (
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/google/go-cmp/cmp"
)

func (c *cluster) seq() uint64 { return inLoop(c, func(m *Master) uint64 { return m.seq }) }

func (c *cluster) task(id string) api.Task {
	c.tb.Helper()
	var t api.Task
	c.adminClient().must(http.MethodGet, taskPath(id), nil, http.StatusOK, &t)
	return t
}

// TestStatusUpdateIdempotence: an update is acknowledged every time it
// comes, and applied once; an update behind what the master knows
// changes nothing; an agent that runs a task the master does not know is
// told to kill it.
func TestStatusUpdateIdempotence(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node1", nodeResources(4, 8<<30), nil).start()
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("job", 2, 1), http.StatusCreated, nil)
	t1, t2 := a.nextLaunch().Task, a.nextLaunch().Task

	running := update(t1, api.TaskRunning)
	if diff := cmp.Diff(api.Acks{UUIDs: []string{running.UUID}}, a.report(running)); diff != "" {
		t.Errorf("acks (-want +got):\n%s", diff)
	}
	seq := s.seq()
	for range 3 {
		if diff := cmp.Diff(api.Acks{UUIDs: []string{running.UUID}}, a.report(running)); diff != "" {
			t.Errorf("acks of a repeat (-want +got):\n%s", diff)
		}
	}
	if got := s.seq(); got != seq {
		t.Errorf("repeats of an update wrote %d records", got-seq)
	}
	failed := update(t1, api.TaskFailed)
	failed.ExitCode, failed.Reason = exit(137), "oom-killed"
	a.report(failed)
	seq = s.seq()
	// Late, and again: acknowledged, nothing changes.
	a.report(running, failed, update(t1, api.TaskStaging))
	if got := s.seq(); got != seq {
		t.Errorf("updates behind the task's state wrote %d records", got-seq)
	}
	if got := s.task(t1); got.State != api.TaskFailed || got.Reason != "oom-killed" || *got.ExitCode != 137 {
		t.Errorf("task after late updates: %+v", got)
	}
	// The failed task is placed again: a new task, launched once.
	t3 := a.nextLaunch().Task
	if t3 == t1 || t3 == t2 {
		t.Errorf("the failed task's replacement is %s", t3)
	}
	// A task the master never launched: killed. (So is t1, which the
	// late running update says runs.)
	a.report(update("nosuch/work/9", api.TaskRunning))
	next(t, a.msgs, "the kill of a task the master never launched", func(m api.AgentMessage) bool {
		return m.Kill != nil && m.Kill.Task == "nosuch/work/9"
	})
}

// TestMasterRestart: a master stopped at any point and started again from
// the same store has the same state; agents register again with what they
// run; tasks the agents run are not launched again, tasks whose launch
// never reached its agent are lost and placed again.
func TestMasterRestart(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node-a", nodeResources(2, 8<<30), nil).start()
	b := s.newAgent(s.agentTok, "node-b", nodeResources(2, 8<<30), nil).start()
	var first api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("first", 4, 1), http.StatusCreated, &first)
	var running []string
	for _, ag := range []*fakeAgent{a, b} {
		for range 2 {
			l := ag.nextLaunch()
			ag.report(update(l.Task, api.TaskRunning))
			running = append(running, l.Task)
		}
	}
	// A third agent registers but never connects: the second session's
	// tasks are placed there and never sent.
	c := s.newAgent(s.agentTok, "node-c", nodeResources(2, 8<<30), nil)
	c.register()
	var second api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("second", 2, 1), http.StatusCreated, &second)
	var unsent []string
	for _, tk := range tasksOf(s.cluster, second.ID) {
		if tk.Agent != c.ID {
			t.Fatalf("task %s of the second session is on %s, want the unconnected %s", tk.ID, tk.Agent, c.ID)
		}
		unsent = append(unsent, tk.ID)
	}
	before := sessionsOf(s.cluster)

	s.restart()

	if diff := cmp.Diff(before, sessionsOf(s.cluster)); diff != "" {
		t.Errorf("sessions after a restart (-want +got):\n%s", diff)
	}
	// The agents' streams broke with the old master: they register again
	// with what they run, and connect. Until they register, the master
	// takes nothing from them.
	if got, e := a.cl.call(http.MethodPost, "/v1/agent/heartbeat", api.Heartbeat{Agent: a.ID}, nil); got != http.StatusNotFound || e.Field != "agent" {
		t.Errorf("heartbeat before registering with the restarted master: %d %+v, want 404 naming the agent", got, e)
	}
	for _, ag := range []*fakeAgent{a, b, c} {
		ag.waitGone()
		if kill := ag.register().Kill; len(kill) != 0 {
			t.Errorf("agent %s is told to kill %v", ag.ID, kill)
		}
		ag.connect()
	}
	for _, id := range unsent {
		if got := s.task(id); got.State != api.TaskLost || got.Reason != ReasonLostByAgent {
			t.Errorf("task %s whose launch never reached its agent: %s (%s)", id, got.State, got.Reason)
		}
	}
	// Placed again on the third agent, under new IDs.
	var replaced []string
	for range unsent {
		l := c.nextLaunch()
		replaced = append(replaced, l.Task)
		c.report(update(l.Task, api.TaskRunning))
	}
	if slices.ContainsFunc(replaced, func(id string) bool { return slices.Contains(unsent, id) }) {
		t.Errorf("replacements %v reuse the IDs of the lost tasks %v", replaced, unsent)
	}
	// A second restart, now that all run: nothing is launched again.
	s.restart()
	for _, ag := range []*fakeAgent{a, b, c} {
		ag.waitGone()
		ag.register()
		ag.connect()
	}
	for _, id := range append(running, replaced...) {
		if got := s.task(id); got.State != api.TaskRunning {
			t.Errorf("task %s after the restarts: %s", id, got.State)
		}
	}
	for _, ag := range []*fakeAgent{a, b, c} {
		ag.mu.Lock()
		for task, n := range ag.launches {
			if n != 1 {
				t.Errorf("agent %s received %d launches of %s, want 1", ag.ID, n, task)
			}
		}
		ag.mu.Unlock()
	}
	// The sessions run to their end on the restored master.
	for _, ag := range []*fakeAgent{a, b, c} {
		ag.mu.Lock()
		var ids []string
		for id := range ag.runs {
			ids = append(ids, id)
		}
		ag.mu.Unlock()
		sort.Strings(ids)
		for _, id := range ids {
			u := update(id, api.TaskFinished)
			u.ExitCode = exit(0)
			ag.report(u)
		}
	}
	for _, id := range []string{first.ID, second.ID} {
		var sess api.Session
		s.ml.must(http.MethodGet, "/v1/sessions/"+id, nil, http.StatusOK, &sess)
		if sess.State != "finished" {
			t.Errorf("session %s after its tasks finished: %s %+v", id, sess.State, sess.Groups)
		}
	}
}

// TestMasterRestartFromSnapshot: the same, with snapshots taken every few
// records, so that the restart loads a snapshot and replays a short log.
func TestMasterRestartFromSnapshot(t *testing.T) {
	s := newSetup(t, clusterOptions{config: func(c *Config) { c.SnapshotEvery = 3 }})
	a := s.newAgent(s.agentTok, "node-a", nodeResources(4, 8<<30), nil).start()
	var sess api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("job", 3, 1), http.StatusCreated, &sess)
	for range 3 {
		a.report(update(a.nextLaunch().Task, api.TaskRunning))
	}
	before := sessionsOf(s.cluster)
	beforeTasks := tasksOf(s.cluster, sess.ID)
	if snap := inLoop(s.cluster, func(m *Master) uint64 { return m.snapSeq }); snap == 0 {
		t.Fatal("no snapshot was taken")
	}
	s.restart()
	if diff := cmp.Diff(before, sessionsOf(s.cluster)); diff != "" {
		t.Errorf("sessions after a restart (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(beforeTasks, tasksOf(s.cluster, sess.ID)); diff != "" {
		t.Errorf("tasks after a restart (-want +got):\n%s", diff)
	}
	// The restored master goes on: the agent comes back, the tasks end,
	// and so does the session.
	a.waitGone()
	a.register()
	a.connect()
	for _, tk := range beforeTasks {
		if got := s.task(tk.ID); got.State != api.TaskRunning {
			t.Errorf("task %s after the restart: %s", tk.ID, got.State)
		}
		u := update(tk.ID, api.TaskFinished)
		u.ExitCode = exit(0)
		a.report(u)
	}
	s.ml.must(http.MethodGet, "/v1/sessions/"+sess.ID, nil, http.StatusOK, &sess)
	if sess.State != "finished" {
		t.Errorf("session after its tasks ended on the restored master: %s", sess.State)
	}
}

func tasksOf(c *cluster, session string) []api.Task {
	c.tb.Helper()
	var out []api.Task
	c.adminClient().must(http.MethodGet, "/v1/tasks?session="+session, nil, http.StatusOK, &out)
	return out
}

func sessionsOf(c *cluster) []api.Session {
	c.tb.Helper()
	var out []api.Session
	c.adminClient().must(http.MethodGet, "/v1/sessions?all=true", nil, http.StatusOK, &out)
	return out
}

// TestLostAgent: an agent silent past the heartbeat timeout is
// unreachable: nothing new is placed on it; past the lost-agent timeout it
// is lost: its tasks are lost and placed again on another agent; when it
// comes back, it is told to kill the tasks that were replaced.
func TestLostAgent(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node-a", nodeResources(4, 8<<30), nil).start()
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("job", 1, 2), http.StatusCreated, nil)
	old := a.nextLaunch().Task
	a.report(update(old, api.TaskRunning))
	b := s.newAgent(s.agentTok, "node-b", nodeResources(4, 8<<30), nil).start()

	a.disconnect()
	s.waitDetached(a.ID)
	// Unreachable, not yet lost: its task stays; a new one goes to the
	// other agent, although binpack would fill the busier one first.
	s.advance(DefaultHeartbeatTimeout + DefaultAgentLostTimeout/2)
	if got := agentStates(s.cluster); got[a.ID] != agentDisconnected || got[b.ID] != agentConnected {
		t.Errorf("agent states half way: %v", got)
	}
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("later", 1, 2), http.StatusCreated, nil)
	b.report(update(b.nextLaunch().Task, api.TaskRunning))
	if got := s.task(old); got.State != api.TaskRunning {
		t.Errorf("the unreachable agent's task: %s", got.State)
	}
	s.advance(DefaultAgentLostTimeout / 2)
	if got := agentStates(s.cluster); got[a.ID] != agentLost {
		t.Errorf("agent %s after the lost-agent timeout: %s", a.ID, got[a.ID])
	}
	if got := s.task(old); got.State != api.TaskLost || got.Reason != ReasonAgentLost {
		t.Errorf("the lost agent's task: %s (%s)", got.State, got.Reason)
	}
	replacement := b.nextLaunch().Task
	b.report(update(replacement, api.TaskRunning))

	// The agent comes back with the task it still runs: it is told to
	// kill it.
	reg := a.register()
	if diff := cmp.Diff([]string{old}, reg.Kill); diff != "" || reg.ID != a.ID {
		t.Errorf("registration of the returning agent: ID %s, kill (-want +got):\n%s", reg.ID, diff)
	}
	if got := agentStates(s.cluster); got[a.ID] != agentConnected {
		t.Errorf("the returning agent: %s", got[a.ID])
	}
	// Its updates of the replaced task change nothing.
	a.connect()
	a.report(update(old, api.TaskKilled))
	if got := s.task(old); got.State != api.TaskLost {
		t.Errorf("the replaced task after its agent's update: %s", got.State)
	}
	if got := a.launchCount(replacement) + b.launchCount(old); got != 0 {
		t.Errorf("%d launches crossed agents", got)
	}
	// Back in service: it takes new work again.
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("again", 1, 4), http.StatusCreated, nil)
	a.nextLaunch()
	s.restart()
}

// TestUnreachableAgentReturns: an agent that is heard from again before
// it is lost (a heartbeat) takes new work again.
func TestUnreachableAgentReturns(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node-a", nodeResources(4, 8<<30), nil).start()
	a.disconnect()
	s.waitDetached(a.ID)
	s.advance(DefaultHeartbeatTimeout)
	var sess api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("job", 1, 1), http.StatusCreated, &sess)
	s.ml.must(http.MethodGet, "/v1/sessions/"+sess.ID, nil, http.StatusOK, &sess)
	if diff := cmp.Diff([]api.GroupStatus{{Name: "work", Count: 1, Pending: 1}}, sess.Groups); diff != "" {
		t.Errorf("a session with its only agent unreachable (-want +got):\n%s", diff)
	}
	a.cl.must(http.MethodPost, "/v1/agent/heartbeat", api.Heartbeat{Agent: a.ID}, http.StatusNoContent, nil)
	a.connect()
	a.nextLaunch()
}

func agentStates(c *cluster) map[string]string {
	var agents []api.Agent
	c.adminClient().must(http.MethodGet, "/v1/agents", nil, http.StatusOK, &agents)
	out := map[string]string{}
	for _, a := range agents {
		out[a.ID] = a.State
	}
	return out
}

// TestIdleTicks: ticks that would decide nothing are not logged; an event
// after a long idle time is preceded by a tick that brings the core's
// clock up to date.
func TestIdleTicks(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	s.newAgent(s.agentTok, "node", nodeResources(2, 1<<30), nil).start()
	s.advance(time.Second)
	s.advance(time.Second)
	seq := s.seq()
	for range 10 {
		s.advance(time.Second)
	}
	if got := s.seq(); got != seq {
		t.Errorf("idle ticks wrote %d records", got-seq)
	}
	s.clock.Advance(time.Hour)
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("late", 1, 1), http.StatusCreated, nil)
	if got, want := inLoop(s.cluster, func(m *Master) time.Time { return m.core.Now() }), s.clock.Now(); !got.Equal(want) {
		t.Errorf("the core's time after an idle hour and a submit: %s, want %s", got, want)
	}
}

// TestHeartbeatResources: a heartbeat with changed resources updates the
// agent in the core; one without changes writes nothing.
func TestHeartbeatResources(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node", nodeResources(4, 8<<30), nil).start()
	hb := func(res *api.NodeResources) {
		a.cl.must(http.MethodPost, "/v1/agent/heartbeat", api.Heartbeat{Agent: a.ID, Resources: res}, http.StatusNoContent, nil)
	}
	seq := s.seq()
	same := nodeResources(4, 8<<30)
	hb(nil)
	hb(&same)
	if got := s.seq(); got != seq {
		t.Errorf("heartbeats without changes wrote %d records", got-seq)
	}
	smaller := nodeResources(1, 8<<30)
	hb(&smaller)
	var sess api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("two", 1, 2), http.StatusCreated, &sess)
	s.ml.must(http.MethodGet, "/v1/sessions/"+sess.ID, nil, http.StatusOK, &sess)
	if diff := cmp.Diff([]api.GroupStatus{{Name: "work", Count: 1, Pending: 1}}, sess.Groups); diff != "" {
		t.Errorf("a 2-CPU task on an agent down to 1 CPU (-want +got):\n%s", diff)
	}
	var agents []api.Agent
	s.adminClient().must(http.MethodGet, "/v1/agents", nil, http.StatusOK, &agents)
	if len(agents) != 1 || agents[0].Resources.CPUs != 1 {
		t.Errorf("agents after the heartbeat: %+v", agents)
	}
}
