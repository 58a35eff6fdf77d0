package resources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
)

func parseInt(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

// attributes describes the host: architecture, kernel, CPU model and SMT,
// page sizes and NUMA nodes.
func (h *host) attributes(ctx context.Context, online []int) (api.NodeAttributes, error) {
	var a api.NodeAttributes
	var err error
	if a.Arch, err = h.arch(ctx); err != nil {
		return a, err
	}
	a.OS = runtime.GOOS
	release, _, err := read(ctx, h.procPath("sys/kernel/osrelease"))
	if err != nil {
		return a, err
	}
	a.Kernel = strings.TrimSpace(release)
	path := h.procPath("cpuinfo")
	data, err := mustRead(ctx, path)
	if err != nil {
		return a, err
	}
	ci, err := parseCPUInfo(data)
	if err != nil {
		return a, &FileError{Path: path, Reason: err.Error()}
	}
	a.CPUModel, a.CPUPlatform, a.MachineModel, a.MMU = ci.model, ci.platform, ci.machineModel, ci.mmu
	if a.SMT, err = h.smt(ctx, online); err != nil {
		return a, err
	}
	if a.PageSize, err = h.pageSize(ctx); err != nil {
		return a, err
	}
	if a.HugePageSizes, err = h.hugePageSizes(); err != nil {
		return a, err
	}
	if a.NUMANodes, err = h.numaNodes(ctx, online); err != nil {
		return a, err
	}
	return a, nil
}

type cpuInfo struct{ model, platform, machineModel, mmu string }

// parseCPUInfo reads /proc/cpuinfo. x86 names the model in "model name";
// POWER has no such line but a "cpu" line per processor ("POWER9, altivec
// supported", "POWER9 (architected), ..." in an LPAR) and a trailer with
// platform, model (the machine's type-model, after platform), machine,
// firmware and MMU. arm64 names no model.
func parseCPUInfo(data string) (cpuInfo, error) {
	var ci cpuInfo
	sawPlatform := false
	for i, line := range strings.Split(data, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return ci, fmt.Errorf("line %d: no colon in %q", i+1, line)
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			if ci.model == "" {
				ci.model = val
			}
		case "cpu":
			if ci.model == "" {
				ci.model = val
			}
		case "platform":
			ci.platform, sawPlatform = val, true
		case "model":
			// x86 has a numeric "model" per processor; POWER's machine
			// model is in the trailer, after "platform".
			if sawPlatform {
				ci.machineModel = val
			}
		case "MMU":
			ci.mmu = val
		}
	}
	return ci, nil
}

// smt finds the threads per core. The cores with online threads and the
// most online threads on one core come from each online CPU's
// thread_siblings_list (read once per core). The configured threads per
// core come from the device tree where there is one (POWER: the length of
// a core's ibm,ppc-interrupt-server#s, one 32-bit id per thread, which is
// what ppc64_cpu reads), so an SMT8 LPAR with half its threads offline says
// 8; elsewhere they are the online ones.
func (h *host) smt(ctx context.Context, online []int) (api.SMT, error) {
	var s api.SMT
	seen := map[int]bool{}
	for _, cpu := range online {
		if seen[cpu] {
			continue
		}
		path := h.sysPath(fmt.Sprintf("devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu))
		siblings, ok, err := readList(ctx, path)
		if err != nil {
			return s, err
		}
		if !ok {
			siblings = []int{cpu}
		}
		if !slices.Contains(siblings, cpu) {
			return s, &FileError{Path: path, Reason: fmt.Sprintf("CPU %d is not among its own siblings", cpu)}
		}
		siblings = Intersect(siblings, online)
		for _, c := range siblings {
			seen[c] = true
		}
		s.Cores++
		s.OnlineThreadsPerCore = max(s.OnlineThreadsPerCore, len(siblings))
	}
	s.ThreadsPerCore = s.OnlineThreadsPerCore
	servers, err := filepath.Glob(h.sysPath("firmware/devicetree/base/cpus/*/ibm,ppc-interrupt-server#s"))
	if err != nil {
		return s, err
	}
	if len(servers) > 0 {
		slices.Sort(servers)
		b, err := os.ReadFile(servers[0])
		if err != nil {
			return s, fmt.Errorf("read host information: %w", err)
		}
		if len(b) == 0 || len(b)%4 != 0 {
			return s, &FileError{Path: servers[0], Reason: fmt.Sprintf("%d bytes, not a list of 32-bit thread ids", len(b))}
		}
		h.log.Debug("threads per core from the device tree", "threads", len(b)/4, "source", servers[0])
		s.ThreadsPerCore = max(len(b)/4, s.OnlineThreadsPerCore)
	}
	return s, nil
}

// pageSize is the KernelPageSize of the first mapping in the procfs's
// self/smaps (which the fixtures provide), else the agent's own page size
// (AT_PAGESZ, which is the same kernel's).
func (h *host) pageSize(ctx context.Context) (int64, error) {
	path := h.procPath("self/smaps")
	line, ok, err := firstLineWith(ctx, path, "KernelPageSize:")
	if err != nil {
		return 0, err
	}
	if !ok {
		return int64(os.Getpagesize()), nil
	}
	f := strings.Fields(line)
	if len(f) == 3 && f[2] == "kB" {
		if kb, err := parseInt(f[1]); err == nil && kb > 0 && kb < 1<<30 {
			return kb << 10, nil
		}
	}
	return 0, &FileError{Path: path, Reason: fmt.Sprintf("bad line %q", line)}
}

// hugePageSizes lists /sys/kernel/mm/hugepages/hugepages-<size>kB: 2 MiB
// and 1 GiB on x86-64 and on POWER9 with Radix, 16 MiB (and 16 GiB) with the
// Hash MMU.
func (h *host) hugePageSizes() ([]int64, error) {
	dir := h.sysPath("kernel/mm/hugepages")
	sizes := []int64{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return sizes, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host information: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		kb, err := parseInt(strings.TrimSuffix(name, "kB"))
		if !strings.HasSuffix(name, "kB") || err != nil || kb <= 0 || kb > 1<<40 {
			return nil, &FileError{Path: filepath.Join(dir, e.Name()), Reason: "not hugepages-<size>kB"}
		}
		sizes = append(sizes, kb<<10)
	}
	slices.Sort(sizes)
	return sizes, nil
}

// numaNodes lists the online NUMA nodes with their online CPUs and memory.
// A kernel without NUMA (no node directory) has one node, 0, with every
// online CPU and MemTotal.
func (h *host) numaNodes(ctx context.Context, online []int) ([]api.NUMANode, error) {
	ids, ok, err := readList(ctx, h.sysPath("devices/system/node/online"))
	if err != nil {
		return nil, err
	}
	if !ok {
		dirs, err := filepath.Glob(h.sysPath("devices/system/node/node[0-9]*"))
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			if id, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "node")); err == nil {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
	}
	nodes := []api.NUMANode{}
	if len(ids) == 0 {
		path := h.procPath("meminfo")
		data, err := mustRead(ctx, path)
		if err != nil {
			return nil, err
		}
		total, _, err := meminfoTotal(data, "MemTotal:")
		if err != nil {
			return nil, &FileError{Path: path, Reason: err.Error()}
		}
		return append(nodes, api.NUMANode{ID: 0, CPUs: online, MemoryBytes: total}), nil
	}
	for _, id := range ids {
		n := api.NUMANode{ID: id, CPUs: []int{}}
		dir := h.sysPath(fmt.Sprintf("devices/system/node/node%d", id))
		cpus, _, err := readList(ctx, filepath.Join(dir, "cpulist"))
		if err != nil {
			return nil, err
		}
		n.CPUs = Intersect(cpus, online)
		path := filepath.Join(dir, "meminfo")
		data, _, err := read(ctx, path)
		if err != nil {
			return nil, err
		}
		if n.MemoryBytes, _, err = meminfoTotal(data, "MemTotal:"); err != nil {
			return nil, &FileError{Path: path, Reason: err.Error()}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}
