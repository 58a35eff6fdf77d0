package api

import (
	"fmt"
	"strconv"
	"strings"
)

// NodeResources is what a host offers to containers: what package resources
// detects (limited by the agent's own cgroup), replaced by the admin's
// overrides and less the admin's reservations. The scheduler places work
// against it. Slices are never nil, so the JSON has [] rather than null.
type NodeResources struct {
	// CPUs may be fractional: 1.5 under a CFS quota of 150000/100000.
	CPUs        float64 `json:"cpus"`
	MemoryBytes int64   `json:"memory_bytes"`
	// DiskBytes is the size of the filesystem that holds the work dir.
	DiskBytes int64       `json:"disk_bytes"`
	Ports     []PortRange `json:"ports"`
	GPUs      []GPU       `json:"gpus"`
	// Attributes describe the host; they are not consumed by containers.
	Attributes NodeAttributes `json:"attributes"`
}

// PortRange is an inclusive range of host ports, as Mesos writes
// [31000-32000].
type PortRange struct {
	Begin int `json:"begin"`
	End   int `json:"end"`
}

// ParsePortRange reads one range: "31000-32000", or "8080" for one port.
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	b, err := strconv.Atoi(strings.TrimSpace(lo))
	e := b
	if err == nil && isRange {
		e, err = strconv.Atoi(strings.TrimSpace(hi))
	}
	if err != nil || b < 1 || e > 65535 || b > e {
		return PortRange{}, fmt.Errorf("port range %q: want BEGIN-END within 1-65535: %w", s, ErrInvalid)
	}
	return PortRange{Begin: b, End: e}, nil
}

// Overlaps reports whether the two ranges share a port.
func (r PortRange) Overlaps(o PortRange) bool { return r.Begin <= o.End && o.Begin <= r.End }

// PortOverlapError is two ranges of one list that share ports: one of
// them is a mistake, never merged away. It wraps ErrInvalid.
type PortOverlapError struct {
	// First comes first in the list.
	First, Second PortRange
}

func (e *PortOverlapError) Error() string {
	return fmt.Sprintf("port ranges %s and %s overlap: %v", e.First, e.Second, ErrInvalid)
}

func (e *PortOverlapError) Unwrap() error { return ErrInvalid }

// Len is how many ports the range holds.
func (r PortRange) Len() int { return r.End - r.Begin + 1 }

func (r PortRange) String() string {
	if r.Begin == r.End {
		return strconv.Itoa(r.Begin)
	}
	return strconv.Itoa(r.Begin) + "-" + strconv.Itoa(r.End)
}

// GPU is one GPU the host offers. Package gpu fills it in; the fields here are
// the ones a placement needs, and more may be added.
type GPU struct {
	// UUID is the driver's stable identity ("GPU-…"); a request may name it.
	UUID string `json:"uuid"`
	// Index is the driver's enumeration order (nvidia-smi's index).
	Index int `json:"index"`
	// Minor is the minor number of the device node (/dev/nvidiaN).
	Minor       int    `json:"minor"`
	Model       string `json:"model"`
	MemoryBytes int64  `json:"memory_bytes"`
	// PCIBusID is the domain:bus:device.function address, 00000000:3B:00.0.
	PCIBusID string `json:"pci_bus_id"`
	// NUMANode is the NUMA node of the GPU's PCIe attachment, -1 when
	// unknown.
	NUMANode int `json:"numa_node"`
	// CPUAffinity are the CPUs nearest the GPU (NVML's CPU affinity, or the
	// PCI device's local_cpulist); empty when unknown.
	CPUAffinity []int `json:"cpu_affinity,omitempty"`
	// Island numbers the host's NVLink islands: GPUs with the same number
	// reach each other over NVLink (package gpu/topology finds them).
	Island int `json:"island"`
	// Simulated is true for a GPU of a simulated machine (a mock backend).
	Simulated bool `json:"simulated,omitempty"`
	// Unhealthy says why the GPU is out of service (an XID, an ECC error);
	// empty when it is healthy. Unhealthy GPUs are not allocated.
	Unhealthy string `json:"unhealthy,omitempty"`
	// MIG is true when the GPU's MIG mode is on: it is then never given
	// whole, only its MIG devices are.
	MIG bool `json:"mig,omitempty"`
	// MIGDevices are the MIG devices of a GPU in MIG mode, by MIG index.
	// Where a container's GPUs are listed (inspect), only the ones it holds.
	MIGDevices []MIGDevice `json:"mig_devices,omitempty"`
}

// MIGDevice is one MIG device of a GPU in MIG mode: a compute instance of
// a GPU instance, with the GPU instance's share of memory and the compute
// instance's share of multiprocessors. A container is given it as it is
// given a GPU: by UUID, or by profile (--gpus mig-1g.5gb).
type MIGDevice struct {
	// UUID is the driver's identity of the MIG device ("MIG-…").
	UUID string `json:"uuid"`
	// ParentUUID is the GPU it is part of.
	ParentUUID string `json:"parent_uuid"`
	// Index is its MIG device index on the GPU (NVML's
	// GetMigDeviceHandleByIndex); nvidia-smi names it GPU:Index.
	Index int `json:"index"`
	// GPUInstance and ComputeInstance are the GI and CI IDs, which name
	// its capabilities (/dev/nvidia-caps) and its NVML events.
	GPUInstance     int `json:"gpu_instance"`
	ComputeInstance int `json:"compute_instance"`
	// Profile is NVIDIA's name of its shape: "1g.5gb" (one slice of seven
	// and 5 GB), "3g.20gb", "1c.3g.20gb" (one compute slice of a
	// three-slice GPU instance), "1g.5gb+me" (with media extensions).
	Profile     string `json:"profile"`
	MemoryBytes int64  `json:"memory_bytes"`
	// Multiprocessors is its number of streaming multiprocessors (SMs).
	Multiprocessors int `json:"multiprocessors,omitempty"`
	// Unhealthy says why it is out of service (its own error or its
	// GPU's); empty when it is healthy.
	Unhealthy string `json:"unhealthy,omitempty"`
}

// NodeAttributes describe the host for placement constraints (an image's
// architecture, a CPU generation) and for topology hints.
type NodeAttributes struct {
	// Arch is the kernel's architecture, named as GOARCH and OCI platforms
	// name it: amd64, arm64, ppc64le, s390x.
	Arch string `json:"arch"`
	// OS is "linux".
	OS string `json:"os"`
	// Kernel is the kernel release (uname -r).
	Kernel string `json:"kernel"`
	// CPUModel is x86's "model name" or POWER's "cpu" line of /proc/cpuinfo
	// ("POWER9, altivec supported"); empty where cpuinfo names no model.
	CPUModel string `json:"cpu_model"`
	// CPUPlatform, MachineModel and MMU come from POWER's cpuinfo trailer:
	// PowerNV (bare metal) or pSeries (PowerVM, KVM), the machine type-model
	// (8335-GTH, IBM,9009-22A), Radix or Hash.
	CPUPlatform  string `json:"cpu_platform,omitempty"`
	MachineModel string `json:"machine_model,omitempty"`
	MMU          string `json:"mmu,omitempty"`
	SMT          SMT    `json:"smt"`
	// PageSize is the base page size in bytes: 4096 on x86-64, 65536 on most
	// ppc64le kernels.
	PageSize int64 `json:"page_size"`
	// HugePageSizes are the huge page sizes the kernel offers, in bytes,
	// ascending.
	HugePageSizes []int64 `json:"hugepage_sizes"`
	// NUMANodes are the online NUMA nodes by ascending id. Ids may be sparse
	// (0, 8 on POWER9).
	NUMANodes []NUMANode `json:"numa_nodes"`
}

// SMT is the simultaneous multithreading layout of the CPUs.
type SMT struct {
	// ThreadsPerCore is what the hardware is configured with (8 on an SMT8
	// LPAR even when ppc64_cpu --smt=4 took half the threads offline).
	ThreadsPerCore int `json:"threads_per_core"`
	// OnlineThreadsPerCore is the most online threads on one core.
	OnlineThreadsPerCore int `json:"online_threads_per_core"`
	// Cores counts the cores with at least one online thread.
	Cores int `json:"cores"`
}

// NUMANode is one NUMA node.
type NUMANode struct {
	ID int `json:"id"`
	// CPUs are the node's online CPUs; empty for a CPU-less node, such as
	// the GPU memory of an AC922 (nodes 252-255), which containers are kept
	// off unless they ask for it.
	CPUs        []int `json:"cpus"`
	MemoryBytes int64 `json:"memory_bytes"`
}

// CPUNodeIDs returns the ids of the NUMA nodes that have CPUs: the default
// for a container's cpuset.mems, which leaves CPU-less nodes (GPU or
// expander memory) out.
func (a NodeAttributes) CPUNodeIDs() []int {
	ids := []int{}
	for _, n := range a.NUMANodes {
		if len(n.CPUs) > 0 {
			ids = append(ids, n.ID)
		}
	}
	return ids
}
