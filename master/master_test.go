package master

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// setup is a cluster with the consumers /eng/ml and /eng/web, a tenant
// client for each, and an agent token.
type setup struct {
	*cluster
	ml, web  *client
	agentTok string
}

func newSetup(t *testing.T, o clusterOptions) setup {
	t.Helper()
	c := newCluster(t, o)
	c.consumers(api.Consumer{Path: "/eng"}, api.Consumer{Path: "/eng/ml"}, api.Consumer{Path: "/eng/web"})
	return setup{
		cluster:  c,
		ml:       c.client(c.newToken(api.TokenRequest{Consumer: "/eng/ml", Name: "ml"}), false),
		web:      c.client(c.newToken(api.TokenRequest{Consumer: "/eng/web", Name: "web"}), false),
		agentTok: c.newToken(api.TokenRequest{Role: api.RoleAgent, Name: "agents"}),
	}
}

func taskPath(id string) string { return "/v1/tasks/" + url.PathEscape(id) }

func exit(code int) *int { return &code }

func TestSessionLifecycle(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node1", nodeResources(4, 8<<30), map[string]string{"zone": "a"}).start()

	spec := batchSpec("job", 2, 1)
	spec.Groups[0].KillGrace = api.Duration(3 * time.Second)
	var sess api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", spec, http.StatusCreated, &sess)
	if sess.State != "running" || sess.Spec.Consumer != "/eng/ml" {
		t.Fatalf("submitted session: %+v", sess)
	}

	launches := []api.TaskLaunch{a.nextLaunch(), a.nextLaunch()}
	slices.SortFunc(launches, func(x, y api.TaskLaunch) int { return len(x.Task) - len(y.Task) + 2*compare(x.Task, y.Task) })
	for i, l := range launches {
		want := api.TaskLaunch{
			Task: sess.ID + "/work/" + string(rune('1'+i)), Session: sess.ID, Group: "work",
			Resources: api.TaskResources{CPUs: 1, MemoryBytes: 64 << 20},
			Container: spec.Groups[0].Container, KillGrace: api.Duration(3 * time.Second),
		}
		if diff := cmp.Diff(want, l); diff != "" {
			t.Errorf("launch %d (-want +got):\n%s", i, diff)
		}
	}

	for _, l := range launches {
		a.report(update(l.Task, api.TaskRunning))
	}
	var task api.Task
	s.ml.must(http.MethodGet, taskPath(launches[0].Task), nil, http.StatusOK, &task)
	if task.State != api.TaskRunning || task.Container != "c-"+launches[0].Task || task.Agent != a.ID {
		t.Errorf("task after its running update: %+v", task)
	}
	s.ml.must(http.MethodGet, "/v1/sessions/"+sess.ID, nil, http.StatusOK, &sess)
	if diff := cmp.Diff([]api.GroupStatus{{Name: "work", Count: 2, Running: 2}}, sess.Groups); diff != "" {
		t.Errorf("groups while running (-want +got):\n%s", diff)
	}

	for _, l := range launches {
		u := update(l.Task, api.TaskFinished)
		u.ExitCode = exit(0)
		a.report(u)
	}
	s.ml.must(http.MethodGet, "/v1/sessions/"+sess.ID, nil, http.StatusOK, &sess)
	if sess.State != "finished" || sess.Finished.IsZero() {
		t.Errorf("session after its tasks finished: %+v", sess)
	}
	var tasks []api.Task
	s.ml.must(http.MethodGet, "/v1/tasks?session="+sess.ID, nil, http.StatusOK, &tasks)
	var states []string
	for _, tk := range tasks {
		states = append(states, tk.State)
		if tk.ExitCode == nil || *tk.ExitCode != 0 || tk.Ended.IsZero() {
			t.Errorf("finished task %s: exit %v, ended %s", tk.ID, tk.ExitCode, tk.Ended)
		}
	}
	if diff := cmp.Diff([]string{api.TaskFinished, api.TaskFinished}, states); diff != "" {
		t.Errorf("task states (-want +got):\n%s", diff)
	}
	// Finished sessions are listed with all=true only.
	var list []api.Session
	s.ml.must(http.MethodGet, "/v1/sessions", nil, http.StatusOK, &list)
	if len(list) != 0 {
		t.Errorf("running sessions after the end: %+v", list)
	}
	s.ml.must(http.MethodGet, "/v1/sessions?all=true", nil, http.StatusOK, &list)
	if diff := cmp.Diff([]string{sess.ID}, ids(list)); diff != "" {
		t.Errorf("all sessions (-want +got):\n%s", diff)
	}
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func ids(ss []api.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

var _ = cmpopts.EquateEmpty

// TestTaskUsage: the usage an agent reports in its heartbeats shows on its
// running tasks; another agent's claim on them is ignored, an ended task
// keeps its last sample, and a restarted master has none until the next
// heartbeat (usage is a sample, never logged).
func TestTaskUsage(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node-a", nodeResources(4, 8<<30), nil).start()
	b := s.newAgent(s.agentTok, "node-b", nodeResources(4, 8<<30), nil).start()
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("job", 1, 4), http.StatusCreated, nil)
	l := a.nextLaunch()
	a.report(update(l.Task, api.TaskRunning))
	taskUsage := func() *api.Usage {
		t.Helper()
		var task api.Task
		s.ml.must(http.MethodGet, taskPath(l.Task), nil, http.StatusOK, &task)
		return task.Usage
	}
	if u := taskUsage(); u != nil {
		t.Fatalf("usage before any heartbeat: %+v", u)
	}
	sample := api.Usage{Timestamp: t0, CPUUsageNanos: 2e9, MemoryUsageBytes: 5 << 20, Pids: 3}
	a.cl.must(http.MethodPost, "/v1/agent/heartbeat", api.Heartbeat{Agent: a.ID, Usage: map[string]api.Usage{l.Task: sample, "no-such-task": {Pids: 9}}},
		http.StatusNoContent, nil)
	b.cl.must(http.MethodPost, "/v1/agent/heartbeat", api.Heartbeat{Agent: b.ID, Usage: map[string]api.Usage{l.Task: {Pids: 99}}},
		http.StatusNoContent, nil)
	if diff := cmp.Diff(&sample, taskUsage()); diff != "" {
		t.Errorf("usage after the heartbeats (-want +got):\n%s", diff)
	}

	a.report(update(l.Task, api.TaskFinished))
	a.cl.must(http.MethodPost, "/v1/agent/heartbeat", api.Heartbeat{Agent: a.ID, Usage: map[string]api.Usage{l.Task: {Pids: 1}}},
		http.StatusNoContent, nil)
	if diff := cmp.Diff(&sample, taskUsage()); diff != "" {
		t.Errorf("usage of the ended task (-want +got):\n%s", diff)
	}
	s.restart()
	if u := taskUsage(); u != nil {
		t.Errorf("usage after a restart: %+v, want none", u)
	}
}

// TestRetention: a finished session, with its tasks, is forgotten once it
// has been finished for Config.Retention, not before, and not while one
// of its tasks has not ended (a kill its agent has not confirmed); the
// forgetting is logged, so a restarted master does not bring it back.
func TestRetention(t *testing.T) {
	s := newSetup(t, clusterOptions{config: func(c *Config) { c.Retention = time.Hour }})
	a := s.newAgent(s.agentTok, "node", nodeResources(4, 8<<30), nil).start()
	var done, killed api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("done", 1, 1), http.StatusCreated, &done)
	l := a.nextLaunch()
	fin := update(l.Task, api.TaskFinished)
	fin.ExitCode = exit(0)
	a.report(update(l.Task, api.TaskRunning), fin)
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("killed", 1, 1), http.StatusCreated, &killed)
	k := a.nextLaunch()
	a.report(update(k.Task, api.TaskRunning))
	s.ml.must(http.MethodDelete, "/v1/sessions/"+killed.ID, nil, http.StatusOK, nil)
	a.nextKill()
	status := func(path string) int {
		t.Helper()
		code, _ := s.ml.call(http.MethodGet, path, nil, nil)
		return code
	}

	s.advance(time.Hour - time.Second)
	if got := status("/v1/sessions/" + done.ID); got != http.StatusOK {
		t.Fatalf("a session finished less than the retention ago: %d, want 200", got)
	}
	s.advance(time.Second)
	for _, path := range []string{"/v1/sessions/" + done.ID, taskPath(l.Task)} {
		if got := status(path); got != http.StatusNotFound {
			t.Errorf("GET %s after the retention: %d, want 404", path, got)
		}
	}
	// The killed session's task still runs on its agent: it stays.
	if got := status(taskPath(k.Task)); got != http.StatusOK {
		t.Fatalf("a task whose kill is not confirmed: %d, want 200", got)
	}
	u := update(k.Task, api.TaskKilled)
	a.report(u)
	s.advance(time.Second)
	for _, path := range []string{"/v1/sessions/" + killed.ID, taskPath(k.Task)} {
		if got := status(path); got != http.StatusNotFound {
			t.Errorf("GET %s once its task ended: %d, want 404", path, got)
		}
	}
	var list []api.Session
	s.ml.must(http.MethodGet, "/v1/sessions?all=true", nil, http.StatusOK, &list)
	if len(list) != 0 {
		t.Errorf("sessions after the retention: %+v", list)
	}
	s.restart()
	for _, path := range []string{"/v1/sessions/" + done.ID, "/v1/sessions/" + killed.ID, taskPath(l.Task), taskPath(k.Task)} {
		if got := status(path); got != http.StatusNotFound {
			t.Errorf("GET %s after a restart: %d, want 404", path, got)
		}
	}
}
