// Package cgroups is the "cgroups/all" isolator: it limits a container's
// CPU, memory and tasks with Linux control groups, on cgroup v1 and v2,
// reports what the container uses and which limit it hit, resizes it while
// it runs, and removes the cgroups that are left behind.
//
// # Who does what
//
// The OCI runtime (runc, crun) creates the container's cgroup from the
// runtime spec, and removes it on delete. This isolator only describes that
// cgroup, then observes and adjusts it:
//
//	Prepare ─▶ spec: cgroupsPath Parent/<id> + linux.resources     (pure)
//	           + on v2 a cgroup namespace
//	runtime create ─▶ the runtime makes the cgroup and writes the limits
//	Watch   ─▶ OOM kills: v1 eventfd on memory.oom_control, v2 inotify on memory.events
//	Usage   ─▶ cpu, memory, pids and OOM counters (containerd/cgroups Stat)
//	Update  ─▶ the same Values, written in an order the kernel accepts
//	runtime delete ─▶ the runtime removes the cgroup
//	Cleanup ─▶ kill what is left, rmdir in every hierarchy (idempotent)
//	Recover ─▶ the same for every child of Parent that is not a known container
//
// The cgroup is Parent/<id> in cgroupfs form (Parent defaults to /caisson,
// like Docker's --cgroup-parent); the systemd driver is not used. When a
// request carries the spec and its cgroupsPath ends in the container's ID,
// that path is used instead, so a container started under another Parent is
// still found.
//
// # Values
//
// Limits are computed purely from api.Resources, in one place (values.go):
// SpecResources is what Prepare puts in the spec, Values the cgroup files
// and values the limits mean, which Update writes and the tests read back.
//
//	api.Resources   v1 file                               v2 file
//	CPUs            cpu.shares = 1024×cpus (2…262144)     cpu.weight = 1 + (shares-2)×9999/262142
//	                cpu.cfs_period_us = 100000            cpu.max = "quota 100000"
//	                cpu.cfs_quota_us = cpus×100000 (≥1000)
//	MemoryBytes     memory.limit_in_bytes                 memory.max
//	                memory.memsw.limit_in_bytes = limit   memory.swap.max = 0
//	Reservation     memory.soft_limit_in_bytes            memory.high
//	PidsLimit       pids.max                              pids.max
//
// CPU: the spec carries v1 shares on both versions (CPU.Shares, Quota,
// Period); on v2 the runtime converts shares to cpu.weight. Weight is the
// linear conversion of runc up to 1.3 and crun up to 1.22 (Debian 12 ships
// runc 1.1 and crun 1.8), so an Update writes the weight the runtime wrote.
// Newer runtimes use a quadratic conversion (opencontainers/runc#4772);
// under them the weight a container starts with differs slightly from the
// one an Update gives it.
//
// Memory: there is no swap. When the kernel accounts swap (v1
// memory.memsw.*, v2 memory.swap.max), the spec's Swap (memory+swap) equals
// Limit; on v2 the runtime turns that into memory.swap.max = 0. The soft
// limit is memory.soft_limit_in_bytes on v1 (spec Reservation) and
// memory.high on v2, through the spec's Unified map: runtimes map
// Reservation to memory.low on v2, which protects memory instead of
// limiting it.
//
// Validate refuses, wrapping api.ErrInvalid: negative, NaN or infinite
// CPUs, CPUs below 0.01 or above the host's CPU count, memory or
// reservation below 6 MiB (Docker's minimum), a reservation above the limit,
// a negative pids limit. Zero means no limit, and, in an Update, unchanged.
//
// # v1 and v2
//
// Mode Auto picks v1 on legacy and hybrid hosts (the resource controllers
// are in the v1 hierarchies; a hybrid host's /sys/fs/cgroup/unified holds
// none of them) and v2 on unified hosts. The differences this package
// handles:
//
//   - Namespace. On v2, Prepare asks for a cgroup namespace (Docker's default
//     there), created once the process is in its cgroup: the runtime's
//     cgroup2 mount at /sys/fs/cgroup is then the container's own cgroup.
//     Without one it is the host's whole hierarchy. On v1 the runtime binds
//     the container's cgroup of each hierarchy in place, so none is asked.
//   - Update order. v1 requires memory.limit_in_bytes ≤
//     memory.memsw.limit_in_bytes at every moment: a limit above the current
//     memsw limit is raised memsw first, anything else memory first. v1
//     refuses (EBUSY) a limit below what it cannot reclaim; Update then
//     fails with api.ErrWrongState and the old limit stays. v2 accepts any
//     memory.max and reclaims, or OOM-kills, to meet it.
//   - OOM. v1 signals an eventfd registered through cgroup.event_control
//     when the cgroup goes out of memory, before the OOM killer has run, so
//     Watch then polls memory.oom_control's oom_kill counter briefly. v2
//     notifies memory.events (inotify IN_MODIFY) after oom_kill has been
//     counted. Either way the limitation is reported only for a kill, as
//     "memory limit of 32MiB exceeded" with reason api.ReasonOOM, and when
//     ctx is done Watch reads the counter one last time. Both descriptors
//     are non-blocking *os.File, closed when ctx is done to end the Read.
//   - Usage. v1 reads cpu, cpuacct, memory and pids hierarchies only (not
//     the named ones), memory.usage_in_bytes as is, total_rss and
//     total_cache, swap as memsw usage minus memory usage, and the OOM kill
//     count (v1 has no OOM event count). v2 reads cpu.stat, memory.current,
//     anon and file, memory.peak, memory.swap.current, memory.events oom and
//     oom_kill. An unlimited v1 memory limit (LONG_MAX rounded down to the
//     page size) and v2 "max" are reported as 0, no limit.
//   - Removal. Cleanup and Recover kill with cgroup.kill where the kernel has
//     it (v2, Linux 5.14+) and SIGKILL to every pid in cgroup.procs, below
//     the cgroup too, then rmdir children first, retrying while the
//     processes die. On v1 that happens in every hierarchy mounted under the
//     mountpoint, named ones (systemd) and a hybrid host's unified one
//     included, since runc makes the cgroup in all of them.
//
// The package builds on every platform; outside Linux, New fails with an
// error wrapping api.ErrUnavailable. An Isolator has no mutable state and is
// safe for concurrent use.
package cgroups
