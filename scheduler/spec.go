package scheduler

import (
	"time"

	"github.com/caisson/caisson/api"
)

// AgentSpec is what an agent offers: its resources, attributes and GPUs.
type AgentSpec struct {
	ID        string    `json:"id"`
	Resources Resources `json:"resources"`
	// Attributes are matched by constraints: arch (amd64, ppc64le), zone,
	// gpu_model and whatever the admin sets.
	Attributes map[string]string `json:"attributes,omitempty"`
	// GPUs are the agent's devices. Resources[GPU] must be 1000 times their
	// number.
	GPUs []GPUDevice `json:"gpus,omitempty"`
	// PortRanges name the agent's host ports, apart and in order; tasks
	// that ask for ports are given the lowest free ones (Launch.Ports).
	// Resources[Ports] counts them; without ranges it is a bare count and
	// tasks get no port numbers.
	PortRanges []api.PortRange `json:"port_ranges,omitempty"`
}

// GPUDevice is one GPU of an agent.
type GPUDevice struct {
	ID          string `json:"id"` // the UUID
	Model       string `json:"model,omitempty"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	// Island numbers the agent's NVLink islands: GPUs with the same number
	// reach each other over NVLink.
	Island int `json:"island,omitempty"`
}

// ConsumerSpec is one node of the consumer tree: a business unit, a team, a
// user. Sessions run under leaf consumers.
type ConsumerSpec struct {
	// Name is unique in the tree. Parent is "" for a child of the root.
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
	// Weight is the share ratio among siblings for what is left after
	// every sibling's owned resources; 0 means 1.
	Weight float64 `json:"weight,omitempty"`
	// Owned resources are guaranteed: whenever the consumer's demand asks
	// for them they are its, reclaimed from borrowers if need be.
	Owned Resources `json:"owned,omitempty"`
	// Limit caps what the consumer may hold, borrowed included; a zero
	// dimension is no limit.
	Limit Resources `json:"limit,omitempty"`
	// NoLend keeps the consumer's idle owned resources for it alone
	// instead of lending them to others as revocable resources.
	NoLend bool `json:"no_lend,omitempty"`
	// Grace is how long a borrower's tasks may run after the owner asks
	// for its resources back (the reclaim grace period).
	Grace time.Duration `json:"grace,omitempty"`
}

// Session kinds.
const (
	KindSpark = "spark" // executors that grow and shrink (dynamic allocation)
	KindPods  = "pods"  // Kubernetes pods and jobs
	KindBatch = "batch" // a batch of tasks that run to completion
	// KindFramework sessions run their own placement logic: they receive
	// offers in Ready and answer them with OfferAccepted or
	// OfferDeclined. Every other kind is placed by the built-in session
	// scheduler inside the core.
	KindFramework = "framework"
)

// Placement policies.
const (
	Binpack = "binpack" // fill the busiest agents first (the default)
	Spread  = "spread"  // put each task on the emptiest agent
)

// SessionSpec is a user's session: a Spark application, a set of pods, a
// batch, a notebook.
type SessionSpec struct {
	ID       string `json:"id"`
	Consumer string `json:"consumer"`
	User     string `json:"user,omitempty"`
	// Priority orders sessions of one consumer; higher runs first and may
	// preempt lower.
	Priority int         `json:"priority,omitempty"`
	Kind     string      `json:"kind,omitempty"`
	Policy   string      `json:"policy,omitempty"`
	Groups   []TaskGroup `json:"groups"`
}

// TaskGroup is a set of identical tasks of a session.
type TaskGroup struct {
	Name      string    `json:"name"`
	Resources Resources `json:"resources"`
	// Count is how many tasks the group wants to run now (pending and
	// running). A task that finishes lowers it by one; SessionUpdated
	// sets it (Spark's requestTotalExecutors).
	Count int `json:"count"`
	// Min is the gang size: the first Min tasks (all of Count, when that is
	// fewer) start together or not at all. 0 is no gang.
	Min int `json:"min,omitempty"`
	// Max caps Count (Spark's maxExecutors); 0 is no cap.
	Max         int          `json:"max,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty"`
	// GPUModels, when set, are the GPU models a task may use.
	GPUModels []string `json:"gpu_models,omitempty"`
	// SameIsland asks for a task's GPUs to share an NVLink island.
	SameIsland bool `json:"same_island,omitempty"`
}

// Constraint operators.
const (
	OpIn    = "in"
	OpNotIn = "not_in"
)

// Constraint restricts the agents a task may run on by an attribute.
type Constraint struct {
	Attribute string   `json:"attribute"`
	Op        string   `json:"op"`
	Values    []string `json:"values"`
}

// Match reports whether an agent's attributes satisfy the constraint.
func (c Constraint) Match(attrs map[string]string) bool {
	v, ok := attrs[c.Attribute]
	in := false
	if ok {
		for _, w := range c.Values {
			if w == v {
				in = true
				break
			}
		}
	}
	if c.Op == OpNotIn {
		return !in
	}
	return in
}
