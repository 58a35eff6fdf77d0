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
package scheduler
