// Package agent is the node daemon of a Caisson cluster (caisson agent): it
// registers the host's resources with the master, runs the tasks the
// master launches through the containerizer, and reports their status
// updates at least once, from a queue on disk, until the master
// acknowledges them. It survives its own crash: containers keep running
// (each has its own monitor process), and a restarted agent takes them up
// again under the same ID.
//
// Its life (Run):
//
//	serve its own API (ListenAddr, ServerTLS; the master's certificate only):
//	  GET /v1/health, GET /v1/containers/{task}/logs[?follow=true]
//	  (the container's log while it runs, the kept log once it ended)
//	recover: task records + update queue + the containers labelled with its ID
//	  ─▶ running containers are watched again (never restarted)
//	  ─▶ those that exited while it was down get their terminal update
//	  ─▶ a record without a container (a crash during the launch): failed,
//	     "agent restarted during launch"
//	  ─▶ containers of its ID that no record names (orphans): killed, removed
//	register (POST /v1/agent/register: ID, hostname, address, resources,
//	  labels, the tasks it knows), retrying with capped exponential backoff
//	  and jitter; keep the ID the master gives; kill what Registered.Kill names
//	  ─▶ stream (GET /v1/agent/stream?agent=ID): launches and kills
//	     heartbeat every Registered.Heartbeat: usage, resources when changed
//	  ─▶ the stream drops: register again
//
// A task's life:
//
//	launch (ignored for a task it knows) ─▶ record written ─▶ "staging" queued
//	  ─▶ Containers.Launch of the group's template with the grant applied
//	     (CPUs, memory, exactly the granted GPU UUIDs, host ports in order,
//	     PORT0..N, CAISSON_TASK_ID, CAISSON_SESSION_ID, the caisson.task,
//	     caisson.session and caisson.agent labels)
//	     fails ─▶ "failed", reason launch-failed; nothing left behind
//	  ─▶ "running" queued ─▶ Wait
//	     kill: SIGTERM now, SIGKILL at the kill's deadline (or after its
//	     grace, the group's, Config.DefaultKillGrace)
//	  ─▶ the end: killed (the kill's reason) | failed, oom-killed |
//	     finished (exit 0) | failed (the exit code, the termination's reason)
//	     written to the record, queued ─▶ the container's log kept
//	     ─▶ container removed ─▶ record deleted
//
// Under Config.StateDir, every file written atomically:
//
//	agent-id                 the ID the master gave; kept across restarts
//	tasks/t-<escaped ID>.json  a task's record, from before its launch until
//	                         its end is queued and its container removed
//	updates/<seq>.json       the queue of status updates, in order; each is
//	                         deleted once the master acknowledges its UUID
//	logs/<seq>-<escaped ID>.log  an ended task's log (stdout and stderr, as
//	                         the API serves them), kept before its
//	                         container is removed; at most Config.KeptLogs
//	                         (the oldest go first), each at most
//	                         Config.MaxKeptLog bytes of output (the tail,
//	                         after a first line saying how much was dropped)
//
// A crash between keeping a log and removing the container keeps the log
// again at recovery; the newer file replaces the older, and a start
// deletes the temporary files of a keep cut short.
//
// A file that cannot be read is renamed with the suffix .unreadable and
// logged; the agent goes on without it.
package agent
