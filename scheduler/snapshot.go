package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/caisson/caisson/api"
)

// snapshotVersion is the format of Snapshot.
const snapshotVersion = 1

// The whole state, in the orders that decisions depend on.
type snapshot struct {
	Version    int            `json:"version"`
	Config     Config         `json:"config"`
	Now        time.Time      `json:"now"`
	Consumers  []snapConsumer `json:"consumers"`
	Agents     []snapAgent    `json:"agents"`
	Sessions   []snapSession  `json:"sessions"`
	Offers     []snapOffer    `json:"offers"`
	Filters    []snapFilter   `json:"filters,omitempty"`
	Reclaims   []string       `json:"reclaims,omitempty"`
	SessionSeq uint64         `json:"session_seq"`
	OfferSeq   uint64         `json:"offer_seq"`
	FilterSeq  uint64         `json:"filter_seq"`
	FreeEpoch  uint64         `json:"free_epoch"`
	TreeDirty  bool           `json:"tree_dirty,omitempty"`
	MinShape   *Resources     `json:"min_shape,omitempty"`
	LendHit    bool           `json:"lend_hit,omitempty"`
	Counters   Counters       `json:"counters"`
	// RoomEpoch is the room index's growth counter (see reclaimMemo).
	RoomEpoch uint64 `json:"room_epoch,omitempty"`
	// PlanSeq numbers reclaim and preemption plans (see withdraw).
	PlanSeq uint64 `json:"plan_seq,omitempty"`
}

type snapConsumer struct {
	Spec     ConsumerSpec `json:"spec"`
	Deserved Resources    `json:"deserved"`
	LimitHit bool         `json:"limit_hit,omitempty"`
	// DemandSeq, ReclaimMemo and PreemptMemo: see reclaimMemo.
	DemandSeq   uint64    `json:"demand_seq,omitempty"`
	ReclaimMemo *snapMemo `json:"reclaim_memo,omitempty"`
	PreemptMemo *snapMemo `json:"preempt_memo,omitempty"`
}

type snapMemo struct {
	Epoch  uint64    `json:"epoch"`
	Want   Resources `json:"want"`
	Demand uint64    `json:"demand"`
	Top    int       `json:"top,omitempty"`
}

type snapAgent struct {
	Spec      AgentSpec `json:"spec"`
	Lost      bool      `json:"lost,omitempty"`
	Unhealthy bool      `json:"unhealthy,omitempty"`
	Tasks     []string  `json:"tasks,omitempty"`     // in the agent's order
	Offers    []string  `json:"offers,omitempty"`    // in the agent's order
	RoomGrew  uint64    `json:"room_grew,omitempty"` // see reclaimMemo
}

type snapSession struct {
	Spec       SessionSpec      `json:"spec"`
	Seq        uint64           `json:"seq"`
	Suppressed bool             `json:"suppressed,omitempty"`
	TaskSeq    uint64           `json:"task_seq"`
	Filters    map[string]int64 `json:"filters,omitempty"` // agent → until, unix ns
	Groups     []snapGroup      `json:"groups"`
}

type snapGroup struct {
	Started  bool       `json:"started"`
	GangFail uint64     `json:"gang_fail,omitempty"`
	Running  []snapTask `json:"running,omitempty"` // in the group's order
}

type snapTask struct {
	ID        string     `json:"id"`
	Agent     string     `json:"agent"`
	GPUs      []int      `json:"gpus,omitempty"`
	Revocable bool       `json:"revocable,omitempty"`
	Seq       uint64     `json:"seq"`
	Deadline  time.Time  `json:"deadline,omitzero"`
	Reason    string     `json:"reason,omitempty"`
	Claimant  string     `json:"claimant,omitempty"`
	Claim     *Resources `json:"claim,omitempty"`
	Preempt   bool       `json:"preempt,omitempty"`
	Plan      uint64     `json:"plan,omitempty"`
	Ports     []int      `json:"ports,omitempty"`
}

type snapOffer struct {
	ID        string    `json:"id"`
	Seq       uint64    `json:"seq"`
	Session   string    `json:"session"`
	Agent     string    `json:"agent"`
	Resources Resources `json:"resources"`
	Revocable bool      `json:"revocable,omitempty"`
	Expires   int64     `json:"expires"`
}

type snapFilter struct {
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	Agent   string    `json:"agent"`
	Session string    `json:"session"`
}

// Snapshot encodes the whole state. Restore of it gives a core that makes
// the same decisions for the same events.
func (c *Core) Snapshot() ([]byte, error) {
	if len(c.dirty) > 0 {
		return nil, errorf(api.ErrConflict, "snapshot: the core is in the middle of a step")
	}
	s := snapshot{
		Version: snapshotVersion, Config: c.cfg, Now: c.now,
		SessionSeq: c.sessionSeq, OfferSeq: c.offerSeq, FilterSeq: c.filterSeq, FreeEpoch: c.freeEpoch,
		TreeDirty: c.treeDirty, Counters: c.counters, LendHit: c.lendHit, RoomEpoch: c.roomIdx.epoch,
		PlanSeq: c.planSeq,
	}
	if c.hasPending {
		s.MinShape = &c.minShape
	}
	for _, n := range c.tree.nodes {
		sc := snapConsumer{Spec: n.spec, Deserved: n.deserved, LimitHit: n.limitHit, DemandSeq: n.demandSeq}
		for i, to := range []**snapMemo{&sc.ReclaimMemo, &sc.PreemptMemo} {
			if m := n.memo[i]; m.epoch > 0 {
				*to = &snapMemo{Epoch: m.epoch, Want: m.want, Demand: m.demand, Top: m.top}
			}
		}
		s.Consumers = append(s.Consumers, sc)
	}
	for _, a := range c.agents {
		sa := snapAgent{Spec: a.spec, Lost: a.lost, Unhealthy: a.unhealthy, RoomGrew: c.roomIdx.grewAt(int(a.idx))}
		for _, t := range a.tasks {
			sa.Tasks = append(sa.Tasks, t.id)
		}
		for _, o := range a.offers {
			sa.Offers = append(sa.Offers, o.id)
		}
		s.Agents = append(s.Agents, sa)
	}
	for _, ss := range sortedSessions(c.sessions) {
		snap := snapSession{Spec: ss.spec, Seq: ss.seq, Suppressed: ss.suppressed, TaskSeq: ss.taskSeq}
		snap.Spec.Groups = nil
		for _, g := range ss.groups {
			snap.Spec.Groups = append(snap.Spec.Groups, g.spec)
			sg := snapGroup{Started: g.started, GangFail: g.gangFail}
			for _, t := range g.running {
				st := snapTask{ID: t.id, Agent: t.agent.spec.ID, GPUs: t.gpus, Revocable: t.revocable, Seq: t.seq, Deadline: t.deadline, Reason: t.reason, Preempt: t.preempt, Plan: t.plan, Ports: t.ports}
				if t.claimant != nil {
					st.Claimant = t.claimant.spec.Name
					st.Claim = &t.claim
				}
				sg.Running = append(sg.Running, st)
			}
			snap.Groups = append(snap.Groups, sg)
		}
		for i, until := range ss.filters {
			if snap.Filters == nil {
				snap.Filters = map[string]int64{}
			}
			snap.Filters[c.agents[i].spec.ID] = until.UnixNano()
		}
		s.Sessions = append(s.Sessions, snap)
	}
	for _, o := range c.offerQueue {
		if !o.gone {
			s.Offers = append(s.Offers, snapOffer{ID: o.id, Seq: o.seq, Session: o.session.spec.ID, Agent: o.agent.spec.ID, Resources: o.res, Revocable: o.revocable, Expires: o.expires})
		}
	}
	for _, f := range c.filterq.items {
		if c.sessions[f.session.spec.ID] != f.session {
			continue
		}
		s.Filters = append(s.Filters, snapFilter{Seq: f.seq, At: f.at, Agent: c.agents[f.agent].spec.ID, Session: f.session.spec.ID})
	}
	for _, t := range c.reclaims {
		if !t.deadline.IsZero() {
			s.Reclaims = append(s.Reclaims, t.id)
		}
	}
	return json.Marshal(s)
}

// Restore builds a core from a Snapshot.
func Restore(data []byte) (*Core, error) {
	var s snapshot
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("restore: %w: %w", err, api.ErrInvalid)
	}
	if s.Version != snapshotVersion {
		return nil, errorf(api.ErrInvalid, "restore: snapshot version %d, this core reads %d", s.Version, snapshotVersion)
	}
	bad := func(format string, args ...any) error {
		return errorf(api.ErrInvalid, "restore: "+format, args...)
	}
	c := New(s.Config)
	c.now = s.Now
	specs := make([]ConsumerSpec, len(s.Consumers))
	for i, sc := range s.Consumers {
		specs[i] = sc.Spec
	}
	t, err := newTree(specs)
	if err != nil {
		return nil, bad("consumers: %v", err)
	}
	c.tree = t
	c.initHeaps()
	for i, sc := range s.Consumers {
		t.nodes[i].deserved = sc.Deserved
		t.nodes[i].limitHit = sc.LimitHit
		t.nodes[i].demandSeq = sc.DemandSeq
		for j, m := range []*snapMemo{sc.ReclaimMemo, sc.PreemptMemo} {
			if m != nil {
				t.nodes[i].memo[j] = reclaimMemo{epoch: m.Epoch, want: m.Want, demand: m.Demand, top: m.Top}
			}
		}
	}
	for _, sa := range s.Agents {
		a := &agent{spec: sa.Spec, idx: int32(len(c.agents)), lost: sa.Lost, unhealthy: sa.Unhealthy, gpuFree: make([]int64, len(sa.Spec.GPUs))}
		for i := range a.gpuFree {
			a.gpuFree[i] = 1000
		}
		if _, dup := c.agentIdx[a.spec.ID]; dup {
			return nil, bad("agent %s twice", a.spec.ID)
		}
		c.agents = append(c.agents, a)
		c.agentIdx[a.spec.ID] = a.idx
		if !a.lost {
			c.total = c.total.Add(a.spec.Resources)
		}
	}
	claims := map[*task]string{}
	for _, ss := range s.Sessions {
		n := t.byName[ss.Spec.Consumer]
		if n == nil || !n.leaf() || len(ss.Groups) != len(ss.Spec.Groups) {
			return nil, bad("session %s: consumer %q or groups do not match", ss.Spec.ID, ss.Spec.Consumer)
		}
		se := &session{spec: ss.Spec, seq: ss.Seq, consumer: n, suppressed: ss.Suppressed, taskSeq: ss.TaskSeq, heapIdx: -1, framework: ss.Spec.Kind == KindFramework}
		for id, until := range ss.Filters {
			ai, ok := c.agentIdx[id]
			if !ok {
				return nil, bad("session %s: filter of unknown agent %s", ss.Spec.ID, id)
			}
			if se.filters == nil {
				se.filters = map[int32]time.Time{}
			}
			se.filters[ai] = time.Unix(0, until).In(s.Now.Location())
		}
		n.sessions++
		c.sessions[se.spec.ID] = se
		for gi, sg := range ss.Groups {
			g := &group{spec: ss.Spec.Groups[gi], started: sg.Started, gangFail: sg.GangFail}
			se.groups = append(se.groups, g)
			for _, st := range sg.Running {
				ai, ok := c.agentIdx[st.Agent]
				if !ok {
					return nil, bad("task %s on unknown agent %s", st.ID, st.Agent)
				}
				a := c.agents[ai]
				tk := &task{id: st.ID, s: se, g: g, agent: a, res: g.spec.Resources, gpus: st.GPUs, revocable: st.Revocable, seq: st.Seq, deadline: st.Deadline, reason: st.Reason, preempt: st.Preempt, plan: st.Plan, groupPos: len(g.running)}
				for _, i := range tk.gpus {
					if i < 0 || i >= len(a.gpuFree) {
						return nil, bad("task %s holds GPU %d of agent %s", st.ID, i, st.Agent)
					}
				}
				g.running = append(g.running, tk)
				c.tasks[tk.id] = tk
				a.alloc = a.alloc.Add(tk.res)
				takeGPUs(a.gpuFree, tk.gpus, tk.res[GPU])
				tk.ports = st.Ports
				for _, p := range tk.ports {
					if !inRanges(a.spec.PortRanges, p) || a.portsUsed[p] {
						return nil, bad("task %s holds port %d of agent %s, which is not the agent's or is held twice", st.ID, p, st.Agent)
					}
					if a.portsUsed == nil {
						a.portsUsed = map[int]bool{}
					}
					a.portsUsed[p] = true
				}
				se.alloc = se.alloc.Add(tk.res)
				charge(n, tk.res, !tk.revocable, 1)
				if st.Claimant != "" {
					claims[tk] = st.Claimant
					if tk.claim = tk.res; st.Claim != nil {
						tk.claim = *st.Claim
					}
				}
			}
			addUp(n, pendingOf, g.spec.Resources.Scale(int64(g.pending())))
		}
	}
	for tk, name := range claims {
		cl := t.byName[name]
		if cl == nil {
			return nil, bad("task %s claimed by unknown consumer %s", tk.id, name)
		}
		cl.addClaim(tk)
	}
	for i, sa := range s.Agents {
		a := c.agents[i]
		for _, id := range sa.Tasks {
			tk := c.tasks[id]
			if tk == nil || tk.agent != a {
				return nil, bad("agent %s lists task %s it does not run", a.spec.ID, id)
			}
			tk.agentPos = len(a.tasks)
			a.tasks = append(a.tasks, tk)
			if tk.revocable && tk.deadline.IsZero() {
				a.revocable = a.revocable.Add(tk.res)
			}
		}
		if !a.alloc.Fits(a.spec.Resources) {
			return nil, bad("agent %s is over-committed", a.spec.ID)
		}
	}
	for _, so := range s.Offers {
		se := c.sessions[so.Session]
		ai, ok := c.agentIdx[so.Agent]
		if se == nil || !ok {
			return nil, bad("offer %s: unknown session or agent", so.ID)
		}
		o := &offer{id: so.ID, seq: so.Seq, session: se, agent: c.agents[ai], res: so.Resources, revocable: so.Revocable, expires: so.Expires}
		c.offers[o.id] = o
		c.offerQueue = append(c.offerQueue, o)
		se.offers++
		se.offered = se.offered.Add(o.res)
		if c.cfg.OfferFanout == 1 {
			o.agent.offered = o.agent.offered.Add(o.res)
		}
	}
	for i, sa := range s.Agents {
		for _, id := range sa.Offers {
			o := c.offers[id]
			if o == nil {
				return nil, bad("agent %s lists unknown offer %s", sa.Spec.ID, id)
			}
			c.agents[i].offers = append(c.agents[i].offers, o)
		}
	}
	for _, f := range s.Filters {
		se, ok := c.sessions[f.Session]
		ai, ok2 := c.agentIdx[f.Agent]
		if !ok || !ok2 {
			return nil, bad("filter of unknown session %s or agent %s", f.Session, f.Agent)
		}
		c.filterq.push(&filterExpiry{seq: f.Seq, at: f.At, agent: ai, session: se})
	}
	for _, id := range s.Reclaims {
		tk := c.tasks[id]
		if tk == nil {
			return nil, bad("reclaim of unknown task %s", id)
		}
		c.reclaims = append(c.reclaims, tk)
	}
	c.sessionSeq, c.offerSeq, c.filterSeq, c.freeEpoch, c.planSeq = s.SessionSeq, s.OfferSeq, s.FilterSeq, s.FreeEpoch, s.PlanSeq
	c.treeDirty, c.counters, c.lendHit = s.TreeDirty, s.Counters, s.LendHit
	for _, se := range sortedSessions(c.sessions) {
		se.rekey(c.total)
		c.requeue(se)
	}
	c.hasPending, c.minShape = false, Resources{}
	if s.MinShape != nil {
		c.hasPending, c.minShape = true, *s.MinShape
	}
	for i, a := range c.agents {
		c.reindex(a, false)
		c.roomIdx.restoreGrowth(i, s.Agents[i].RoomGrew)
	}
	c.roomIdx.epoch = s.RoomEpoch
	return c, nil
}
