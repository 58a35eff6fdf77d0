package trace

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caisson/caisson/scheduler"
)

// Node is a machine of the trace (a row of openb_node_list_*.csv).
type Node struct {
	// Name is the node's serial name (the sn column), unique in a file.
	Name        string
	CPUMilli    int64
	MemoryBytes int64
	// GPUs is how many whole GPUs the node has; Model is their model
	// (G1, G2, G3, P100, T4, V100M16, V100M32, A10), "" for a node without.
	GPUs  int
	Model string
}

// Agent is the node as the scheduler sees it: its id is the node's name,
// its GPUs are named NAME/gpu0, NAME/gpu1, ... and its gpu_model attribute
// is the GPUs' model. The trace says nothing of NVLink, so all of a
// node's GPUs are in one island (0): a task that asks for same_island
// fits wherever it fits at all, as in the paper's simulator.
func (n Node) Agent() scheduler.AgentSpec {
	a := scheduler.AgentSpec{ID: n.Name}
	a.Resources[scheduler.CPU] = n.CPUMilli
	a.Resources[scheduler.Memory] = n.MemoryBytes
	a.Resources[scheduler.GPU] = int64(n.GPUs) * 1000
	if n.GPUs > 0 && n.Model != "" {
		a.Attributes = map[string]string{"gpu_model": n.Model}
	}
	for i := range n.GPUs {
		a.GPUs = append(a.GPUs, scheduler.GPUDevice{ID: n.Name + "/gpu" + strconv.Itoa(i), Model: n.Model})
	}
	return a
}

// Pod phases, Kubernetes' PodPhase values.
const (
	Pending   = "Pending"   // never scheduled in the traced cluster: no ScheduledAt
	Running   = "Running"   // still running when the trace ended: DeletedAt is the trace's end
	Succeeded = "Succeeded" // ran to completion
	Failed    = "Failed"    // ran and failed
	Unknown   = "Unknown"
)

// Pod is a pod of the trace (a row of openb_pod_list_*.csv). Every pod
// is kept, whatever its phase: a Pending pod is demand the traced cluster
// never met, which a simulator may well meet. Phase says which pods a
// replay may want to leave out.
type Pod struct {
	// Name is unique in a file.
	Name        string
	CPUMilli    int64
	MemoryBytes int64
	// NumGPU is how many GPUs the pod asks for. GPUMilli is, for a pod of
	// one GPU, the share of it (1000 for the whole GPU); for a pod of
	// several GPUs it is 1000 (each GPU whole); for a pod without GPUs,
	// 0.
	NumGPU   int
	GPUMilli int64
	// GPUModels are the GPU models the pod may use (the gpu_spec column);
	// nil for any.
	GPUModels []string
	// QoS is the pod's class as the trace writes it: LS (latency
	// sensitive), BE (best effort), Burstable or Guaranteed.
	QoS string
	// Phase is one of Pending, Running, Succeeded, Failed and Unknown,
	// or "" when the file has no pod_phase column.
	Phase string
	// CreatedAt and DeletedAt are when the pod was created and deleted,
	// from the start of the trace.
	CreatedAt time.Duration
	DeletedAt time.Duration
	// ScheduledAt is when the pod was bound to a node, if Scheduled.
	ScheduledAt time.Duration
	Scheduled   bool
}

// GPU is what the pod asks of GPUs, in milli-GPUs: NumGPU whole GPUs, or
// a share of one.
func (p Pod) GPU() int64 {
	if p.NumGPU > 1 {
		return int64(p.NumGPU) * 1000
	}
	if p.NumGPU == 1 {
		return p.GPUMilli
	}
	return 0
}

// Resources is what the pod asks for.
func (p Pod) Resources() scheduler.Resources {
	r := scheduler.Res(p.CPUMilli, p.MemoryBytes)
	r[scheduler.GPU] = p.GPU()
	return r
}

// Runtime is how long the pod lived in the trace: DeletedAt - CreatedAt.
// It includes the time the pod waited to be scheduled (ScheduledAt -
// CreatedAt: a few seconds for most pods of the openb trace, up to four
// hours for some), and for a Pending pod it is all waiting. A replay that submits the pod at CreatedAt and
// finishes it after Runtime keeps the trace's demand over time.
func (p Pod) Runtime() time.Duration { return p.DeletedAt - p.CreatedAt }

// Session is the pod as a session of the scheduler: kind pods, owned by
// consumer, with one group "pod" of one task that asks for the pod's
// resources and, when it asks for GPUs, may use GPUModels. The policy is
// left to the core's default (binpack); set it to compare policies.
func (p Pod) Session(consumer string) scheduler.SessionSpec {
	g := scheduler.TaskGroup{Name: "pod", Resources: p.Resources(), Count: 1}
	if p.GPU() > 0 && len(p.GPUModels) > 0 {
		g.GPUModels = append([]string(nil), p.GPUModels...)
	}
	return scheduler.SessionSpec{
		ID:       p.Name,
		Consumer: consumer,
		Kind:     scheduler.KindPods,
		Groups:   []scheduler.TaskGroup{g},
	}
}

// Error is a malformed file or row, located: "file:line: column: what
// is wrong". Every error the readers return for bad input is an *Error and
// wraps api.ErrInvalid.
type Error struct {
	File string
	// Line is 1-based; the header is line 1.
	Line int
	// Column is the column's name in the header; "" for a problem with
	// the whole row or file.
	Column string
	Err    error
}

// Error formats the error as "file:line: column: what is wrong".
func (e *Error) Error() string {
	s := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.Column != "" {
		s += ": " + e.Column
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns what is wrong.
func (e *Error) Unwrap() error { return e.Err }
