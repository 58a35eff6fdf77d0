// Package scheduler is the optimistic-offer session scheduler's core: a
// pure, deterministic state machine in the style of etcd's raft. Events go
// in through Step (agents, consumers, sessions, offer answers, finished
// tasks, and ticks that carry the time); a Ready comes out with the
// decisions (offers, rescinds, launches, notices and their withdrawals,
// kills, conflicts). The
// core does no I/O, starts no goroutine and reads no clock: the same events
// give the same decisions, which is what makes the simulator, the golden
// tests and restore-after-crash work.
//
//	events ──Step──▶ Core ──Ready──▶ caller (server or simulator)
//	   ▲                                  │
//	   └──── accepts, declines, task ends ┘
//
// The consumer tree owns the cluster: each consumer has owned resources
// (guaranteed), a share weight for the rest, a limit, whether it lends its
// idle owned resources, and a reclaim grace period. Deserved shares are
// computed top down: owned first, then weighted dominant-resource fairness
// over the remainder, capped by limit and demand.
//
// Free resources of an agent are given, best-served consumer first, to
// the sessions that wait. A framework session gets an offer; with an offer
// fan-out K above one the same resources go to up to K sessions at once,
// the first valid accept wins and the others are rescinded or rejected
// with a conflict (K = 1 is Mesos' pessimistic offer). Every other session
// is placed by the built-in session scheduler: binpack or spread, GPU
// devices by NVLink island, gangs all or nothing. A task that asks for
// ports on an agent that names its port ranges is given the lowest free
// port numbers, as Mesos agents' ports resource does. Tasks beyond a
// consumer's owned share run on borrowed (revocable) resources; an owner
// whose demand returns takes them back after its grace period: the tasks
// that must go get a notice with a deadline, and the notice is withdrawn
// when the owner no longer needs the room before then (its session ended
// or shrank, or its tasks found room elsewhere). Priority preemption
// inside a consumer works the same way.
//
// # Using the core
//
// A Core is not safe for concurrent use: one goroutine owns it (a server's
// loop, the simulator) and is the only one that calls Step. ExampleCore
// shows the whole loop:
//
//	core, seq := ..., loaded.Next()      // New, or Restore and replay what store.Load gave
//	for ev := range events {             // from agents, sessions, the API, the clock
//		data, _ := scheduler.MarshalEvent(ev)
//		st.Append(seq, data)         // 1. persist the event (scheduler/store)
//		seq++
//		ready, err := core.Step(ev)  // 2. step
//		if err == nil {
//			act(ready)           // 3. act on the decisions, in order
//		}
//	}
//
// Persist each event before acting on its Ready. The core's state is a
// function of the events it was given, so the log of events (and, from
// time to time, a Snapshot taken between two Steps, saved with
// store.SaveSnapshot at the sequence number of the last event it includes)
// is the whole state; decisions are never persisted, replay makes them
// again. Were a decision acted on before its event was durable, a crash
// could leave agents running a task, or sessions holding an offer, that the
// restored core never decided. The other way round is safe: after a crash
// between persisting and acting, the restored core believes the decisions
// were carried out, and the server reconciles them with what agents and
// sessions report: it reports a launch that no agent received as a failed
// TaskFinished, which makes the task pending again, and an offer that no
// session received is rescinded once Config.OfferTimeout has passed.
// Replay steps the logged events without acting on their Readies.
// Appending before Step, as the example does, logs refused events too: a
// refused event changed nothing and replay refuses it again, so that is
// harmless.
//
// Step refuses an event that is malformed or names what the core does not
// know, with an error wrapping api.ErrInvalid, api.ErrNotFound or
// api.ErrConflict, and changes nothing: there is nothing to act on. Time
// only moves through Tick, which is an event like any other and persisted
// like one; NextDeadline says when the next tick has something to do.
//
// Act on a Ready in this order, which is the order Ready.String prints:
//
//  1. Rescinds: tell each session that its offer is void, before it sees
//     new offers of the same resources.
//  2. Conflicts: tell each session that its accept was rejected.
//  3. Kills: stop the tasks now. The core has already ended them and freed
//     their resources (a later TaskFinished of a killed task is refused as
//     not found), and a launch of the same Ready may use what they free.
//  4. Withdrawals, then Notices: a withdrawal cancels an earlier notice; a
//     notice warns a session that a task will be killed at its Deadline.
//     The core itself kills it then, in the Ready of a tick at or after the
//     deadline: the server does not.
//  5. Offers: to framework sessions (KindFramework), which answer with
//     OfferAccepted or OfferDeclined.
//  6. Launches: start the tasks on their agents, on the GPUs and host ports
//     named; report each task's end with TaskFinished.
//
// Within each list, act in the list's order. The Ready and its slices are
// reused by the next Step: copy what must outlive it.
package scheduler
