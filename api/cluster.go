package api

import "time"

// The cluster's wire types: what the CLI, framework programs and agents
// send to the master and what it answers, as JSON over HTTPS under /v1/
// (docs/api.md is the reference). A host is described once, by
// NodeResources; a task once, by TaskGroup's template; a task's end once,
// by StatusUpdate. Package scheduler converts them into the core's types
// in one place (scheduler/wire.go).

// APIVersion prefixes every path of the master's API.
const APIVersion = "v1"

// Roles a token may have.
const (
	// RoleAdmin sets the consumer tree, creates tokens, sees agents and
	// acts on every session.
	RoleAdmin = "admin"
	// RoleTenant acts on the sessions under its consumer only.
	RoleTenant = "tenant"
	// RoleAgent is an agent daemon: it registers, takes launches and sends
	// status updates. It must also present the cluster's client
	// certificate.
	RoleAgent = "agent"
)

// Consumer is one node of the consumer tree as an admin writes it. Its
// path names it: "/eng/ml" is "ml" under "eng" under the root.
type Consumer struct {
	// Path is absolute: "/" then names joined by "/"; each name is
	// ValidName's.
	Path string `json:"path"`
	// Weight shares what is left after every sibling's owned resources;
	// 0 means 1.
	Weight float64 `json:"weight,omitempty"`
	// Owned is guaranteed; Limit caps what the consumer may hold,
	// borrowed included (a zero field is no limit).
	Owned TaskResources `json:"owned,omitzero"`
	Limit TaskResources `json:"limit,omitzero"`
	// NoLend keeps idle owned resources from other consumers.
	NoLend bool `json:"no_lend,omitempty"`
	// Grace is the reclaim grace period: how long a borrower's task runs
	// after its notice. Zero is the master's default.
	Grace Duration `json:"grace,omitempty"`
}

// ConsumerTree is the whole tree, set at once (caisson consumer apply).
type ConsumerTree struct {
	Consumers []Consumer `json:"consumers"`
}

// ConsumerStatus is a consumer with its accounting.
type ConsumerStatus struct {
	Consumer
	Leaf     bool          `json:"leaf"`
	Held     TaskResources `json:"held"`
	Deserved TaskResources `json:"deserved"`
	Pending  TaskResources `json:"pending"`
	Sessions int           `json:"sessions"`
}

// TaskResources is what one task asks for, or a consumer owns. GPUs may be
// a fraction of one device (0.25) or whole devices (2).
type TaskResources struct {
	CPUs        float64 `json:"cpus,omitempty"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	DiskBytes   int64   `json:"disk_bytes,omitempty"`
	GPUs        float64 `json:"gpus,omitempty"`
	// Ports is how many host ports the task is given; they reach it as
	// the PORT0, PORT1, ... environment variables, and TaskGroup.Ports
	// publishes container ports on them.
	Ports int `json:"ports,omitempty"`
}

// TokenRequest creates a token (admin only).
type TokenRequest struct {
	// Role is RoleTenant (the default) or RoleAdmin or RoleAgent.
	Role string `json:"role,omitempty"`
	// Consumer binds a tenant token: it sees and acts on the sessions of
	// this consumer and its subtree.
	Consumer string `json:"consumer,omitempty"`
	// Name says whose the token is, for the admin's list.
	Name string `json:"name,omitempty"`
	// TTL ends the token's validity; zero never does.
	TTL Duration `json:"ttl,omitempty"`
}

// Token is a token as the master lists it. Secret is set only in the
// answer to its creation: the master keeps only its hash.
type Token struct {
	ID       string    `json:"id"`
	Role     string    `json:"role"`
	Consumer string    `json:"consumer,omitempty"`
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Secret   string    `json:"secret,omitempty"`
}

// Session kinds on the wire; the same strings as the core's.
const (
	SessionBatch     = "batch"
	SessionFramework = "framework"
	SessionSpark     = "spark"
	SessionPods      = "pods"
)

// SessionSpec is what a tenant submits (caisson submit job.yaml).
type SessionSpec struct {
	// Name is the user's; the master gives the session its ID.
	Name string `json:"name"`
	// Consumer is the leaf consumer the session runs under; a tenant
	// token's consumer when empty.
	Consumer string `json:"consumer,omitempty"`
	// Priority orders the consumer's sessions; higher may preempt lower.
	Priority int `json:"priority,omitempty"`
	// Kind is SessionBatch (the default), SessionFramework (the program
	// places its tasks itself, from offers), SessionSpark or SessionPods.
	Kind string `json:"kind,omitempty"`
	// Policy is "binpack" (the default) or "spread".
	Policy string      `json:"policy,omitempty"`
	Groups []TaskGroup `json:"groups"`
	// Labels are the user's, shown by session inspect (Spark puts its
	// application ID here).
	Labels map[string]string `json:"labels,omitempty"`
}

// TaskGroup is a set of identical tasks.
type TaskGroup struct {
	Name string `json:"name"`
	// Count is how many tasks should run; Min is the gang size (the first
	// Min start together or not at all); Max caps Count.
	Count     int           `json:"count"`
	Min       int           `json:"min,omitempty"`
	Max       int           `json:"max,omitempty"`
	Resources TaskResources `json:"resources"`
	// Constraints restrict the agents by attribute.
	Constraints []Constraint `json:"constraints,omitempty"`
	// GPUModels, when set, are the GPU models a task may use; SameIsland
	// asks for a task's GPUs on one NVLink island.
	GPUModels  []string `json:"gpu_models,omitempty"`
	SameIsland bool     `json:"same_island,omitempty"`
	// Container is the template of each task's container: image (any
	// form caisson run takes) or host filesystem, command, env, networks,
	// volumes. Its Resources, GPUs and port mappings' host ports are set
	// by the scheduler's grant, not here.
	Container ContainerSpec `json:"container"`
	// Ports publish container ports on the task's granted host ports, in
	// order: the first on the first granted port, and so on. Their
	// HostPort must be 0.
	Ports []PortMapping `json:"ports,omitempty"`
	// KillGrace is how long a task has between SIGTERM and SIGKILL when
	// it is killed; zero is the agent's default.
	KillGrace Duration `json:"kill_grace,omitempty"`
}

// Constraint restricts the agents a task may run on by an attribute.
type Constraint struct {
	Attribute string   `json:"attribute"`
	Op        string   `json:"op"` // "in" or "not_in"
	Values    []string `json:"values"`
}

// Session is a session as the master reports it.
type Session struct {
	ID        string        `json:"id"`
	Spec      SessionSpec   `json:"spec"`
	State     string        `json:"state"` // "running" or "finished"
	Submitted time.Time     `json:"submitted"`
	Finished  time.Time     `json:"finished,omitzero"`
	Groups    []GroupStatus `json:"groups"`
}

// GroupStatus is a task group's progress.
type GroupStatus struct {
	Name    string `json:"name"`
	Count   int    `json:"count"`
	Running int    `json:"running"`
	Pending int    `json:"pending"`
}

// ScaleRequest sets how many tasks a group wants.
type ScaleRequest struct {
	Group string `json:"group"`
	Count int    `json:"count"`
}

// Task states, in the order a task goes through them. Finished, failed,
// killed and lost are terminal.
const (
	TaskStaging  = "staging"  // sent to its agent, not yet running
	TaskRunning  = "running"  // its container runs
	TaskFinished = "finished" // exited 0
	TaskFailed   = "failed"   // exited non-zero, or could not launch
	TaskKilled   = "killed"   // stopped by a kill, a reclaim or a scale-down
	TaskLost     = "lost"     // its agent was lost, or does not know it
)

// TaskTerminal reports whether a task state is an end.
func TaskTerminal(state string) bool {
	switch state {
	case TaskFinished, TaskFailed, TaskKilled, TaskLost:
		return true
	}
	return false
}

// Task is one task as the master reports it.
type Task struct {
	ID      string `json:"id"`
	Session string `json:"session"`
	Group   string `json:"group"`
	Agent   string `json:"agent"`
	State   string `json:"state"`
	// Resources, GPUs and Ports are the grant.
	Resources TaskResources `json:"resources"`
	GPUs      []string      `json:"gpus,omitempty"`
	Ports     []int         `json:"ports,omitempty"`
	Revocable bool          `json:"revocable,omitempty"`
	// Container is the agent's container ID once it launched.
	Container string `json:"container,omitempty"`
	ExitCode  *int   `json:"exit_code,omitempty"`
	// Reason is why it ended ("oom-killed", "reclaimed", "launch-failed:
	// ...", "agent-lost").
	Reason   string    `json:"reason,omitempty"`
	Message  string    `json:"message,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"` // of a reclaim notice
	Launched time.Time `json:"launched"`
	Ended    time.Time `json:"ended,omitzero"`
	// Usage is what the task's container used at its agent's last
	// heartbeat while it ran (CPU time, memory, pids, network, GPUs); its
	// Timestamp says when. Nil before the first.
	Usage *Usage `json:"usage,omitempty"`
}

// Agent is an agent as the master reports it.
type Agent struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	// Address is where the agent's own API listens (logs).
	Address   string        `json:"address"`
	State     string        `json:"state"` // "connected", "disconnected", "lost"
	Resources NodeResources `json:"resources"`
	// Attributes are what constraints match: arch, os, hostname and the
	// admin's labels.
	Attributes map[string]string `json:"attributes"`
	LastSeen   time.Time         `json:"last_seen"`
	Tasks      int               `json:"tasks"`
}

// AgentRegistration is what an agent says when it connects: who it is,
// what it offers, and the tasks it still runs (after a restart).
type AgentRegistration struct {
	// ID is the agent's own, kept in its state dir; empty the first time,
	// when the master gives one.
	ID        string        `json:"id,omitempty"`
	Hostname  string        `json:"hostname"`
	Address   string        `json:"address"`
	Resources NodeResources `json:"resources"`
	// Labels are the admin's attributes for constraints (zone, rack).
	Labels map[string]string `json:"labels,omitempty"`
	// Tasks are the tasks the agent runs or keeps undelivered updates for.
	Tasks []AgentTask `json:"tasks,omitempty"`
}

// AgentTask is a task an agent knows.
type AgentTask struct {
	ID        string `json:"id"`
	Container string `json:"container"`
	State     string `json:"state"`
}

// Registered is the master's answer to a registration.
type Registered struct {
	ID string `json:"id"`
	// Heartbeat is how often the agent must say it is alive.
	Heartbeat Duration `json:"heartbeat"`
	// Kill are tasks the agent runs that the master has replaced or
	// does not know: the agent kills them.
	Kill []string `json:"kill,omitempty"`
}

// AgentMessage is one line of the stream a master sends an agent: one of
// its fields is set.
type AgentMessage struct {
	Launch *TaskLaunch `json:"launch,omitempty"`
	Kill   *TaskKill   `json:"kill,omitempty"`
	// Ping keeps the stream alive through idle periods.
	Ping bool `json:"ping,omitempty"`
}

// TaskLaunch asks an agent to run a task.
type TaskLaunch struct {
	Task      string        `json:"task"`
	Session   string        `json:"session"`
	Group     string        `json:"group"`
	Resources TaskResources `json:"resources"`
	GPUs      []string      `json:"gpus,omitempty"`
	Ports     []int         `json:"ports,omitempty"`
	// Container is the group's template; the agent sets its resources,
	// GPUs and host ports from the grant.
	Container ContainerSpec `json:"container"`
	PortMaps  []PortMapping `json:"port_maps,omitempty"`
	KillGrace Duration      `json:"kill_grace,omitempty"`
}

// TaskKill asks an agent to stop a task: SIGTERM now, SIGKILL at Deadline
// (or after Grace when Deadline is zero).
type TaskKill struct {
	Task     string    `json:"task"`
	Reason   string    `json:"reason"`
	Grace    Duration  `json:"grace,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
}

// StatusUpdate is a task's change of state, sent by its agent until the
// master acknowledges its UUID.
type StatusUpdate struct {
	UUID      string    `json:"uuid"`
	Task      string    `json:"task"`
	State     string    `json:"state"`
	Container string    `json:"container,omitempty"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Message   string    `json:"message,omitempty"`
	Time      time.Time `json:"time"`
}

// StatusUpdates is a batch of updates from one agent.
type StatusUpdates struct {
	Agent   string         `json:"agent"`
	Updates []StatusUpdate `json:"updates"`
}

// Acks acknowledges status updates by UUID.
type Acks struct {
	UUIDs []string `json:"uuids"`
}

// Heartbeat says an agent is alive, with what its tasks use and, when they
// changed, its resources (a GPU's health).
type Heartbeat struct {
	Agent     string           `json:"agent"`
	Usage     map[string]Usage `json:"usage,omitempty"`
	Resources *NodeResources   `json:"resources,omitempty"`
}

// SessionEvent is one line of a framework session's event stream: one of
// its fields is set.
type SessionEvent struct {
	Offer      *Offer        `json:"offer,omitempty"`
	Rescind    *Rescind      `json:"rescind,omitempty"`
	Conflict   *Rescind      `json:"conflict,omitempty"`
	Update     *StatusUpdate `json:"update,omitempty"`
	Notice     *Notice       `json:"notice,omitempty"`
	Withdrawal *Notice       `json:"withdrawal,omitempty"`
	Ping       bool          `json:"ping,omitempty"`
}

// Offer gives an agent's free resources to a framework session.
type Offer struct {
	ID        string        `json:"id"`
	Agent     string        `json:"agent"`
	Resources TaskResources `json:"resources"`
	GPUs      []string      `json:"gpus,omitempty"`
	Ports     []PortRange   `json:"ports,omitempty"`
	// Attributes are the agent's, for the program's own constraints.
	Attributes map[string]string `json:"attributes,omitempty"`
	Revocable  bool              `json:"revocable,omitempty"`
}

// Rescind voids an offer, or says an accept was rejected.
type Rescind struct {
	Offer  string `json:"offer"`
	Reason string `json:"reason"`
}

// Notice warns that a task will be killed at Deadline to give its
// resources back; a withdrawal (Deadline zero) cancels it.
type Notice struct {
	Task     string    `json:"task"`
	Deadline time.Time `json:"deadline,omitzero"`
	Reason   string    `json:"reason"`
}

// Accept launches tasks of a framework session's groups on an offer.
type Accept struct {
	Offer string        `json:"offer"`
	Tasks []AcceptTasks `json:"tasks"`
}

// AcceptTasks asks for Count tasks of a group.
type AcceptTasks struct {
	Group string `json:"group"`
	Count int    `json:"count"`
}

// Decline gives an offer back; the agent is not offered to the session
// again for Refuse (the master's default when zero).
type Decline struct {
	Offer  string   `json:"offer"`
	Refuse Duration `json:"refuse,omitempty"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	// Code is the sentinel's name: invalid, not_found, conflict,
	// forbidden, unauthorized, too_large, unavailable, internal.
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field is the JSON path of the field at fault, when one is.
	Field string `json:"field,omitempty"`
}

// Health is what the open /v1/health answers.
type Health struct {
	Status  string `json:"status"` // "ok"
	Version string `json:"version"`
	Role    string `json:"role"` // "master" or "agent"
}
