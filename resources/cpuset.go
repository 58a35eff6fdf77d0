package resources

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/caisson/caisson/api"
)

// CPUSet is what the cpuset of a container may hold on this host: CPUs
// and memory nodes that a runtime can write to cpuset.cpus and
// cpuset.mems of a cgroup made under the containers' parent cgroup without
// the kernel refusing them, and that the agent itself may use.
type CPUSet struct {
	// CPUs are the online CPUs within proc self/status Cpus_allowed_list,
	// the effective cpuset of the agent's own cgroup and that of the
	// containers' parent cgroup (or its nearest existing ancestor).
	CPUs []int
	// Mems are the NUMA nodes with online CPUs and memory within
	// Mems_allowed_list and the effective memory nodes of the same
	// cgroups. CPU-less nodes (the GPU memory of an AC922, 252-255) and
	// memory-less ones are never among them.
	Mems []int
	// Nodes are the online NUMA nodes, as api.NodeAttributes lists them.
	Nodes []api.NUMANode
	// Unavailable says why no container can be given a cpuset on this
	// host (no cpuset controller to give it with); empty when one can.
	Unavailable string
}

// NodesOf returns the ids of the nodes that hold any of cpus, sorted.
func (c *CPUSet) NodesOf(cpus []int) []int {
	ids := []int{}
	for _, n := range c.Nodes {
		if len(Intersect(n.CPUs, cpus)) > 0 {
			ids = append(ids, n.ID)
		}
	}
	return ids
}

// DetectCPUSet finds what the cpuset of a container may hold, reading
// through cfg.ProcFS and cfg.SysFS (the other fields are not used).
// parent is the cgroup containers are made under, in cgroupfs form
// ("/caisson", as the cgroups isolator's Parent); the cpuset of a cgroup
// must lie within its parent's (cgroup v1 refuses anything else; v2
// narrows it silently). A parent that does not exist yet is made by the
// runtime as a copy of its nearest existing ancestor, whose cpuset is then
// the bound. An empty or systemd-style ("slice:prefix:name") parent
// bounds nothing.
//
// The cpuset controller is looked for where the runtime finds it: the v1
// hierarchy that self/cgroup lists with cpuset, else the cgroup2 mount,
// whose cgroup.controllers must offer cpuset (runc enables it down to the
// container's cgroup). Without it, Unavailable says so.
func DetectCPUSet(ctx context.Context, cfg Config, parent string) (*CPUSet, error) {
	h := newHost(cfg)
	online, err := h.onlineCPUs(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := h.numaNodes(ctx, online)
	if err != nil {
		return nil, err
	}
	cs := &CPUSet{Mems: []int{}, Nodes: nodes}
	for _, n := range nodes {
		if len(n.CPUs) > 0 && n.MemoryBytes > 0 {
			cs.Mems = append(cs.Mems, n.ID)
		}
	}
	cg, err := h.cgroupLimits(ctx)
	if err != nil {
		return nil, err
	}
	if cs.CPUs, err = h.usableCPUs(ctx, online, cg); err != nil {
		return nil, err
	}
	allowed, ok, err := h.statusList(ctx, "Mems_allowed_list")
	if err != nil {
		return nil, err
	}
	if ok {
		cs.Mems = Intersect(cs.Mems, allowed)
	}
	if cg.mems != nil {
		cs.Mems = Intersect(cs.Mems, cg.mems)
	}
	cpus, mems, why, err := h.parentCPUSet(ctx, parent)
	if err != nil {
		return nil, err
	}
	cs.Unavailable = why
	if cpus != nil {
		cs.CPUs = Intersect(cs.CPUs, cpus)
	}
	if mems != nil {
		cs.Mems = Intersect(cs.Mems, mems)
	}
	return cs, nil
}

// newHost is the host cfg's roots name.
func newHost(cfg Config) *host {
	h := &host{proc: cfg.ProcFS, sys: cfg.SysFS, log: cfg.Logger}
	if h.proc == "" {
		h.proc = "/proc"
	}
	if h.sys == "" {
		h.sys = "/sys"
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// statusList reads a list line of proc self/status ("Cpus_allowed_list",
// "Mems_allowed_list"); ok is false when there is no such file or line.
func (h *host) statusList(ctx context.Context, key string) (ids []int, ok bool, err error) {
	path := h.procPath("self/status")
	status, ok, err := read(ctx, path)
	if err != nil || !ok {
		return nil, false, err
	}
	for _, line := range strings.Split(status, "\n") {
		if v, found := strings.CutPrefix(line, key+":"); found {
			ids, err := ParseList(v)
			if err != nil {
				return nil, false, &FileError{Path: path, Reason: key + ": " + err.Error()}
			}
			h.log.Debug("allowed", "key", key, "list", FormatList(ids), "source", path)
			return ids, true, nil
		}
	}
	return nil, false, nil
}

// parentCPUSet reads the effective CPUs and memory nodes of the cgroup
// parent, or of its nearest existing ancestor (nil: not known), and says
// why no cpuset can be given when the cpuset controller is missing.
func (h *host) parentCPUSet(ctx context.Context, parent string) (cpus, mems []int, unavailable string, err error) {
	entries, mounts, fixture, err := h.selfCgroups(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	var e *cgroupEntry
	for i := range entries {
		if slices.Contains(entries[i].controllers, "cpuset") {
			e = &entries[i]
			break
		}
		if entries[i].controllers == nil && e == nil {
			e = &entries[i]
		}
	}
	if e == nil {
		return nil, nil, "", nil // no self/cgroup: not known
	}
	v2 := e.controllers == nil
	mnt, _, ok := h.mountOf(mounts, fixture, *e, "cpuset")
	if !ok {
		return nil, nil, "no cpuset cgroup controller is mounted", nil
	}
	if v2 {
		ctrls, _, err := read(ctx, filepath.Join(mnt, "cgroup.controllers"))
		if err != nil {
			return nil, nil, "", err
		}
		if !slices.Contains(strings.Fields(ctrls), "cpuset") {
			return nil, nil, fmt.Sprintf("the cgroup v2 hierarchy at %s does not offer the cpuset controller", mnt), nil
		}
	}
	if parent == "" || !strings.HasPrefix(parent, "/") || strings.Contains(parent, ":") {
		return nil, nil, "", nil
	}
	cpusFile, memsFile := cpusetFiles(v2)
	for d := filepath.Join(mnt, path.Clean(parent)); ; d = filepath.Dir(d) {
		cpus, ok, err := readList(ctx, filepath.Join(d, cpusFile))
		if err != nil {
			return nil, nil, "", err
		}
		if ok {
			mems, _, err := readList(ctx, filepath.Join(d, memsFile))
			if err != nil {
				return nil, nil, "", err
			}
			h.log.Debug("cpuset of the containers' parent cgroup", "dir", d, "cpus", FormatList(cpus), "mems", FormatList(mems))
			return cpus, mems, "", nil
		}
		if d == mnt || len(d) <= len(mnt) {
			return nil, nil, "", nil
		}
	}
}
