package master

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"reflect"

	"github.com/caisson/caisson/api"
)

// The agents' endpoints: registration and reconciliation, the stream of
// launches and kills, status updates, heartbeats.

// Reasons the master gives a task's end itself.
const (
	// ReasonAgentLost: the task's agent was unreachable past the lost-agent
	// timeout.
	ReasonAgentLost = "agent-lost"
	// ReasonLostByAgent: the task's agent registered without it (it
	// restarted and lost it, or never received its launch).
	ReasonLostByAgent = "lost-by-agent"
)

func (m *Master) register(w http.ResponseWriter, r *http.Request, _ caller) error {
	var reg api.AgentRegistration
	if err := decode(w, r, maxBody, &reg); err != nil {
		return err
	}
	if err := checkRegistration(reg); err != nil {
		return err
	}
	res, err := m.do(r.Context(), func(tx *txn) (any, error) { return m.registerAgent(tx, reg) })
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// registerAgent registers an agent, new or returning, and reconciles the
// tasks it lists with the master's: the master's that it does not list
// are lost (the core places them again); those it lists that the master
// does not know, or ended, or replaced, it is told to kill.
func (m *Master) registerAgent(tx *txn, reg api.AgentRegistration) (api.Registered, error) {
	id := reg.ID
	if id == "" {
		id = newID(func(id string) bool { return m.agents[id] != nil })
	}
	listed := map[string]bool{}
	for _, t := range reg.Tasks {
		listed[t.ID] = true
	}
	if a := m.agents[id]; a != nil {
		for _, t := range sortedTasks(a.tasks) {
			if listed[t.ID] {
				continue
			}
			u := api.StatusUpdate{UUID: newUUID(), Task: t.ID, State: api.TaskLost, Reason: ReasonLostByAgent,
				Message: "agent lost the task: it registered without it", Time: tx.now}
			if !t.inCore {
				// Being killed: the agent no longer has it, which is the end.
				u.State, u.Reason, u.Message = api.TaskKilled, t.Reason, t.Message
			}
			if err := tx.log(&record{Update: &updateRecord{Agent: id, Update: u}}); err != nil {
				return api.Registered{}, err
			}
		}
	}
	var kill []string
	for _, at := range reg.Tasks {
		if api.TaskTerminal(at.State) {
			continue
		}
		if t := m.tasks[at.ID]; t == nil || t.Agent != id || t.ended() || !t.inCore {
			kill = append(kill, at.ID)
		}
	}
	rec := &agentRecord{ID: id, Hostname: reg.Hostname, Address: reg.Address, Labels: reg.Labels, Resources: reg.Resources, Time: tx.now}
	if err := tx.log(&record{Agent: rec}); err != nil {
		return api.Registered{}, &api.FieldError{Field: "resources", Err: err}
	}
	m.agents[id].lastSeen, m.agents[id].registered = tx.now, true
	m.log.Info("agent registered", "agent", id, "hostname", reg.Hostname, "tasks", len(reg.Tasks), "kill", len(kill))
	return api.Registered{ID: id, Heartbeat: api.Duration(m.cfg.HeartbeatInterval), Kill: kill}, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkRegistration says which field of a registration is wrong.
func checkRegistration(reg api.AgentRegistration) error {
	bad := func(field, format string, args ...any) error { return invalid(field, "", format, args...) }
	switch {
	case reg.ID != "" && !api.ValidName(reg.ID):
		return bad("id", "%q: want a letter or digit, then letters, digits, '_', '.' and '-'", reg.ID)
	case reg.Hostname == "" || len(reg.Hostname) > 253:
		return bad("hostname", "want a host name of at most 253 bytes")
	case reg.Address == "":
		return bad("address", "want the address of the agent's API")
	}
	for k := range reg.Labels {
		if k == "" {
			return bad("labels", "a label's name is empty")
		}
	}
	for _, t := range reg.Tasks {
		if t.ID == "" {
			return bad("tasks.id", "a task's ID is empty")
		}
	}
	return checkNode(reg.Resources, "resources")
}

// checkNode says what is wrong with an agent's resources.
func checkNode(n api.NodeResources, field string) error {
	bad := func(sub, format string, args ...any) error { return invalid(field+sub, "", format, args...) }
	switch {
	case n.CPUs < 0 || math.IsNaN(n.CPUs) || math.IsInf(n.CPUs, 0) || n.CPUs > 1<<20:
		return bad(".cpus", "%v is not a number of CPUs", n.CPUs)
	case n.MemoryBytes < 0:
		return bad(".memory_bytes", "negative")
	case n.DiskBytes < 0:
		return bad(".disk_bytes", "negative")
	}
	for i, p := range n.Ports {
		if p.Begin < 1 || p.End > 65535 || p.Begin > p.End {
			return bad(".ports", "%s: want BEGIN-END within 1-65535", p)
		}
		for _, q := range n.Ports[:i] {
			if p.Overlaps(q) {
				return bad(".ports", "%s and %s overlap", q, p)
			}
		}
	}
	seen := map[string]bool{}
	for _, g := range n.GPUs {
		ids := []string{g.UUID}
		for _, d := range g.MIGDevices {
			ids = append(ids, d.UUID)
		}
		for _, id := range ids {
			if id == "" || seen[id] {
				return bad(".gpus.uuid", "%q is empty or repeated", id)
			}
			seen[id] = true
		}
	}
	return nil
}

// liveAgent is an agent that registered with this master (since it
// started) and is not lost, or ErrNotFound: the agent must register
// again, and be reconciled, before anything else.
func (m *Master) liveAgent(id string) (*agent, error) {
	a := m.agents[id]
	if a == nil || a.lost || !a.registered {
		return nil, &api.FieldError{Field: "agent", Value: fmt.Sprintf("%q", id), Err: fmt.Errorf("not registered: register again: %w", api.ErrNotFound)}
	}
	return a, nil
}

func (m *Master) agentStream(w http.ResponseWriter, r *http.Request, _ caller) error {
	id := r.URL.Query().Get("agent")
	st := newStream(nil)
	res, err := m.do(r.Context(), func(tx *txn) (any, error) {
		a, err := m.liveAgent(id)
		if err != nil {
			return nil, err
		}
		if err := m.reachable(tx, a); err != nil {
			return nil, err
		}
		first := m.resend(a)
		a.lastSeen = tx.now
		tx.after(func() {
			if a.stream != nil {
				a.stream.close()
			}
			a.stream = st
			for _, msg := range first {
				st.push(msg)
			}
		})
		return a, nil
	})
	if err != nil {
		return err
	}
	a := res.(*agent)
	defer func() {
		_, _ = m.do(context.Background(), func(tx *txn) (any, error) {
			if a.stream == st {
				a.stream, a.lastSeen = nil, tx.now
				if m.onDetach != nil {
					m.onDetach(a.reg.ID)
				}
			}
			return nil, nil
		})
	}()
	st.serve(w, r, m.done, api.AgentMessage{Ping: true})
	return nil
}

func (m *Master) agentUpdates(w http.ResponseWriter, r *http.Request, _ caller) error {
	var req api.StatusUpdates
	if err := decode(w, r, maxBody, &req); err != nil {
		return err
	}
	for _, u := range req.Updates {
		bad := func(field, format string, args ...any) error {
			return invalid("updates."+field, "", "task %q: "+format, append([]any{u.Task}, args...)...)
		}
		switch {
		case u.UUID == "":
			return bad("uuid", "an update needs its UUID")
		case u.Task == "":
			return bad("task", "an update names its task")
		case u.State != api.TaskStaging && u.State != api.TaskRunning && !api.TaskTerminal(u.State):
			return bad("state", "%q: want staging, running, finished, failed, killed or lost", u.State)
		}
	}
	res, err := m.do(r.Context(), func(tx *txn) (any, error) { return m.applyUpdates(tx, req) })
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// applyUpdates applies an agent's status updates and acknowledges them
// all: one that changes nothing (seen before, or behind what the master
// knows) is acknowledged all the same. An agent that runs a task the
// master does not know, or ended, is told to kill it.
func (m *Master) applyUpdates(tx *txn, req api.StatusUpdates) (api.Acks, error) {
	a, err := m.liveAgent(req.Agent)
	if err != nil {
		return api.Acks{}, err
	}
	a.lastSeen = tx.now
	if err := m.reachable(tx, a); err != nil {
		return api.Acks{}, err
	}
	acks := api.Acks{UUIDs: make([]string, 0, len(req.Updates))}
	for _, u := range req.Updates {
		acks.UUIDs = append(acks.UUIDs, u.UUID)
		t := m.tasks[u.Task]
		switch {
		case t == nil || t.Agent != req.Agent || t.ended():
			if !api.TaskTerminal(u.State) {
				m.toAgent(req.Agent, api.AgentMessage{Kill: &api.TaskKill{Task: u.Task, Reason: "unknown-task"}}, tx)
			}
			continue
		case !forward(t, u.State):
			continue
		}
		if u.Time.IsZero() {
			u.Time = tx.now
		}
		if err := tx.log(&record{Update: &updateRecord{Agent: req.Agent, Update: u}}); err != nil {
			return api.Acks{}, err
		}
		if api.TaskTerminal(u.State) {
			if err := m.finishIfDone(tx, m.sessions[t.Session]); err != nil {
				return api.Acks{}, err
			}
		}
	}
	return acks, nil
}

func (m *Master) heartbeat(w http.ResponseWriter, r *http.Request, _ caller) error {
	var hb api.Heartbeat
	if err := decode(w, r, maxBody, &hb); err != nil {
		return err
	}
	if hb.Resources != nil {
		if err := checkNode(*hb.Resources, "resources"); err != nil {
			return err
		}
	}
	_, err := m.do(r.Context(), func(tx *txn) (any, error) {
		a, err := m.liveAgent(hb.Agent)
		if err != nil {
			return nil, err
		}
		a.lastSeen = tx.now
		m.takeUsage(a.reg.ID, hb.Usage)
		if hb.Resources == nil || reflect.DeepEqual(*hb.Resources, a.reg.Resources) {
			return nil, m.reachable(tx, a)
		}
		rec := a.reg
		rec.Resources, rec.Time = *hb.Resources, tx.now
		return nil, tx.log(&record{Agent: &rec})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// takeUsage keeps the usage an agent reported for the tasks it runs; what
// it says of other tasks, or of ended ones, is ignored. Usage is a sample,
// not a record: it is not logged, and a restarted master has none until
// the next heartbeat.
func (m *Master) takeUsage(agent string, usage map[string]api.Usage) {
	for id, u := range usage {
		if t := m.tasks[id]; t != nil && t.Agent == agent && !t.ended() {
			t.Usage = &u
		}
	}
}

// Agent states as the API reports them.
const (
	agentConnected    = "connected"
	agentDisconnected = "disconnected"
	agentLost         = "lost"
)

func (m *Master) agentState(a *agent) string {
	switch {
	case a.lost:
		return agentLost
	case !a.unreachable && (a.stream != nil || m.clock.Now().Sub(a.lastSeen) < m.cfg.HeartbeatTimeout):
		return agentConnected
	}
	return agentDisconnected
}

func (m *Master) getAgents(w http.ResponseWriter, r *http.Request, _ caller) error {
	res, err := m.do(r.Context(), func(*txn) (any, error) {
		out := []api.Agent{}
		for _, a := range sortedAgents(m.agents) {
			out = append(out, api.Agent{
				ID: a.reg.ID, Hostname: a.reg.Hostname, Address: a.reg.Address, State: m.agentState(a),
				Resources: a.reg.Resources, Attributes: a.attrs, LastSeen: a.lastSeen, Tasks: len(a.tasks),
			})
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
