package master

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

// snapshotVersion is the layout of the master's snapshots.
const snapshotVersion = 1

// snapshotData is the master's tables and the core, between two groups.
// What is not persisted (streams, agents' liveness) is not in it.
type snapshotData struct {
	Version   int              `json:"version"`
	Core      json.RawMessage  `json:"core"`
	Consumers api.ConsumerTree `json:"consumers"`
	Sessions  []snapSession    `json:"sessions"`
	Tasks     []snapTask       `json:"tasks"`
	TaskSeq   uint64           `json:"task_seq"`
	Agents    []snapAgent      `json:"agents"`
	Tokens    []*tokenRecord   `json:"tokens"`
	Offers    []snapOffer      `json:"offers"`
	Idle      bool             `json:"idle,omitempty"`
}

type snapSession struct {
	Record   sessionRecord      `json:"record"`
	Finished time.Time          `json:"finished,omitzero"`
	Groups   []api.GroupStatus  `json:"groups,omitempty"`
	Unacked  []api.StatusUpdate `json:"unacked,omitempty"`
}

type snapTask struct {
	api.Task
	Seq     uint64        `json:"seq"`
	InCore  bool          `json:"in_core,omitempty"`
	Heard   bool          `json:"heard,omitempty"`
	Kill    *api.TaskKill `json:"kill,omitempty"`
	Notice  string        `json:"notice,omitempty"`
	Preempt bool          `json:"preempt,omitempty"`
}

type snapAgent struct {
	Record      agentRecord `json:"record"`
	Lost        bool        `json:"lost,omitempty"`
	Unreachable bool        `json:"unreachable,omitempty"`
}

type snapOffer struct {
	Session string    `json:"session"`
	Offer   api.Offer `json:"offer"`
}

func (m *Master) encodeSnapshot() ([]byte, error) {
	core, err := m.core.Snapshot()
	if err != nil {
		return nil, err
	}
	s := snapshotData{Version: snapshotVersion, Core: core, Consumers: m.consumers, TaskSeq: m.taskSeq, Idle: m.idle}
	for _, x := range m.sessions {
		s.Sessions = append(s.Sessions, snapSession{Record: x.rec, Finished: x.finished, Groups: x.groups, Unacked: x.unacked})
	}
	slices.SortFunc(s.Sessions, func(a, b snapSession) int { return cmp.Compare(a.Record.ID, b.Record.ID) })
	for _, t := range sortedTasks(m.tasks) {
		tk := t.Task
		tk.Usage = nil // a sample, not state: see takeUsage
		s.Tasks = append(s.Tasks, snapTask{Task: tk, Seq: t.seq, InCore: t.inCore, Heard: t.heard, Kill: t.kill, Notice: t.notice, Preempt: t.preempt})
	}
	for _, a := range sortedAgents(m.agents) {
		s.Agents = append(s.Agents, snapAgent{Record: a.reg, Lost: a.lost, Unreachable: a.unreachable})
	}
	for _, t := range m.tokens {
		s.Tokens = append(s.Tokens, t)
	}
	slices.SortFunc(s.Tokens, func(a, b *tokenRecord) int { return cmp.Compare(a.ID, b.ID) })
	for _, o := range m.offers {
		s.Offers = append(s.Offers, snapOffer{Session: o.session, Offer: o.offer})
	}
	slices.SortFunc(s.Offers, func(a, b snapOffer) int { return cmp.Compare(a.Offer.ID, b.Offer.ID) })
	return json.Marshal(s)
}

// restore loads the tables and the core from a snapshot.
func (m *Master) restore(data []byte) error {
	var s snapshotData
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("%w: %w", err, api.ErrUnreadable)
	}
	if s.Version != snapshotVersion {
		return fmt.Errorf("snapshot version %d, this master reads %d: %w", s.Version, snapshotVersion, api.ErrUnreadable)
	}
	core, err := scheduler.Restore(s.Core)
	if err != nil {
		return err
	}
	m.core, m.consumers, m.leaves, m.taskSeq, m.idle = core, s.Consumers, leafPaths(s.Consumers), s.TaskSeq, s.Idle
	for _, x := range s.Sessions {
		m.sessions[x.Record.ID] = &session{rec: x.Record, finished: x.Finished, groups: x.Groups, unacked: x.Unacked, streams: map[*stream]struct{}{}}
	}
	for _, x := range s.Agents {
		a := &agent{reg: x.Record, lost: x.Lost, unreachable: x.Unreachable, tasks: map[string]*task{}}
		a.attrs = a.spec().Attributes
		m.agents[x.Record.ID] = a
	}
	for _, x := range s.Tasks {
		t := &task{Task: x.Task, seq: x.Seq, inCore: x.InCore, heard: x.Heard, kill: x.Kill, notice: x.Notice, preempt: x.Preempt}
		m.tasks[t.ID] = t
		if ss := m.sessions[t.Session]; ss != nil {
			ss.tasks = append(ss.tasks, t)
		}
		if a := m.agents[t.Agent]; a != nil && !t.ended() {
			a.tasks[t.ID] = t
		}
	}
	for _, t := range m.tasks {
		if m.awaitsTerm(t) {
			m.noticed[t.ID] = t
		}
	}
	for _, t := range s.Tokens {
		m.tokens[t.ID] = t
	}
	for _, o := range s.Offers {
		m.offers[o.Offer.ID] = &offer{session: o.Session, offer: o.Offer}
	}
	return nil
}
