package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/pki"
)

// ignoreIdentity leaves out what makes each update unique.
var ignoreIdentity = cmpopts.IgnoreFields(api.StatusUpdate{}, "UUID", "Time")

func intp(n int) *int { return &n }

// checkUpdate compares an update with want, and checks its UUID and time.
func (e *env) checkUpdate(t *testing.T, got, want api.StatusUpdate) {
	t.Helper()
	if d := cmp.Diff(want, got, ignoreIdentity); d != "" {
		t.Errorf("update (-want +got):\n%s", d)
	}
	if got.UUID == "" || !got.Time.Equal(e.clock.Now()) {
		t.Errorf("update %+v: want a UUID and the time %v", got, e.clock.Now())
	}
}

// run launches task and waits for its staging and running updates; it
// returns its container's ID.
func (e *env) run(t *testing.T, st *fakeStream, l *api.TaskLaunch) string {
	t.Helper()
	st.send(api.AgentMessage{Launch: l})
	e.checkUpdate(t, e.master.nextOf(t, l.Task), api.StatusUpdate{Task: l.Task, State: api.TaskStaging})
	u := e.master.nextOf(t, l.Task)
	if u.State != api.TaskRunning || u.Container == "" {
		t.Fatalf("update %+v, want running with a container", u)
	}
	return u.Container
}

// queuedUpdates reads the update queue in dir.
func queuedUpdates(t *testing.T, stateDir string) []api.StatusUpdate {
	q, bad, err := loadQueue(filepath.Join(stateDir, updatesDir))
	if err != nil || len(bad) > 0 {
		t.Errorf("queue: %v %v", err, bad)
	}
	return q.all()
}

// peekQueue reads the update queue of a running agent, skipping what it
// cannot read.
func peekQueue(stateDir string) []api.StatusUpdate {
	dir := filepath.Join(stateDir, updatesDir)
	ents, _ := os.ReadDir(dir)
	var out []api.StatusUpdate
	for _, e := range ents {
		var f queuedUpdate
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && json.Unmarshal(b, &f) == nil {
			out = append(out, f.Update)
		}
	}
	return out
}

func taskFiles(t *testing.T, stateDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(stateDir, tasksDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// waitQueue waits until the agent's queue holds a number of updates that
// ok accepts.
func waitQueue(t *testing.T, a *Agent, ok func(n int) bool) {
	t.Helper()
	<-a.listening // the queue is loaded just after
	for {
		a.mu.Lock()
		q := a.queue
		a.mu.Unlock()
		if q == nil {
			t.Fatal("no queue yet")
		}
		n, changed := q.watch()
		if ok(n) {
			return
		}
		recv(t, changed, "change of the update queue")
	}
}

func TestLaunchRunsTaskToItsEnd(t *testing.T) {
	e := newEnv(t)
	const task = "s1/web/0"
	// At the removal, the terminal update is queued, or was delivered
	// from the queue already.
	queuedFirst := make(chan bool, 1)
	e.containers.onRemove = func(string) {
		// The queue first: an update gone from it was delivered before.
		found := slices.ContainsFunc(peekQueue(e.stateDir), func(u api.StatusUpdate) bool {
			return u.Task == task && u.State == api.TaskFinished
		})
		queuedFirst <- found || e.master.received(task, api.TaskFinished)
	}
	e.start(t)
	_, st := e.connected(t)
	cid := e.run(t, st, launchOf(task))
	e.containers.exit(cid, api.Termination{ExitCode: 0, Reason: api.ReasonExited})
	e.checkUpdate(t, e.master.nextOf(t, task), api.StatusUpdate{Task: task, State: api.TaskFinished, Container: cid, ExitCode: intp(0)})
	if c := e.containers.nextCall(t, "remove"); c.id != cid {
		t.Errorf("removed %s, want %s", c.id, cid)
	}
	if !recv(t, queuedFirst, "removal") {
		t.Error("the container was removed before its terminal update was queued")
	}
	if got := recv(t, e.forgotten, "task forgotten"); got != task {
		t.Errorf("forgot %s, want %s", got, task)
	}
	if files := taskFiles(t, e.stateDir); len(files) > 0 {
		t.Errorf("task records left: %v", files)
	}
}

func TestLaunchIsIdempotent(t *testing.T) {
	e := newEnv(t)
	e.start(t)
	_, st := e.connected(t)
	l := launchOf("s1/web/0")
	st.send(api.AgentMessage{Launch: l})
	st.send(api.AgentMessage{Launch: l})
	e.checkUpdate(t, e.master.nextOf(t, l.Task), api.StatusUpdate{Task: l.Task, State: api.TaskStaging})
	if u := e.master.nextOf(t, l.Task); u.State != api.TaskRunning {
		t.Fatalf("update %+v, want running", u)
	}
	st.send(api.AgentMessage{Launch: l}) // once it runs
	// The stream is served in order: when the next task runs, the
	// launches before it were handled.
	e.run(t, st, launchOf("s1/web/1"))
	if n := e.containers.count("launch"); n != 2 {
		t.Errorf("%d launches, want 2 (one per task)", n)
	}
	// The last update of task 0 was its running one.
	st.send(api.AgentMessage{Kill: &api.TaskKill{Task: "barrier/x/0"}})
	for {
		u := e.master.next(t)
		if u.Task == "barrier/x/0" {
			break
		}
		if u.Task == l.Task {
			t.Errorf("another update of the launched-again task: %+v", u)
		}
	}
}

func TestCrashDuringLaunch(t *testing.T) {
	e := newEnv(t)
	e.containers.gate = make(chan struct{}) // launches never end
	ra := e.start(t)
	_, st := e.connected(t)
	l := launchOf("s1/web/0")
	st.send(api.AgentMessage{Launch: l})
	recv(t, e.containers.launching, "launch")
	// The record and the staging update are on disk before the launch
	// (the update, or delivered from there already).
	if files := taskFiles(t, e.stateDir); len(files) != 1 {
		t.Errorf("task records during the launch: %v, want the task's", files)
	}
	q := peekQueue(e.stateDir)
	if (len(q) == 0 || q[0].State != api.TaskStaging) && !e.master.received(l.Task, api.TaskStaging) {
		t.Errorf("queue during the launch: %+v, want the staging update", q)
	}
	ra.stop(t) // the agent dies during the launch

	e.start(t)
	reg, _ := e.connected(t)
	if d := cmp.Diff([]api.AgentTask{{ID: l.Task, State: api.TaskFailed}}, reg.Tasks); d != "" {
		t.Errorf("registered tasks (-want +got):\n%s", d)
	}
	e.checkUpdate(t, e.master.nextOf(t, l.Task), api.StatusUpdate{Task: l.Task, State: api.TaskStaging})
	e.checkUpdate(t, e.master.nextOf(t, l.Task), api.StatusUpdate{
		Task: l.Task, State: api.TaskFailed, Reason: ReasonLaunchFailed, Message: "agent restarted during launch",
	})
	if files := taskFiles(t, e.stateDir); len(files) > 0 {
		t.Errorf("task records left: %v", files)
	}
}

func TestKillDuringLaunch(t *testing.T) {
	e := newEnv(t)
	e.containers.gate = make(chan struct{})
	e.start(t)
	_, st := e.connected(t)
	l := launchOf("s1/web/0")
	st.send(api.AgentMessage{Launch: l})
	recv(t, e.containers.launching, "launch")
	st.send(api.AgentMessage{Kill: &api.TaskKill{Task: l.Task, Reason: "session killed"}})
	e.checkUpdate(t, e.master.nextOf(t, l.Task), api.StatusUpdate{Task: l.Task, State: api.TaskStaging})
	e.checkUpdate(t, e.master.nextOf(t, l.Task), api.StatusUpdate{
		Task: l.Task, State: api.TaskKilled, Reason: "session killed", Message: "killed before it started",
	})
	e.waitForgotten(t, l.Task)
	if n := e.containers.count("launch"); n > 0 {
		t.Errorf("%d containers launched", n)
	}
}

func TestFailedLaunchLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		// leave has the fake leave a container behind, as a broken
		// containerizer would.
		leave bool
		edit  func(l *api.TaskLaunch)
	}{
		{name: "bad image", err: fmt.Errorf("image nope:latest: %w", api.ErrNotFound)},
		{name: "missing network", err: &api.FieldError{Field: "networks", Err: fmt.Errorf("network net9: %w", api.ErrNotFound)}},
		{name: "volume plugin down", err: fmt.Errorf("volume plugin flaky: %w", api.ErrUnavailable)},
		{name: "a container left behind", err: fmt.Errorf("isolator: %w", api.ErrUnavailable), leave: true},
		{name: "more ports published than granted", edit: func(l *api.TaskLaunch) {
			l.PortMaps = []api.PortMapping{{ContainerPort: 80}, {ContainerPort: 81}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			l := launchOf("s1/web/0")
			if tc.edit != nil {
				tc.edit(l)
			}
			if tc.err != nil {
				e.containers.failLaunch[l.Task] = tc.err
			}
			e.containers.leave = tc.leave
			e.start(t)
			_, st := e.connected(t)
			st.send(api.AgentMessage{Launch: l})
			e.checkUpdate(t, e.master.nextOf(t, l.Task), api.StatusUpdate{Task: l.Task, State: api.TaskStaging})
			u := e.master.nextOf(t, l.Task)
			want := api.StatusUpdate{Task: l.Task, State: api.TaskFailed, Reason: ReasonLaunchFailed, Message: u.Message}
			if tc.err != nil {
				want.Message = tc.err.Error()
			}
			e.checkUpdate(t, u, want)
			if u.Message == "" {
				t.Error("the failure has no message")
			}
			e.waitForgotten(t, l.Task)
			if list, _ := e.containers.List(context.Background()); len(list) > 0 {
				t.Errorf("containers left: %+v", list)
			}
			if files := taskFiles(t, e.stateDir); len(files) > 0 {
				t.Errorf("task records left: %v", files)
			}
		})
	}
}

func TestKill(t *testing.T) {
	for _, tc := range []struct {
		name      string
		kill      api.TaskKill
		killGrace time.Duration // the group's
		// grace is when SIGKILL is due.
		grace time.Duration
		// onTerm is how the container ends on SIGTERM; nil ignores it.
		onTerm *api.Termination
		want   api.StatusUpdate
	}{
		{
			name: "grace of the kill", kill: api.TaskKill{Reason: "reclaimed", Grace: api.Duration(30 * time.Second)},
			killGrace: 5 * time.Second, grace: 30 * time.Second,
			want: api.StatusUpdate{State: api.TaskKilled, Reason: "reclaimed", ExitCode: intp(137)},
		},
		{
			name: "deadline of the kill", kill: api.TaskKill{Reason: "session killed", Grace: api.Duration(time.Second)},
			grace: 45 * time.Second, // Deadline is set below, and wins over Grace
			want:  api.StatusUpdate{State: api.TaskKilled, Reason: "session killed", ExitCode: intp(137)},
		},
		{
			name: "grace of the group", kill: api.TaskKill{Reason: "scaled down"}, killGrace: 20 * time.Second,
			grace: 20 * time.Second,
			want:  api.StatusUpdate{State: api.TaskKilled, Reason: "scaled down", ExitCode: intp(137)},
		},
		{
			name: "the agent's default grace", kill: api.TaskKill{Reason: "reclaimed"}, grace: DefaultKillGrace,
			want: api.StatusUpdate{State: api.TaskKilled, Reason: "reclaimed", ExitCode: intp(137)},
		},
		{
			name: "the task ends on SIGTERM", kill: api.TaskKill{Reason: "reclaimed"},
			onTerm: &api.Termination{ExitCode: 0, Reason: api.ReasonExited},
			want:   api.StatusUpdate{State: api.TaskKilled, Reason: "reclaimed", ExitCode: intp(0)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.containers.termExit = tc.onTerm
			e.start(t)
			_, st := e.connected(t)
			l := launchOf("s1/web/0")
			l.KillGrace = api.Duration(tc.killGrace)
			cid := e.run(t, st, l)
			k := tc.kill
			k.Task = l.Task
			if tc.name == "deadline of the kill" {
				k.Deadline = e.clock.Now().Add(tc.grace)
			}
			st.send(api.AgentMessage{Kill: &k})
			if c := e.containers.nextCall(t, "kill"); c.id != cid || c.sig != syscall.SIGTERM {
				t.Fatalf("first signal %v to %s, want SIGTERM to %s", c.sig, c.id, cid)
			}
			if tc.onTerm == nil {
				// SIGKILL is due at the deadline, not before.
				e.clock.waitTimer(t, tc.grace)
				if e.clock.pendingWithin(tc.grace - time.Millisecond) {
					t.Errorf("SIGKILL is due before %v", tc.grace)
				}
				e.clock.Advance(tc.grace)
				if c := e.containers.nextCall(t, "kill"); c.id != cid || c.sig != syscall.SIGKILL {
					t.Fatalf("second signal %v to %s, want SIGKILL to %s", c.sig, c.id, cid)
				}
			}
			want := tc.want
			want.Task, want.Container = l.Task, cid
			u := e.master.nextOf(t, l.Task)
			want.Message = u.Message
			e.checkUpdate(t, u, want)
			e.waitForgotten(t, l.Task)
			if tc.onTerm != nil {
				if n := e.containers.count("kill"); n != 1 {
					t.Errorf("%d signals, want SIGTERM only", n)
				}
			}
		})
	}
}

func TestTerminations(t *testing.T) {
	for _, tc := range []struct {
		name string
		term *api.Termination // nil: the container is removed under the agent
		want api.StatusUpdate
	}{
		{
			name: "exit 0", term: &api.Termination{ExitCode: 0, Reason: api.ReasonExited},
			want: api.StatusUpdate{State: api.TaskFinished, ExitCode: intp(0)},
		},
		{
			name: "exit 3", term: &api.Termination{ExitCode: 3, Reason: api.ReasonExited},
			want: api.StatusUpdate{State: api.TaskFailed, Reason: "exited", ExitCode: intp(3)},
		},
		{
			name: "out of memory", term: &api.Termination{ExitCode: 137, Reason: api.ReasonOOM, Message: "memory limit 64MiB reached"},
			want: api.StatusUpdate{State: api.TaskFailed, Reason: ReasonOOMKilled, ExitCode: intp(137), Message: "memory limit 64MiB reached"},
		},
		{
			name: "a signal", term: &api.Termination{ExitCode: 139, Signal: "SIGSEGV", Reason: api.ReasonSignaled},
			want: api.StatusUpdate{State: api.TaskFailed, Reason: "signaled", ExitCode: intp(139)},
		},
		{
			name: "container removed under the agent",
			want: api.StatusUpdate{State: api.TaskLost, Reason: ReasonContainerRemoved, Message: "the task's container was removed before its end was read"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.start(t)
			_, st := e.connected(t)
			l := launchOf("s1/web/0")
			cid := e.run(t, st, l)
			if tc.term == nil {
				e.containers.vanish(cid)
			} else {
				e.containers.exit(cid, *tc.term)
			}
			want := tc.want
			want.Task, want.Container = l.Task, cid
			e.checkUpdate(t, e.master.nextOf(t, l.Task), want)
			e.waitForgotten(t, l.Task)
		})
	}
}

func TestKillOfUnknownTask(t *testing.T) {
	e := newEnv(t)
	e.start(t)
	_, st := e.connected(t)
	st.send(api.AgentMessage{Kill: &api.TaskKill{Task: "s9/x/0", Reason: "reclaimed"}})
	e.checkUpdate(t, e.master.next(t), api.StatusUpdate{
		Task: "s9/x/0", State: api.TaskLost, Reason: ReasonUnknownTask, Message: "the agent does not know this task",
	})
}

func TestUpdateQueueSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.master.set(func(m *fakeMaster) { m.noAck = true })
	ra := e.start(t)
	_, st := e.connected(t)
	l := launchOf("s1/web/0")
	st.send(api.AgentMessage{Launch: l})
	cid := recv(t, e.containers.launched, "launch")
	waitQueue(t, ra.Agent, func(n int) bool { return n == 2 }) // staging, running
	queued := peekQueue(e.stateDir)

	// Unacknowledged, they are sent again after a while.
	sent := map[string]int{}
	for sent[queued[0].UUID] == 0 {
		sent[recv(t, e.master.updates, "update").UUID]++
	}
	e.clock.waitTimer(t, backoffMax)
	e.clock.Advance(backoffMax)
	for sent[queued[0].UUID] < 2 || sent[queued[1].UUID] < 1 {
		sent[recv(t, e.master.updates, "update").UUID]++
	}
	id := ra.ID()
	ra.stop(t)
	if d := cmp.Diff(queued, queuedUpdates(t, e.stateDir)); d != "" {
		t.Fatalf("the queue after the agent stopped (-before +after):\n%s", d)
	}

	// A new agent sends them until acknowledged.
	e.master.set(func(m *fakeMaster) { m.noAck = false })
	ra = e.start(t)
	reg2, _ := e.connected(t)
	if reg2.ID != id {
		t.Errorf("registered as %q, want %q", reg2.ID, id)
	}
	if d := cmp.Diff([]api.AgentTask{{ID: l.Task, Container: cid, State: api.TaskRunning}}, reg2.Tasks); d != "" {
		t.Errorf("registered tasks (-want +got):\n%s", d)
	}
	again := map[string]bool{}
	for !again[queued[0].UUID] || !again[queued[1].UUID] {
		again[recv(t, e.master.updates, "update").UUID] = true
	}
	waitQueue(t, ra.Agent, func(n int) bool { return n == 0 })
	if left := queuedUpdates(t, e.stateDir); len(left) > 0 {
		t.Errorf("acknowledged updates still queued: %+v", left)
	}
}

func TestMasterUnreachableThenReachable(t *testing.T) {
	e := newEnv(t)
	e.master.set(func(m *fakeMaster) { m.down = true })
	ra := e.start(t)
	recv(t, e.master.attempts, "registration attempt")
	e.clock.waitTimer(t, backoffMax) // the agent waits to try again
	e.master.set(func(m *fakeMaster) { m.down = false })
	e.clock.Advance(backoffMax)
	reg, st := e.connected(t)
	want := api.AgentRegistration{
		Hostname: "node1", Address: ra.apiAddr, Labels: map[string]string{"zone": "a"},
		Resources: api.NodeResources{CPUs: 4, MemoryBytes: 8 << 30, Ports: []api.PortRange{{Begin: 31000, End: 32000}}},
	}
	if d := cmp.Diff(want, reg); d != "" {
		t.Errorf("first registration (-want +got):\n%s", d)
	}
	if ra.ID() != "agent-1" {
		t.Errorf("ID %q, want the master's, agent-1", ra.ID())
	}
	b, err := os.ReadFile(filepath.Join(e.stateDir, idFile))
	if err != nil || strings.TrimSpace(string(b)) != "agent-1" {
		t.Errorf("ID file: %q, %v; want agent-1", b, err)
	}

	// When the stream drops, the agent registers again, with its ID.
	close(st.drop)
	reg, _ = e.connected(t)
	if reg.ID != "agent-1" {
		t.Errorf("registered again as %q, want agent-1", reg.ID)
	}
}

func TestRestartRecovery(t *testing.T) {
	e := newEnv(t)
	ra := e.start(t)
	_, st := e.connected(t)
	a, b := launchOf("s1/web/0"), launchOf("s1/web/1")
	cidA, cidB := e.run(t, st, a), e.run(t, st, b)
	id := ra.ID()
	ra.stop(t) // as a kill -9 would, for the containers: they run on
	for _, op := range []string{"kill", "remove"} {
		if n := e.containers.count(op); n > 0 {
			t.Errorf("the agent's end made %d %s calls", n, op)
		}
	}

	// While the agent is down: task b ends; a container of the agent's
	// that no task names appears (an orphan); the agent had died during
	// the launch of task d, and between the launch of task f and its
	// running update.
	e.containers.exit(cidB, api.Termination{ExitCode: 0, Reason: api.ReasonExited})
	labels := func(task string) map[string]string {
		return map[string]string{LabelAgent: id, LabelTask: task, LabelSession: "s1"}
	}
	cidOrphan := e.containers.add(api.ContainerSpec{Labels: labels("s0/old/0")}, api.StateRunning)
	others := e.containers.add(api.ContainerSpec{Labels: map[string]string{LabelAgent: "agent-other", LabelTask: "s1/web/9"}}, api.StateRunning)
	st0, err := newStore(e.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	d, f := launchOf("s1/web/3"), launchOf("s1/web/4")
	for _, l := range []*api.TaskLaunch{d, f} {
		if err := st0.saveTask(&taskRecord{Launch: *l, State: api.TaskStaging}); err != nil {
			t.Fatal(err)
		}
	}
	cidF := e.containers.add(api.ContainerSpec{Labels: labels(f.Task)}, api.StateRunning)
	launches := e.containers.count("launch")

	e.start(t)
	reg, st := e.connected(t)
	if reg.ID != id {
		t.Errorf("registered as %q, want %q", reg.ID, id)
	}
	wantTasks := []api.AgentTask{
		{ID: a.Task, Container: cidA, State: api.TaskRunning},
		{ID: b.Task, Container: cidB, State: api.TaskFinished},
		{ID: d.Task, State: api.TaskFailed},
		{ID: f.Task, Container: cidF, State: api.TaskRunning},
	}
	if d := cmp.Diff(wantTasks, reg.Tasks); d != "" {
		t.Errorf("registered tasks (-want +got):\n%s", d)
	}
	got := map[string]api.StatusUpdate{}
	for len(got) < 3 {
		u := e.master.next(t)
		got[u.Task] = u
	}
	for task, want := range map[string]api.StatusUpdate{
		b.Task: {Task: b.Task, State: api.TaskFinished, Container: cidB, ExitCode: intp(0)},
		d.Task: {Task: d.Task, State: api.TaskFailed, Reason: ReasonLaunchFailed, Message: "agent restarted during launch"},
		f.Task: {Task: f.Task, State: api.TaskRunning, Container: cidF},
	} {
		e.checkUpdate(t, got[task], want)
	}
	if n := e.containers.count("launch"); n != launches {
		t.Errorf("%d launches after the restart, want none", n-launches)
	}
	list, _ := e.containers.List(context.Background())
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	if d := cmp.Diff([]string{cidF, others, cidA}, ids); d != "" {
		t.Errorf("containers after recovery (-want +got):\n%s (the orphan was %s)", d, cidOrphan)
	}

	// Task a is watched again: its end is reported; a launch of it again
	// is ignored.
	st.send(api.AgentMessage{Launch: a})
	e.containers.exit(cidA, api.Termination{ExitCode: 0, Reason: api.ReasonExited})
	e.checkUpdate(t, e.master.nextOf(t, a.Task), api.StatusUpdate{Task: a.Task, State: api.TaskFinished, Container: cidA, ExitCode: intp(0)})
	if n := e.containers.count("launch"); n != launches {
		t.Errorf("task a launched again")
	}
}

func TestKillSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	ra := e.start(t)
	_, st := e.connected(t)
	l := launchOf("s1/web/0")
	cid := e.run(t, st, l)
	st.send(api.AgentMessage{Kill: &api.TaskKill{Task: l.Task, Reason: "reclaimed", Grace: api.Duration(time.Minute)}})
	e.containers.nextCall(t, "kill")
	e.clock.waitTimer(t, time.Minute) // the kill is recorded before its timer is set
	ra.stop(t)

	e.start(t)
	e.connected(t)
	if c := e.containers.nextCall(t, "kill"); c.sig != syscall.SIGTERM {
		t.Errorf("signal %v after the restart, want SIGTERM again", c.sig)
	}
	e.clock.waitTimer(t, time.Minute)
	e.clock.Advance(time.Minute)
	if c := e.containers.nextCall(t, "kill"); c.sig != syscall.SIGKILL {
		t.Errorf("signal %v at the deadline, want SIGKILL", c.sig)
	}
	u := e.master.nextOf(t, l.Task)
	e.checkUpdate(t, u, api.StatusUpdate{Task: l.Task, State: api.TaskKilled, Reason: "reclaimed", Container: cid, ExitCode: intp(137)})
}

func TestRegisteredKill(t *testing.T) {
	e := newEnv(t)
	e.start(t)
	_, st := e.connected(t)
	keep, replaced := launchOf("s1/web/0"), launchOf("s1/web/1")
	e.run(t, st, keep)
	cid := e.run(t, st, replaced)
	e.master.set(func(m *fakeMaster) { m.kill = []string{replaced.Task, "s1/web/77"} })
	close(st.drop)
	e.connected(t)
	e.checkUpdate(t, e.master.nextOf(t, replaced.Task), api.StatusUpdate{
		Task: replaced.Task, State: api.TaskKilled, Reason: ReasonReplaced, Container: cid, ExitCode: intp(137),
	})
	if c := e.containers.nextCall(t, "remove"); c.id != cid {
		t.Errorf("removed %s, want %s", c.id, cid)
	}
	if n := e.containers.count("kill"); n != 2 {
		t.Errorf("%d signals, want SIGTERM and SIGKILL to the replaced task only", n)
	}
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t)
	sicken := e.oneGPU()
	ra := e.start(t)
	_, st := e.connected(t)
	l := launchOf("s1/web/0")
	e.run(t, st, l)
	usage := map[string]api.Usage{l.Task: {CPUUsageNanos: 42, MemoryUsageBytes: 1 << 20}}
	if d := cmp.Diff(api.Heartbeat{Agent: ra.ID(), Usage: usage}, e.beat(t)); d != "" {
		t.Errorf("heartbeat (-want +got):\n%s", d)
	}
	changed := sicken("XID 79")
	if d := cmp.Diff(api.Heartbeat{Agent: ra.ID(), Usage: usage, Resources: &changed}, e.beat(t)); d != "" {
		t.Errorf("heartbeat after a GPU fell ill (-want +got):\n%s", d)
	}
	if d := cmp.Diff(api.Heartbeat{Agent: ra.ID(), Usage: usage}, e.beat(t)); d != "" {
		t.Errorf("heartbeat with nothing changed (-want +got):\n%s", d)
	}
}

func TestAgentAPI(t *testing.T) {
	e := newEnv(t)
	ra := e.start(t)
	_, st := e.connected(t)
	l := launchOf("s1/web/0")
	cid := e.run(t, st, l)
	base := ra.apiURL()
	client := func(role string) *http.Client { return e.apiClient(t, role) }
	master := client(pki.RoleMaster)
	for _, tc := range []struct {
		name     string
		client   *http.Client
		path     string
		status   int
		want     string // the body, or the error's code
		wantJSON any
	}{
		{name: "no certificate", client: client(""), path: "/v1/health", status: http.StatusUnauthorized, want: "unauthorized"},
		{name: "an agent's certificate", client: client(pki.RoleAgent), path: "/v1/health", status: http.StatusForbidden, want: "forbidden"},
		{name: "health", client: master, path: "/v1/health", status: http.StatusOK, wantJSON: &api.Health{Status: "ok", Version: "test", Role: "agent"}},
		{name: "logs", client: master, path: "/v1/containers/s1%2Fweb%2F0/logs", status: http.StatusOK, want: "output of " + cid + "\n"},
		{name: "logs of an unknown task", client: master, path: "/v1/containers/s1%2Fweb%2F9/logs", status: http.StatusNotFound, want: "not_found"},
		{name: "bad follow", client: master, path: "/v1/containers/s1%2Fweb%2F0/logs?follow=maybe", status: http.StatusBadRequest, want: "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := ra.get(t, tc.client, tc.path)
			if status != tc.status {
				t.Errorf("status %d, want %d (%s)", status, tc.status, body)
			}
			switch {
			case tc.wantJSON != nil:
				var got api.Health
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.wantJSON, &got); d != "" {
					t.Errorf("body (-want +got):\n%s", d)
				}
			case status >= 400:
				var e api.Error
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code != tc.want {
					t.Errorf("body %s, want an error %q", body, tc.want)
				}
			case body != tc.want:
				t.Errorf("body %q, want %q", body, tc.want)
			}
		})
	}

	t.Run("follow", func(t *testing.T) {
		resp, err := master.Get(base + "/v1/containers/s1%2Fweb%2F0/logs?follow=true")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); err != nil || line != "output of "+cid+"\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		e.containers.print(cid, "end of "+cid+"\n")
		e.containers.exit(cid, api.Termination{Reason: api.ReasonExited})
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "end of "+cid+"\n" {
			t.Errorf("the rest %q, %v; want the end line, then the end of the stream", rest, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	files := newTLSFiles(t)
	valid := func() Config {
		return Config{
			StateDir: t.TempDir(), MasterURL: "https://master:7070", TLS: &tls.Config{}, Token: "x",
			ListenAddr: ":7071", ServerTLS: files.server(t, pki.RoleAgent),
			Resources:  func(context.Context) (api.NodeResources, error) { return api.NodeResources{}, nil },
			Containers: newFakeContainers(),
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(c *Config)
		field string
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "no state dir", edit: func(c *Config) { c.StateDir = "" }, field: "state_dir"},
		{name: "no master", edit: func(c *Config) { c.MasterURL = "" }, field: "master"},
		{name: "plain http", edit: func(c *Config) { c.MasterURL = "http://master:7070" }, field: "master"},
		{name: "no host", edit: func(c *Config) { c.MasterURL = "https://" }, field: "master"},
		{name: "no TLS", edit: func(c *Config) { c.TLS = nil }, field: "tls"},
		{name: "no token", edit: func(c *Config) { c.Token = "" }, field: "token"},
		{name: "no listen address", edit: func(c *Config) { c.ListenAddr = "" }, field: "listen"},
		{name: "no server TLS", edit: func(c *Config) { c.ServerTLS = nil }, field: "server_tls"},
		{name: "no resources", edit: func(c *Config) { c.Resources = nil }, field: "resources"},
		{name: "no containers", edit: func(c *Config) { c.Containers = nil }, field: "containers"},
		{name: "negative grace", edit: func(c *Config) { c.DefaultKillGrace = -time.Second }, field: "kill_grace"},
		{name: "metrics address without a port", edit: func(c *Config) { c.MetricsAddr = "localhost" }, field: "metrics_listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(c); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			var fe *api.FieldError
			if !errors.Is(err, api.ErrInvalid) || !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("error %v, want an invalid %s", err, tc.field)
			}
			if _, err := New(c); !errors.Is(err, api.ErrInvalid) {
				t.Errorf("New: %v, want invalid", err)
			}
		})
	}
}

// Decorate changes what each registration reports, and what a heartbeat
// reports when the detected resources change; OnStart runs before
// anything else, and its error ends Run.
func TestHooks(t *testing.T) {
	e := newEnv(t)
	sicken := e.oneGPU()
	cfg := e.config(t)
	started := make(chan api.AgentRegistration, 1)
	cfg.OnStart = func(_ context.Context, reg *api.AgentRegistration) error { started <- *reg; return nil }
	cfg.Decorate = func(_ context.Context, reg *api.AgentRegistration) error {
		reg.Labels["rack"] = "r12"
		reg.Resources.CPUs--
		return nil
	}
	ra := e.startWith(t, cfg)
	if reg := recv(t, started, "agent-start"); reg.Hostname != "node1" || reg.Resources.CPUs != 4 || reg.Labels["zone"] != "a" {
		t.Errorf("OnStart got %+v", reg)
	}
	reg, _ := e.connected(t)
	if diff := cmp.Diff(map[string]string{"zone": "a", "rack": "r12"}, reg.Labels); diff != "" || reg.Resources.CPUs != 3 {
		t.Errorf("registration: cpus %v, labels (-want +got):\n%s", reg.Resources.CPUs, diff)
	}
	if cfg.Labels["rack"] != "" {
		t.Error("Decorate changed the configured labels")
	}
	if hb := e.beat(t); hb.Resources != nil {
		t.Errorf("a heartbeat with nothing changed reports resources: %+v", hb.Resources)
	}
	sicken("XID 79")
	hb := e.beat(t)
	if hb.Resources == nil || hb.Resources.CPUs != 3 || hb.Resources.GPUs[0].Unhealthy != "XID 79" {
		t.Errorf("heartbeat after a GPU fell ill: %+v, want the decorated resources", hb.Resources)
	}
	if hb := e.beat(t); hb.Resources != nil {
		t.Errorf("a heartbeat with nothing changed since reports resources: %+v", hb.Resources)
	}
	ra.stop(t)

	cfg = e.config(t)
	cfg.OnStart = func(context.Context, *api.AgentRegistration) error {
		return errors.New("the scratch disk is not mounted")
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "agent-start hooks: the scratch disk is not mounted") {
		t.Errorf("Run with a failing OnStart = %v", err)
	}
}
