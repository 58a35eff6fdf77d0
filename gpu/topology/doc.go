// Package topology scores and allocates sets of GPUs by how they are
// linked: NVLink first, then the PCIe path between them (same board, same
// switch, several switches, host bridge, same NUMA node, across sockets).
//
// The score of a pair follows NVIDIA's go-gpuallocator best-effort policy:
// 100 per NVLink between the two, plus 60 (same board), 50 (one PCIe
// switch), 40 (several switches), 30 (host bridge), 20 (same CPU) or 10
// (across CPUs) for their PCIe common ancestor. A set scores the sum of its
// pairs. Allocate takes the highest-scoring set of the available GPUs and,
// among equals, the one that leaves the rest best connected, so NVLink
// islands stay whole for later requests. It is pure: no NVML, no I/O.
package topology
