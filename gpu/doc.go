// Package gpu is Caisson's NVIDIA GPU support: discovery (go-nvml, confined
// to one cgo package, with a pure-Go fallback and simulated machines),
// topology-aware allocation, device isolation through CDI and device cgroup
// rules, health and stats. Subpackages:
//
//   - gpu/topology: the link matrix of a machine's GPUs and the allocator
//     that picks the best-connected set for a request (pure Go).
//   - gpu/procfs: GPUs from /proc/driver/nvidia when NVML cannot be loaded.
//   - gpu/nvml: discovery through go-nvml, real or on simulated DGX A100,
//     H100 and B200 machines with their topology filled in; the only
//     package that uses cgo.
package gpu
