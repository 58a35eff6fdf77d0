package scheduler_test

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/store"
)

// ExampleCore drives the core as a server does: one goroutine owns it,
// appends each event to the store before the core sees it, steps, and
// acts on the Ready in order. A batch session is placed by the core
// itself (launches); a framework session gets an offer and answers it.
func ExampleCore() {
	st := store.NewMemory()
	core := scheduler.New(scheduler.Config{})
	var seq uint64
	step := func(ev scheduler.Event) {
		// 1. Persist: the event is durable before anything it decides is
		// acted on. A refused event is logged all the same: it changed
		// nothing, and replay refuses it again.
		data, err := scheduler.MarshalEvent(ev)
		if err != nil {
			panic(err)
		}
		seq++
		if err := st.Append(seq, data); err != nil {
			panic(err)
		}
		// 2. Step.
		ready, err := core.Step(ev)
		if err != nil {
			fmt.Printf("refused %T, not found: %t\n", ev, errors.Is(err, api.ErrNotFound))
			return
		}
		// 3. Act, in order; the Ready is reused by the next Step.
		act(ready)
	}

	step(scheduler.ConsumersSet{Consumers: []scheduler.ConsumerSpec{
		{Name: "analytics", Owned: scheduler.Res(4000, 8<<30)},
	}})
	step(scheduler.Tick{Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	step(scheduler.AgentAdded{Agent: scheduler.AgentSpec{ID: "node1", Resources: scheduler.Res(4000, 8<<30)}})
	step(scheduler.SessionSubmitted{Session: scheduler.SessionSpec{
		ID: "etl", Consumer: "analytics",
		Groups: []scheduler.TaskGroup{{Name: "worker", Resources: scheduler.Res(1000, 2<<30), Count: 2}},
	}})
	step(scheduler.SessionSubmitted{Session: scheduler.SessionSpec{
		ID: "notebook", Consumer: "analytics", Kind: scheduler.KindFramework,
		Groups: []scheduler.TaskGroup{{Name: "kernel", Resources: scheduler.Res(1000, 1<<30), Count: 1}},
	}})
	step(scheduler.OfferAccepted{Offer: "o1", Tasks: []scheduler.AcceptedTask{{Group: "kernel", Count: 1}}})
	step(scheduler.TaskFinished{Task: "etl/worker/1"})
	step(scheduler.SessionFinished{Session: "etl"})
	// The agent reports the end of the task the core killed: the core
	// counted it gone with the kill, and refuses the report.
	step(scheduler.TaskFinished{Task: "etl/worker/2"})

	// After a crash: the store gives back every event; replaying them
	// (without acting again) rebuilds the same core.
	loaded, err := st.Load()
	if err != nil {
		panic(err)
	}
	restored := scheduler.New(scheduler.Config{})
	for _, r := range loaded.Events {
		ev, err := scheduler.UnmarshalEvent(r.Data)
		if err != nil {
			panic(err)
		}
		restored.Step(ev) // refused again where it was refused
	}
	live, _ := core.Snapshot()
	again, _ := restored.Snapshot()
	fmt.Printf("replayed %d events; same state: %t\n", len(loaded.Events), bytes.Equal(live, again))

	// Output:
	// launch etl/worker/1 on node1
	// launch etl/worker/2 on node1
	// offer o1 to notebook: node1 cpu=2 mem=4GiB
	// launch notebook/kernel/1 on node1
	// kill etl/worker/2 on node1: the session finished
	// refused scheduler.TaskFinished, not found: true
	// replayed 9 events; same state: true
}

// act carries out a Ready's decisions in the order that keeps every
// party's view consistent: what is withdrawn before what is new, and kills
// before launches, which may use what the kills freed.
func act(r *scheduler.Ready) {
	for _, x := range r.Rescinds {
		fmt.Printf("rescind %s of %s: %s\n", x.Offer, x.Session, x.Reason)
	}
	for _, x := range r.Conflicts {
		fmt.Printf("conflict %s of %s: %s\n", x.Offer, x.Session, x.Reason)
	}
	for _, x := range r.Kills {
		fmt.Printf("kill %s on %s: %s\n", x.Task, x.Agent, x.Reason)
	}
	for _, x := range r.Withdrawals {
		fmt.Printf("withdraw the notice of %s: %s\n", x.Task, x.Reason)
	}
	for _, x := range r.Notices {
		fmt.Printf("notice %s: killed at %s\n", x.Task, x.Deadline.Format(time.RFC3339))
	}
	for _, x := range r.Offers {
		fmt.Printf("offer %s to %s: %s %s\n", x.ID, x.Session, x.Agent, x.Resources)
	}
	for _, x := range r.Launches {
		fmt.Printf("launch %s on %s\n", x.Task, x.Agent)
	}
}
