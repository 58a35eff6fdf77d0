package master

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

// record is one entry of the master's log: a core event, or a fact of the
// master's own. A fact may step a core event that it determines (a session
// spec its SessionSubmitted, an agent's registration its AgentAdded or
// AgentUpdated, a terminal status update of a task the core runs its
// TaskFinished), so that the fact and the event are logged, and applied,
// as one. Exactly one field is set.
type record struct {
	// Event is a core event as scheduler.MarshalEvent writes it.
	Event     json.RawMessage   `json:"event,omitempty"`
	Consumers *api.ConsumerTree `json:"consumers,omitempty"`
	Session   *sessionRecord    `json:"session,omitempty"`
	Agent     *agentRecord      `json:"agent,omitempty"`
	Update    *updateRecord     `json:"update,omitempty"`
	Kill      *killRecord       `json:"kill,omitempty"`
	Token     *tokenRecord      `json:"token,omitempty"`
	Revoke    *revokeRecord     `json:"revoke,omitempty"`
	Acked     *ackRecord        `json:"acked,omitempty"`
	Forget    *forgetRecord     `json:"forget,omitempty"`
	Term      *termRecord       `json:"term,omitempty"`

	// ev is Event decoded (or not yet encoded).
	ev scheduler.Event
}

// sessionRecord is a submitted session: its spec with the template of its
// tasks' containers.
type sessionRecord struct {
	ID        string          `json:"id"`
	User      string          `json:"user,omitempty"`
	Spec      api.SessionSpec `json:"spec"`
	Submitted time.Time       `json:"submitted"`
}

// agentRecord is an agent's registration, or a change of its resources.
type agentRecord struct {
	ID        string            `json:"id"`
	Hostname  string            `json:"hostname"`
	Address   string            `json:"address"`
	Labels    map[string]string `json:"labels,omitempty"`
	Resources api.NodeResources `json:"resources"`
	Time      time.Time         `json:"time"`
}

// updateRecord is a status update applied to a task: from its agent, or
// made by the master (a task its agent does not know).
type updateRecord struct {
	Agent  string           `json:"agent"`
	Update api.StatusUpdate `json:"update"`
}

// killRecord is a user's kill of one task: it is not started again.
type killRecord struct {
	Task   string    `json:"task"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// tokenRecord is a token created; the master keeps only its secret's
// SHA-256.
type tokenRecord struct {
	ID       string    `json:"id"`
	Role     string    `json:"role"`
	Consumer string    `json:"consumer,omitempty"`
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Hash     []byte    `json:"hash"`
}

type revokeRecord struct {
	ID string `json:"id"`
}

// termRecord is the SIGTERM of a batch session's task under a notice,
// sent to its agent with the notice's deadline for the SIGKILL.
type termRecord struct {
	Task string `json:"task"`
}

// forgetRecord drops finished sessions, with their tasks, from the
// master's tables once their retention is over.
type forgetRecord struct {
	Sessions []string `json:"sessions"`
}

// ackRecord is a framework session's acknowledgement of status updates.
type ackRecord struct {
	Session string   `json:"session"`
	UUIDs   []string `json:"uuids"`
}

func eventRecord(ev scheduler.Event) *record { return &record{ev: ev} }

// encode writes the record, encoding its event first.
func (r *record) encode() ([]byte, error) {
	if r.ev != nil && r.Event == nil {
		data, err := scheduler.MarshalEvent(r.ev)
		if err != nil {
			return nil, err
		}
		r.Event = data
	}
	return json.Marshal(r)
}

// decodeRecord reads what encode wrote; unknown fields are errors.
func decodeRecord(data []byte) (*record, error) {
	var r record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if r.Event != nil {
		ev, err := scheduler.UnmarshalEvent(r.Event)
		if err != nil {
			return nil, err
		}
		r.ev = ev
	}
	return &r, nil
}
