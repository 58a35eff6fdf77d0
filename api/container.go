package api

import "time"

// Resources are the limits a container runs under. Zero means "no limit".
type Resources struct {
	// CPUs is the CPU limit in cores (Docker's --cpus): it sets the CFS quota
	// and the relative weight.
	CPUs float64 `json:"cpus,omitempty"`
	// MemoryBytes is the hard memory limit; the container is OOM-killed past it.
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// MemoryReservationBytes is the soft limit: memory.soft_limit_in_bytes on
	// cgroup v1, memory.high on cgroup v2.
	MemoryReservationBytes int64 `json:"memory_reservation_bytes,omitempty"`
	// PidsLimit caps the number of tasks in the container.
	PidsLimit int64 `json:"pids_limit,omitempty"`
}

// Network modes understood by the containerizer itself. Named CNI networks
// come later and are handled by the network isolator.
const (
	NetworkNone = "none"
	NetworkHost = "host"
)

// ContainerSpec is what a user asks for. The containerizer turns it, the image
// configuration and the isolators' contributions into an OCI runtime spec.
type ContainerSpec struct {
	Name string `json:"name,omitempty"`
	// Image is an image reference (see package containerizer/image for the
	// accepted forms). Empty with an empty Rootfs means the host filesystem,
	// read-only, with a private writable sandbox.
	Image string `json:"image,omitempty"`
	// Platform selects an image from a multi-arch index ("linux/ppc64le");
	// empty means this host's platform.
	Platform string `json:"platform,omitempty"`
	// Rootfs is a host directory used as the (read-only) lower layer of the
	// container's root filesystem.
	Rootfs string `json:"rootfs,omitempty"`
	// Entrypoint, when not nil, replaces the image's entrypoint.
	Entrypoint []string `json:"entrypoint,omitempty"`
	// Command, when not empty, replaces the image's default command.
	Command    []string  `json:"command,omitempty"`
	Env        []string  `json:"env,omitempty"`
	WorkingDir string    `json:"working_dir,omitempty"`
	User       string    `json:"user,omitempty"`
	Hostname   string    `json:"hostname,omitempty"`
	Network    string    `json:"network,omitempty"`
	Resources  Resources `json:"resources"`
	// ShmSizeBytes sizes the /dev/shm tmpfs (default 64 MiB, as in Docker).
	ShmSizeBytes int64             `json:"shm_size_bytes,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	// AutoRemove removes the container and its files once it has exited.
	AutoRemove bool `json:"auto_remove,omitempty"`
}

// State is where a container is in its life.
type State string

// Container states, in the order a container goes through them.
const (
	StateCreating State = "creating" // being launched; its process has not started
	StateRunning  State = "running"
	StateExited   State = "exited"
	StateUnknown  State = "unknown" // the checkpoint and the host disagree
)

// TerminationReason says why a container stopped.
type TerminationReason string

// Termination reasons.
const (
	ReasonExited   TerminationReason = "exited"     // the process returned an exit code
	ReasonSignaled TerminationReason = "signaled"   // the process died of a signal
	ReasonOOM      TerminationReason = "oom-killed" // the memory limit was exceeded
	ReasonKilled   TerminationReason = "killed"     // a user or the agent killed it
	ReasonLimit    TerminationReason = "limitation" // another isolator limit was hit
	ReasonLost     TerminationReason = "lost"       // its monitor died; the exit status is unknown
	ReasonFailed   TerminationReason = "failed"     // it never started
)

// Termination records how a container ended. It is written once, by the
// container's monitor, and never lost.
type Termination struct {
	ExitCode   int               `json:"exit_code"`
	Signal     string            `json:"signal,omitempty"`
	Reason     TerminationReason `json:"reason"`
	Message    string            `json:"message,omitempty"`
	FinishedAt time.Time         `json:"finished_at"`
}

// NetworkStatus is one network attachment of a container.
type NetworkStatus struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface,omitempty"`
	IPs       []string `json:"ips,omitempty"`
}

// Container is what `caisson inspect` shows: the request and everything known
// about the container now.
type Container struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Spec        ContainerSpec   `json:"spec"`
	State       State           `json:"state"`
	Pid         int             `json:"pid,omitempty"`
	MonitorPid  int             `json:"monitor_pid,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	Termination *Termination    `json:"termination,omitempty"`
	CgroupPath  string          `json:"cgroup_path,omitempty"`
	Image       string          `json:"image,omitempty"`
	ImageDigest string          `json:"image_digest,omitempty"`
	Command     []string        `json:"command,omitempty"`
	Bundle      string          `json:"bundle,omitempty"`
	Runtime     string          `json:"runtime,omitempty"`
	Isolators   []string        `json:"isolators,omitempty"`
	Networks    []NetworkStatus `json:"networks,omitempty"`
}

// Usage is a container's resource usage. Each isolator fills the fields it
// knows; a zero field means "not reported".
type Usage struct {
	Timestamp time.Time `json:"timestamp"`

	CPUUsageNanos     uint64  `json:"cpu_usage_nanos"`
	CPUUserNanos      uint64  `json:"cpu_user_nanos"`
	CPUSystemNanos    uint64  `json:"cpu_system_nanos"`
	CPUPeriods        uint64  `json:"cpu_periods"`
	CPUThrottled      uint64  `json:"cpu_throttled_periods"`
	CPUThrottledNanos uint64  `json:"cpu_throttled_nanos"`
	CPULimit          float64 `json:"cpu_limit,omitempty"`

	MemoryUsageBytes uint64 `json:"memory_usage_bytes"`
	MemoryLimitBytes uint64 `json:"memory_limit_bytes,omitempty"`
	MemoryRSSBytes   uint64 `json:"memory_rss_bytes"`
	MemoryCacheBytes uint64 `json:"memory_cache_bytes"`
	MemorySwapBytes  uint64 `json:"memory_swap_bytes,omitempty"`
	MemoryMaxBytes   uint64 `json:"memory_max_usage_bytes,omitempty"`

	Pids      uint64 `json:"pids"`
	PidsLimit uint64 `json:"pids_limit,omitempty"`

	OOMEvents uint64 `json:"oom_events"`
	OOMKills  uint64 `json:"oom_kills"`
}
