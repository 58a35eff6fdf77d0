package api

import (
	"regexp"
	"time"
)

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

// Network modes understood by the containerizer itself. Any other name in
// ContainerSpec.Networks is a CNI network, attached by the network isolator.
const (
	NetworkNone = "none"
	NetworkHost = "host"
)

// nameRE is the naming rule CNI has for networks (libcni's
// ValidateNetworkName) and Docker for local volumes and plugin sockets.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

// ValidName reports whether name can name a network, a volume or a volume
// plugin: a letter or digit, then letters, digits, '_', '.' and '-'.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// PortMapping publishes a container port on the host (Docker's -p).
type PortMapping struct {
	// HostIP limits the mapping to one host address; empty means all.
	HostIP        string `json:"host_ip,omitempty"`
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	// Protocol is tcp, udp or sctp.
	Protocol string `json:"protocol"`
}

// Bandwidth limits a container's traffic on its CNI interfaces. Rates are
// in bits per second, bursts in bits; zero means no limit in that direction.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingress_rate,omitempty"`
	IngressBurst uint64 `json:"ingress_burst,omitempty"`
	EgressRate   uint64 `json:"egress_rate,omitempty"`
	EgressBurst  uint64 `json:"egress_burst,omitempty"`
}

// VolumeMount mounts a volume of a Docker volume plugin (Docker's
// --mount type=volume,volume-driver=D,src=NAME,dst=/path).
type VolumeMount struct {
	// Driver is the plugin's name: a legacy plugin's socket or spec file
	// name, or a managed plugin's name ("vendor/plugin:tag").
	Driver string `json:"driver"`
	Name   string `json:"name"`
	// Target is the absolute path in the container.
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Options create the volume when it does not exist yet (-o of docker
	// volume create); they are ignored for an existing volume.
	Options map[string]string `json:"options,omitempty"`
}

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
	// Entrypoint, when not nil, replaces the image's entrypoint; empty (not
	// nil) clears it. Not omitempty: an empty list must survive the wire and
	// checkpoints, where it means something other than absent.
	Entrypoint []string `json:"entrypoint"`
	// Command, when not empty, replaces the image's default command.
	Command    []string `json:"command,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
	Hostname   string   `json:"hostname,omitempty"`
	// Networks is ["none"] (the default: a network namespace of its own with
	// only loopback), ["host"], or the names of CNI networks, attached in
	// order as eth0, eth1, ...
	Networks []string `json:"networks,omitempty"`
	// Ports are published on the host through the first CNI network whose
	// plugins handle port mappings.
	Ports     []PortMapping `json:"ports,omitempty"`
	Bandwidth *Bandwidth    `json:"bandwidth,omitempty"`
	// Volumes are Docker volume plugins' volumes mounted into the container
	// by the docker/volume isolator.
	Volumes []VolumeMount `json:"volumes,omitempty"`
	// GPUs asks the GPU isolator for NVIDIA GPUs; nil means none.
	GPUs      *GPURequest `json:"gpus,omitempty"`
	Resources Resources   `json:"resources"`
	// ShmSizeBytes sizes the /dev/shm tmpfs (default 64 MiB, as in Docker).
	ShmSizeBytes int64             `json:"shm_size_bytes,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	// AutoRemove removes the container and its files once it has exited.
	AutoRemove bool `json:"auto_remove,omitempty"`
	// Seccomp selects the seccomp filter; the zero value is the default
	// profile, and the containerizer records which one is in force.
	Seccomp Seccomp `json:"seccomp"`
}

// State is where a container is in its life.
type State string

// Container states, in the order a container goes through them.
const (
	StateCreating State = "creating" // being launched; its process has not started
	StateRunning  State = "running"
	StateExited   State = "exited"
	StateUnknown  State = "unknown" // the checkpoint and the host disagree
	// StateUnreadable is a container whose checkpoint cannot be read: it
	// is quarantined, left as it is until a user removes it.
	StateUnreadable State = "unreadable"
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
	MAC       string   `json:"mac,omitempty"`
	IPs       []string `json:"ips,omitempty"`
}

// HostNetwork reports whether the spec asks for the host's network.
func (s *ContainerSpec) HostNetwork() bool {
	return len(s.Networks) == 1 && s.Networks[0] == NetworkHost
}

// CNINetworks returns the named (CNI) networks the spec asks for.
func (s *ContainerSpec) CNINetworks() []string {
	var out []string
	for _, n := range s.Networks {
		if n != NetworkNone && n != NetworkHost {
			out = append(out, n)
		}
	}
	return out
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
	// GPUs are the GPUs the container holds (while it runs).
	GPUs []GPU `json:"gpus,omitempty"`
	// Message says why the state is unreadable and what to do about it.
	Message string `json:"message,omitempty"`
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

	// Network counters, summed over the container's interfaces except
	// loopback, and per interface.
	NetRxBytes   uint64           `json:"net_rx_bytes"`
	NetRxPackets uint64           `json:"net_rx_packets"`
	NetRxErrors  uint64           `json:"net_rx_errors"`
	NetRxDropped uint64           `json:"net_rx_dropped"`
	NetTxBytes   uint64           `json:"net_tx_bytes"`
	NetTxPackets uint64           `json:"net_tx_packets"`
	NetTxErrors  uint64           `json:"net_tx_errors"`
	NetTxDropped uint64           `json:"net_tx_dropped"`
	Interfaces   []InterfaceUsage `json:"interfaces,omitempty"`

	// GPUs are the GPUs the container holds.
	GPUs []GPUUsage `json:"gpus,omitempty"`
}

// InterfaceUsage are one network interface's counters.
type InterfaceUsage struct {
	Name      string `json:"name"`
	RxBytes   uint64 `json:"rx_bytes"`
	RxPackets uint64 `json:"rx_packets"`
	RxErrors  uint64 `json:"rx_errors"`
	RxDropped uint64 `json:"rx_dropped"`
	TxBytes   uint64 `json:"tx_bytes"`
	TxPackets uint64 `json:"tx_packets"`
	TxErrors  uint64 `json:"tx_errors"`
	TxDropped uint64 `json:"tx_dropped"`
}
