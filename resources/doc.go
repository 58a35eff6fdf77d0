// Package resources finds what this host offers to containers: the
// api.NodeResources an agent reports and `caisson node resources` prints.
//
//	Detect(ctx, Config)
//	  ─▶ attributes: arch, kernel, cpuinfo, SMT, page sizes, NUMA nodes
//	  ─▶ the agent's own cgroups: cpuset, CFS quota, memory limit
//	  ─▶ cpus, memory, disk (statfs of the work dir), ports, GPUs (GPUSource)
//	  ─▶ Overrides replace what they name ─▶ Reserve is subtracted
//
// Everything is read through two roots, Config.ProcFS and Config.SysFS
// (node_exporter's --path.procfs and --path.sysfs), so an agent in a
// container can read the host's, and fixtures under testdata/ stand for
// whole machines. It is pure Go and reads files only; the page size and
// the disk are the only facts taken from the running process and kernel
// when no file says.
//
// Sources:
//   - cpus: sys devices/system/cpu/online, within proc self/status
//     Cpus_allowed_list and the cgroup's effective cpuset, capped by the CFS
//     quota (v1 cpu.cfs_quota_us/cpu.cfs_period_us, v2 cpu.max) of the
//     agent's cgroup and its ancestors; a quota gives fractional CPUs,
//     floored to a thousandth.
//   - memory: proc meminfo MemTotal, less the memory of CPU-less NUMA nodes,
//     capped by the cgroup's limit (v1 memory.limit_in_bytes, where values
//     near LONG_MAX mean none at any page size; v2 memory.max). The cgroups
//     are found through proc self/cgroup and self/mountinfo.
//   - disk: statfs(2) of the work dir or its nearest existing parent. No
//     headroom is kept back implicitly (the Mesos agent keeps 5 GB); use
//     Reserve.
//   - arch: proc sys/kernel/arch named as GOARCH (x86_64 is amd64), else the
//     agent's GOARCH; kernel: proc sys/kernel/osrelease.
//   - cpu_model: cpuinfo's "model name" (x86) or first "cpu" line (POWER:
//     "POWER9, altivec supported"); POWER's trailer gives cpu_platform
//     (PowerNV, pSeries), machine_model ("model", 8335-GTH) and mmu (Radix,
//     Hash). POWER's cpuinfo has no "model name", "flags" or "physical id".
//   - smt: thread_siblings_list of each online CPU (read once per core)
//     gives the cores and their online threads; the configured threads per
//     core come from the device tree on POWER (a core's
//     ibm,ppc-interrupt-server#s, as ppc64_cpu reads it), so an SMT8 LPAR
//     with threads offline ("0-3,8-11") still says 8.
//   - page_size: KernelPageSize of the first mapping in proc self/smaps
//     (65536 on most ppc64le kernels), else os.Getpagesize(). Under
//     qemu-user both are the host's.
//   - hugepage_sizes: sys kernel/mm/hugepages/hugepages-<N>kB.
//   - numa_nodes: sys devices/system/node/online (ids may be sparse: 0, 8),
//     each node's cpulist (online CPUs only) and meminfo MemTotal. A node
//     without CPUs, such as the GPU memory of an AC922 (252-255), keeps
//     "cpus": [] and is left out of api.NodeAttributes.CPUNodeIDs, the
//     default cpuset.mems; its memory is not counted in memory_bytes.
//
// Malformed files are a *FileError, which names the file and matches
// api.ErrInvalid; a missing file that every Linux host has (cpuinfo,
// meminfo, cpu/online) is an error matching fs.ErrNotExist; other missing
// files leave their fact out.
package resources
