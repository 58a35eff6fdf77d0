package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one input of the core. The set is closed: the types below.
type Event interface{ event() string }

// Tick advances the core's clock. Time only moves through ticks; every
// other event happens at the time of the last tick. Offers expire, filters
// lapse, reclaim grace periods end and deserved shares are recomputed on
// ticks.
type Tick struct {
	Now time.Time `json:"now"`
}

// ConsumersSet replaces the consumer tree. Consumers that hold sessions
// must stay.
type ConsumersSet struct {
	Consumers []ConsumerSpec `json:"consumers"`
}

// AgentAdded registers an agent; its free resources are offered from now
// on.
type AgentAdded struct {
	Agent AgentSpec `json:"agent"`
}

// AgentUpdated changes an agent's resources, attributes or GPUs. Running
// tasks stay; outstanding offers that no longer fit are rescinded.
type AgentUpdated struct {
	Agent AgentSpec `json:"agent"`
	// Unhealthy stops new offers for the agent; its tasks keep running.
	Unhealthy bool `json:"unhealthy,omitempty"`
}

// AgentLost removes an agent. Its tasks are lost: they go back to pending.
type AgentLost struct {
	ID string `json:"id"`
}

// SessionSubmitted starts a session.
type SessionSubmitted struct {
	Session SessionSpec `json:"session"`
}

// SessionUpdated sets how many tasks a group wants (pending and running):
// Spark's dynamic allocation asking for more executors, or releasing idle
// ones (the youngest running tasks beyond Count are killed).
type SessionUpdated struct {
	Session string `json:"session"`
	Group   string `json:"group"`
	Count   int    `json:"count"`
}

// SessionFinished ends a session: its tasks are killed, its offers
// rescinded.
type SessionFinished struct {
	Session string `json:"session"`
}

// OfferAccepted is a framework session's answer to an offer: launch these
// tasks on the offer's agent. It is checked against the agent as it is now,
// not as it was offered, and committed whole or rejected with a conflict.
type OfferAccepted struct {
	Offer string         `json:"offer"`
	Tasks []AcceptedTask `json:"tasks"`
}

// AcceptedTask asks for Count tasks of a group.
type AcceptedTask struct {
	Group string `json:"group"`
	Count int    `json:"count"`
}

// OfferDeclined gives an offer back. The agent is not offered to the
// session again for Refuse (Config.Refuse when zero).
type OfferDeclined struct {
	Offer  string        `json:"offer"`
	Refuse time.Duration `json:"refuse,omitempty"`
}

// Suppress stops offers to a session until Revive.
type Suppress struct {
	Session string `json:"session"`
}

// Revive resumes offers to a session and clears its decline filters.
type Revive struct {
	Session string `json:"session"`
}

// TaskFinished says a task ended. A task that succeeded is done: its
// group's Count drops by one. A failed task goes back to pending.
type TaskFinished struct {
	Task   string `json:"task"`
	Failed bool   `json:"failed,omitempty"`
}

func (Tick) event() string             { return "tick" }
func (ConsumersSet) event() string     { return "consumers_set" }
func (AgentAdded) event() string       { return "agent_added" }
func (AgentUpdated) event() string     { return "agent_updated" }
func (AgentLost) event() string        { return "agent_lost" }
func (SessionSubmitted) event() string { return "session_submitted" }
func (SessionUpdated) event() string   { return "session_updated" }
func (SessionFinished) event() string  { return "session_finished" }
func (OfferAccepted) event() string    { return "offer_accepted" }
func (OfferDeclined) event() string    { return "offer_declined" }
func (Suppress) event() string         { return "suppress" }
func (Revive) event() string           { return "revive" }
func (TaskFinished) event() string     { return "task_finished" }

// newEvent returns a zero event of a type name.
func newEvent(name string) (Event, bool) {
	switch name {
	case "tick":
		return &Tick{}, true
	case "consumers_set":
		return &ConsumersSet{}, true
	case "agent_added":
		return &AgentAdded{}, true
	case "agent_updated":
		return &AgentUpdated{}, true
	case "agent_lost":
		return &AgentLost{}, true
	case "session_submitted":
		return &SessionSubmitted{}, true
	case "session_updated":
		return &SessionUpdated{}, true
	case "session_finished":
		return &SessionFinished{}, true
	case "offer_accepted":
		return &OfferAccepted{}, true
	case "offer_declined":
		return &OfferDeclined{}, true
	case "suppress":
		return &Suppress{}, true
	case "revive":
		return &Revive{}, true
	case "task_finished":
		return &TaskFinished{}, true
	}
	return nil, false
}

// MarshalEvent encodes an event as one JSON object with a single key, the
// event's type: {"agent_added":{"agent":{...}}}.
func MarshalEvent(ev Event) ([]byte, error) {
	if ev == nil {
		return nil, fmt.Errorf("marshal event: nil event")
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", ev.event(), err)
	}
	var b bytes.Buffer
	b.WriteString(`{"`)
	b.WriteString(ev.event())
	b.WriteString(`":`)
	b.Write(body)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalEvent decodes what MarshalEvent encodes. Unknown event types
// and unknown fields are errors. The event is returned by value.
func UnmarshalEvent(data []byte) (Event, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	if len(m) != 1 {
		return nil, fmt.Errorf("decode event: want an object with one key, the event type; got %d keys", len(m))
	}
	for name, body := range m {
		ev, ok := newEvent(name)
		if !ok {
			return nil, fmt.Errorf("decode event: unknown event type %q", name)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(ev); err != nil {
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		return deref(ev), nil
	}
	panic("unreachable")
}

// deref turns the pointer newEvent made into the value type Step takes.
func deref(ev Event) Event {
	switch e := ev.(type) {
	case *Tick:
		return *e
	case *ConsumersSet:
		return *e
	case *AgentAdded:
		return *e
	case *AgentUpdated:
		return *e
	case *AgentLost:
		return *e
	case *SessionSubmitted:
		return *e
	case *SessionUpdated:
		return *e
	case *SessionFinished:
		return *e
	case *OfferAccepted:
		return *e
	case *OfferDeclined:
		return *e
	case *Suppress:
		return *e
	case *Revive:
		return *e
	case *TaskFinished:
		return *e
	}
	return ev
}
