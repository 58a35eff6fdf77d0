// Package master is the cluster's master: the server that puts the pure
// scheduler core (package scheduler) in charge of agents and sessions. It
// serves the HTTPS API of docs/api.md, persists every decision's cause
// before acting on it, and talks to agents over their streams.
//
// # The loop
//
// One goroutine, Run's, owns the core and the master's tables. HTTP
// handlers decode and check a request, then hand the loop an operation and
// wait. The loop takes what is queued (calls, agent messages, a tick) as
// one group, up to a bound:
//
//	calls ──▶ apply each: records logged, core stepped, tables changed,
//	          actions queued ──▶ store.AppendBatch (one transaction)
//	      ──▶ actions (launches and kills to agents' streams; offers,
//	          rescinds, notices, updates to sessions' streams)
//	      ──▶ answers to the callers
//
// so a caller is answered, and an agent or a session hears of a decision,
// only once the records that caused it are durable; a store that fails
// stops the master (its memory is then ahead of its log).
//
// # The log
//
// The master's state is a function of its log of records (record.go):
// core events (scheduler.MarshalEvent), and facts of the master's own,
// some of which step the one core event they determine:
//
//	consumers  the admin's tree             → ConsumersSet
//	session    a spec and its containers    → SessionSubmitted
//	agent      a registration, a resource   → AgentAdded or AgentUpdated
//	           change (heartbeat)
//	update     a task's status update       → TaskFinished, when it ends a
//	                                          task the core runs
//	kill       a user's kill of one task    → TaskFinished (done: not
//	                                          started again)
//	token, revoke, acked                    (the master's alone)
//
// apply is the one function that changes the tables, live and on replay;
// the core's decisions (Ready) are taken into the tables by absorb, which
// queues their messages only when live. A record the master or the core
// refuses changes nothing and is not written. New replays the latest
// snapshot (the tables and core.Snapshot(), every Config.SnapshotEvery
// records) and the log after it, acting on nothing.
//
// Time moves by ticks, records like any other: every TickInterval, and at
// the core's NextDeadline. A tick that would decide nothing (the last one
// decided nothing and no event came since, scheduler.Core.NextDeadline)
// is not stepped nor written; before the next event the core's clock is
// brought up to date with a tick when it lags by more than TickInterval.
//
// # Agents
//
// An agent registers (mutual TLS with an agent certificate, and an agent
// token): a new one gets an ID, a returning one keeps its own. The master
// reconciles: its tasks on the agent that the agent does not list are
// lost (reason "lost-by-agent"; the core places them again); those the
// agent lists that the master does not know, or ended or replaced, are in
// Registered.Kill. Launches and kills go on the agent's NDJSON stream; a
// stream that (re)connects starts with every launch the agent has not
// reported and every kill it has not confirmed (agents dedup launches by
// task ID). An agent that neither heartbeats nor holds its stream for
// HeartbeatTimeout is disconnected: the core places nothing new on it
// (AgentUpdated, unhealthy) until it is heard from again. For
// AgentLostTimeout more it is lost (AgentLost: its tasks end "lost",
// reason "agent-lost", and are placed again); when it comes back it
// registers again and its old tasks are killed. A restarted master takes
// nothing from an agent (stream, updates, heartbeats: 404 naming the
// agent) until it has registered again and been reconciled.
//
// Status updates are applied once: an update that does not move a task
// forward (staging, running, then an end) is acknowledged and changes
// nothing. Updates are acknowledged only after they are durable.
//
// # Sessions
//
// The master chooses a session's ID (8 lower-case letters and digits). A
// batch session ends when its groups want no more tasks. A notice
// (reclaim, preemption) goes to the session's stream and, unless it is a
// framework session, as a kill with the notice's deadline to the agent
// (SIGTERM now, SIGKILL at the deadline). Framework sessions get offers on
// their stream and answer them; their status updates are kept until
// acknowledged and sent again when a stream reconnects.
//
// # Security
//
// Tokens are "ID.SECRET"; the master keeps the SHA-256 of each and
// compares in constant time. A tenant sees and acts on the sessions of its
// consumer's subtree only (others are not found); the consumer tree,
// tokens, agents and metrics are the admin's.
package master
