// Package gpu is Caisson's NVIDIA GPU support: discovery (go-nvml, confined
// to one cgo helper, with a pure-Go fallback and simulated machines),
// topology-aware allocation, device isolation through CDI and device cgroup
// rules, health and stats. This package holds the plain types that the cgo
// helper prints and a static caisson reads. Subpackages:
//
//   - gpu/topology: the link matrix of a machine's GPUs and the allocator
//     that picks the best-connected set for a request (pure Go).
//   - gpu/procfs: GPUs from /proc/driver/nvidia when NVML cannot be loaded.
//   - gpu/nvml: discovery (MIG devices included), stats, probes and events
//     through go-nvml, real or on simulated DGX A100, H100 and B200
//     machines with their topology and MIG layouts filled in; the only
//     package that uses cgo, run as the helper cmd/caisson-nvml.
//   - gpu/cdi: the CDI spec of the host's GPUs and MIG devices (device
//     nodes, MIG capabilities, control nodes, driver libraries and
//     binaries) and its injection into a container's runtime spec.
//   - gpu/manager: the host's GPU state shared by every caisson process:
//     the cached inventory, allocations (checkpointed, so none is handed
//     out twice), health marks and the event watch.
//   - gpu/isolator: the gpu/nvidia isolator that grants a container its
//     GPUs and nothing else.
package gpu
