package master

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/google/go-cmp/cmp"
)

// TestTenantIsolation: a tenant's token cannot see, scale or kill the
// sessions and tasks of another consumer; they are not found, as if they
// did not exist. The admin sees everything.
func TestTenantIsolation(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node1", nodeResources(4, 8<<30), nil).start()
	var sess api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("mine", 1, 1), http.StatusCreated, &sess)
	task := a.nextLaunch().Task

	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/sessions/" + sess.ID, nil},
		{http.MethodPost, "/v1/sessions/" + sess.ID + "/scale", api.ScaleRequest{Group: "work", Count: 5}},
		{http.MethodDelete, "/v1/sessions/" + sess.ID, nil},
		{http.MethodGet, "/v1/sessions/" + sess.ID + "/events", nil},
		{http.MethodPost, "/v1/sessions/" + sess.ID + "/reconcile", nil},
		{http.MethodPost, "/v1/sessions/" + sess.ID + "/suppress", nil},
		{http.MethodGet, "/v1/tasks?session=" + sess.ID, nil},
		{http.MethodGet, taskPath(task), nil},
		{http.MethodPost, taskPath(task) + "/kill", nil},
		{http.MethodGet, taskPath(task) + "/logs", nil},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			got, apiErr := s.web.call(c.method, c.path, c.body, nil)
			if got != http.StatusNotFound || apiErr.Code != "not_found" {
				t.Errorf("another tenant: %d %+v, want 404 not_found", got, apiErr)
			}
		})
	}
	// Listings leave it out.
	var list []api.Session
	s.web.must(http.MethodGet, "/v1/sessions?all=true", nil, http.StatusOK, &list)
	var tasks []api.Task
	s.web.must(http.MethodGet, "/v1/tasks", nil, http.StatusOK, &tasks)
	if len(list) != 0 || len(tasks) != 0 {
		t.Errorf("another tenant lists %d sessions and %d tasks, want none", len(list), len(tasks))
	}
	var consumers []api.ConsumerStatus
	s.web.must(http.MethodGet, "/v1/consumers", nil, http.StatusOK, &consumers)
	if len(consumers) != 1 || consumers[0].Path != "/eng/web" {
		t.Errorf("a tenant of /eng/web sees consumers %+v, want its own", consumers)
	}
	// Nothing changed: the session runs with its one task.
	s.adminClient().must(http.MethodGet, "/v1/sessions/"+sess.ID, nil, http.StatusOK, &sess)
	if diff := cmp.Diff([]api.GroupStatus{{Name: "work", Count: 1, Running: 1}}, sess.Groups); sess.State != "running" || diff != "" {
		t.Errorf("the session after another tenant's tries: %s (-want +got):\n%s", sess.State, diff)
	}
	// The owner and the admin reach it.
	s.ml.must(http.MethodGet, taskPath(task), nil, http.StatusOK, nil)
	s.adminClient().must(http.MethodGet, taskPath(task), nil, http.StatusOK, nil)
}

// TestAuth: tokens and roles. Only health is open; a token must be
// known, not revoked and not expired; roles limit what it reaches; agent
// endpoints also need an agent's client certificate.
func TestAuth(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	expiring := s.client(s.newToken(api.TokenRequest{Consumer: "/eng/ml", TTL: api.Duration(time.Hour)}), false)
	var revokedTok api.Token
	s.adminClient().must(http.MethodPost, "/v1/tokens", api.TokenRequest{Consumer: "/eng/ml"}, http.StatusCreated, &revokedTok)
	s.adminClient().must(http.MethodDelete, "/v1/tokens/"+revokedTok.ID, nil, http.StatusNoContent, nil)
	revoked := s.client(revokedTok.Secret, false)
	// A token of another cluster: well formed, unknown here.
	other := newCluster(t, clusterOptions{})
	foreign := s.client(other.admin, false)
	// A known token ID with a secret that is not its.
	id, _, _ := strings.Cut(s.admin, ".")
	forged := s.client(id+".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false)
	agentNoCert := s.client(s.agentTok, false)
	agent := s.client(s.agentTok, true)
	admin := s.adminClient()

	s.clock.Advance(2 * time.Hour)
	reg := api.AgentRegistration{Hostname: "n", Address: "127.0.0.1:1", Resources: nodeResources(1, 1<<30)}
	for _, c := range []struct {
		name         string
		cl           *client
		method, path string
		body         any
		want         int
	}{
		{"health is open", s.client("", false), http.MethodGet, "/v1/health", nil, http.StatusOK},
		{"no token", s.client("", false), http.MethodGet, "/v1/sessions", nil, http.StatusUnauthorized},
		{"expired token", expiring, http.MethodGet, "/v1/sessions", nil, http.StatusUnauthorized},
		{"revoked token", revoked, http.MethodGet, "/v1/sessions", nil, http.StatusUnauthorized},
		{"foreign token", foreign, http.MethodGet, "/v1/sessions", nil, http.StatusUnauthorized},
		{"forged secret", forged, http.MethodGet, "/v1/sessions", nil, http.StatusUnauthorized},
		{"tenant sets consumers", s.ml, http.MethodPut, "/v1/consumers", api.ConsumerTree{}, http.StatusForbidden},
		{"tenant makes tokens", s.ml, http.MethodPost, "/v1/tokens", api.TokenRequest{Role: api.RoleAdmin}, http.StatusForbidden},
		{"tenant lists tokens", s.ml, http.MethodGet, "/v1/tokens", nil, http.StatusForbidden},
		{"tenant lists agents", s.ml, http.MethodGet, "/v1/agents", nil, http.StatusForbidden},
		{"tenant reads metrics", s.ml, http.MethodGet, "/metrics", nil, http.StatusForbidden},
		{"tenant registers an agent", s.client(s.ml.token, true), http.MethodPost, "/v1/agent/register", reg, http.StatusForbidden},
		{"agent token lists sessions", agent, http.MethodGet, "/v1/sessions", nil, http.StatusForbidden},
		{"agent without its certificate", agentNoCert, http.MethodPost, "/v1/agent/register", reg, http.StatusUnauthorized},
		{"agent stream without its certificate", agentNoCert, http.MethodGet, "/v1/agent/stream?agent=x", nil, http.StatusUnauthorized},
		{"admin on agent endpoints", s.client(s.admin, true), http.MethodPost, "/v1/agent/heartbeat", api.Heartbeat{Agent: "x"}, http.StatusForbidden},
		{"admin lists agents", admin, http.MethodGet, "/v1/agents", nil, http.StatusOK},
		{"admin reads metrics", admin, http.MethodGet, "/metrics", nil, http.StatusOK},
		{"unknown endpoint", admin, http.MethodGet, "/v1/nothing", nil, http.StatusNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, apiErr := c.cl.call(c.method, c.path, c.body, nil); got != c.want {
				t.Errorf("%s %s: %d %+v, want %d", c.method, c.path, got, apiErr, c.want)
			}
		})
	}
	// Tokens are listed without their secrets.
	var toks []api.Token
	admin.must(http.MethodGet, "/v1/tokens", nil, http.StatusOK, &toks)
	for _, tok := range toks {
		if tok.Secret != "" || tok.ID == revokedTok.ID {
			t.Errorf("listed token %+v: want no secret, and no revoked token", tok)
		}
	}
}

// TestBadInput: every bad request is a 4xx naming the field at fault,
// and changes nothing.
func TestBadInput(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	s.newAgent(s.agentTok, "node1", nodeResources(4, 8<<30), nil).start()
	withGroups := func(f func(g *api.TaskGroup)) api.SessionSpec {
		spec := batchSpec("bad", 1, 1)
		f(&spec.Groups[0])
		return spec
	}
	other := batchSpec("elsewhere", 1, 1)
	other.Consumer = "/eng/web"
	parent := batchSpec("parent", 1, 1)
	parent.Consumer = "/eng"
	for _, c := range []struct {
		name         string
		cl           *client
		method, path string
		body         any
		want         int
		code, field  string
	}{
		{"not JSON", s.ml, http.MethodPost, "/v1/sessions", []byte("{groups"), http.StatusBadRequest, "invalid", ""},
		{"empty body", s.ml, http.MethodPost, "/v1/sessions", []byte(""), http.StatusBadRequest, "invalid", ""},
		{"two values", s.ml, http.MethodPost, "/v1/sessions", []byte(`{"name":"a"} {}`), http.StatusBadRequest, "invalid", ""},
		{"unknown field", s.ml, http.MethodPost, "/v1/sessions", []byte(`{"name":"a","bogus":1}`), http.StatusBadRequest, "invalid", "bogus"},
		{"wrong type", s.ml, http.MethodPost, "/v1/sessions", []byte(`{"groups":[{"name":"g","count":"two"}]}`), http.StatusBadRequest, "invalid", "groups.count"},
		{"bad duration", s.ml, http.MethodPost, "/v1/sessions", []byte(`{"groups":[{"name":"g","kill_grace":"soon"}]}`), http.StatusBadRequest, "invalid", ""},
		{"no groups", s.ml, http.MethodPost, "/v1/sessions", api.SessionSpec{Name: "x"}, http.StatusBadRequest, "invalid", "groups"},
		{"negative count", s.ml, http.MethodPost, "/v1/sessions", withGroups(func(g *api.TaskGroup) { g.Count = -1 }), http.StatusBadRequest, "invalid", "groups.count"},
		{"no resources", s.ml, http.MethodPost, "/v1/sessions", withGroups(func(g *api.TaskGroup) { g.Resources = api.TaskResources{} }), http.StatusBadRequest, "invalid", "groups.resources"},
		{"min above max", s.ml, http.MethodPost, "/v1/sessions", withGroups(func(g *api.TaskGroup) { g.Min, g.Max = 3, 2; g.Count = 2 }), http.StatusBadRequest, "invalid", "groups.min"},
		{"bad kind", s.ml, http.MethodPost, "/v1/sessions", api.SessionSpec{Kind: "cron", Groups: batchSpec("", 1, 1).Groups}, http.StatusBadRequest, "invalid", "kind"},
		{"another tenant's consumer", s.ml, http.MethodPost, "/v1/sessions", other, http.StatusBadRequest, "invalid", "consumer"},
		{"a parent consumer", s.adminClient(), http.MethodPost, "/v1/sessions", parent, http.StatusBadRequest, "invalid", "consumer"},
		{"admin without a consumer", s.adminClient(), http.MethodPost, "/v1/sessions", batchSpec("x", 1, 1), http.StatusBadRequest, "invalid", "consumer"},
		{"body too large", s.ml, http.MethodPost, "/v1/sessions", bytes.Repeat([]byte(" "), maxBody+1), http.StatusRequestEntityTooLarge, "too_large", ""},
		{"unknown consumer for a token", s.adminClient(), http.MethodPost, "/v1/tokens", api.TokenRequest{Consumer: "/nope"}, http.StatusBadRequest, "invalid", "consumer"},
		{"bad role", s.adminClient(), http.MethodPost, "/v1/tokens", api.TokenRequest{Role: "root"}, http.StatusBadRequest, "invalid", "role"},
		{"consumer path", s.adminClient(), http.MethodPut, "/v1/consumers", api.ConsumerTree{Consumers: []api.Consumer{{Path: "eng"}}}, http.StatusBadRequest, "invalid", "consumers.path"},
		{"consumer without parent", s.adminClient(), http.MethodPut, "/v1/consumers", api.ConsumerTree{Consumers: []api.Consumer{{Path: "/a/b"}}}, http.StatusBadRequest, "invalid", "consumers.path"},
		{"consumer tree the core refuses", s.adminClient(), http.MethodPut, "/v1/consumers", api.ConsumerTree{Consumers: []api.Consumer{
			{Path: "/a", Owned: api.TaskResources{CPUs: 4}, Limit: api.TaskResources{CPUs: 2}}}}, http.StatusBadRequest, "invalid", "consumers"},
		{"scale an unknown group", s.ml, http.MethodPost, "/v1/sessions/nosuch/scale", api.ScaleRequest{Group: "x"}, http.StatusNotFound, "not_found", ""},
		{"unknown task", s.ml, http.MethodGet, taskPath("a/b/1"), nil, http.StatusNotFound, "not_found", ""},
		{"agent registration without hostname", s.client(s.agentTok, true), http.MethodPost, "/v1/agent/register",
			api.AgentRegistration{Address: "x:1", Resources: nodeResources(1, 1)}, http.StatusBadRequest, "invalid", "hostname"},
		{"agent registration with bad ports", s.client(s.agentTok, true), http.MethodPost, "/v1/agent/register",
			api.AgentRegistration{Hostname: "n", Address: "x:1", Resources: api.NodeResources{CPUs: 1, Ports: []api.PortRange{{Begin: 9, End: 2}}}}, http.StatusBadRequest, "invalid", "resources.ports"},
		{"update with a bad state", s.client(s.agentTok, true), http.MethodPost, "/v1/agent/updates",
			api.StatusUpdates{Agent: "x", Updates: []api.StatusUpdate{{UUID: "u", Task: "t", State: "done"}}}, http.StatusBadRequest, "invalid", "updates.state"},
		{"updates of an unknown agent", s.client(s.agentTok, true), http.MethodPost, "/v1/agent/updates",
			api.StatusUpdates{Agent: "nosuch", Updates: []api.StatusUpdate{{UUID: "u", Task: "t", State: "running"}}}, http.StatusNotFound, "not_found", "agent"},
		{"stream of an unknown agent", s.client(s.agentTok, true), http.MethodGet, "/v1/agent/stream?agent=nosuch", nil, http.StatusNotFound, "not_found", "agent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := inLoop(s.cluster, func(m *Master) uint64 { return m.seq })
			got, apiErr := c.cl.call(c.method, c.path, c.body, nil)
			if got != c.want || apiErr.Code != c.code || apiErr.Field != c.field {
				t.Errorf("%d %+v, want %d %s with field %q", got, apiErr, c.want, c.code, c.field)
			}
			if after := inLoop(s.cluster, func(m *Master) uint64 { return m.seq }); after != before {
				t.Errorf("a refused request wrote %d records", after-before)
			}
		})
	}

	// Resources no agent has: accepted, and pending for all to see.
	var sess api.Session
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("huge", 1, 64), http.StatusCreated, &sess)
	s.advance(time.Second)
	s.ml.must(http.MethodGet, "/v1/sessions/"+sess.ID, nil, http.StatusOK, &sess)
	if diff := cmp.Diff([]api.GroupStatus{{Name: "work", Count: 1, Pending: 1}}, sess.Groups); diff != "" {
		t.Errorf("a session no agent can run (-want +got):\n%s", diff)
	}
	// A GPU on a cluster whose only agent has none: the same.
	gpu := batchSpec("gpu", 1, 1)
	gpu.Groups[0].Resources.GPUs = 1
	s.ml.must(http.MethodPost, "/v1/sessions", gpu, http.StatusCreated, &sess)
	s.advance(time.Second)
	s.ml.must(http.MethodGet, "/v1/sessions/"+sess.ID, nil, http.StatusOK, &sess)
	if diff := cmp.Diff([]api.GroupStatus{{Name: "work", Count: 1, Pending: 1}}, sess.Groups); diff != "" {
		t.Errorf("a GPU session on an agent without GPUs (-want +got):\n%s", diff)
	}
	var tasks []api.Task
	s.ml.must(http.MethodGet, "/v1/tasks?session="+sess.ID, nil, http.StatusOK, &tasks)
	if len(tasks) != 0 {
		t.Errorf("tasks of a GPU session on an agent without GPUs: %+v", tasks)
	}
}
