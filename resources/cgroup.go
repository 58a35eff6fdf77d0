package resources

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/caisson/caisson/internal/mountinfo"
)

// cgroupLimits are the limits of the agent's own cgroups (v1, v2, or both on
// a hybrid host) and their ancestors: the tightest of each.
type cgroupLimits struct {
	quota  float64 // CPUs the CFS quota allows; 0: none
	cpuset []int   // effective cpuset; nil: not known
	mems   []int   // effective memory nodes of the cpuset; nil: not known
	memory int64   // bytes; 0: none
}

// cgroupEntry is a line of /proc/self/cgroup: hierarchy id, controllers
// (empty for v2) and path.
type cgroupEntry struct {
	controllers []string
	path        string
}

// v1Unlimited reports a cgroup v1 memory limit that means none: the kernel
// prints "no limit" as LONG_MAX rounded down to the page size,
// 9223372036854771712 with 4 KiB pages and 9223372036854710272 with 64 KiB
// (MESOS-6217), so anything within a megabyte of LONG_MAX is no limit.
func v1Unlimited(v int64) bool { return v > math.MaxInt64-(1<<20) }

// selfCgroups reads the agent's cgroups from proc self/cgroup and the
// mounts from self/mountinfo (nil without one). fixture is true when self
// is a directory, not procfs's magic link: the procfs is a fixture's, whose
// mount points under /sys are read under the fixture's sysfs.
func (h *host) selfCgroups(ctx context.Context) (entries []cgroupEntry, mounts []mountinfo.Mount, fixture bool, err error) {
	path := h.procPath("self/cgroup")
	data, ok, err := read(ctx, path)
	if err != nil || !ok {
		return nil, nil, false, err
	}
	for _, line := range strings.Split(data, "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.HasPrefix(f[2], "/") {
			return nil, nil, false, &FileError{Path: path, Reason: fmt.Sprintf("bad line %q", line)}
		}
		e := cgroupEntry{path: f[2]}
		if f[1] != "" {
			e.controllers = strings.Split(f[1], ",")
		}
		entries = append(entries, e)
	}
	mpath := h.procPath("self/mountinfo")
	if mi, ok, err := read(ctx, mpath); err != nil {
		return nil, nil, false, err
	} else if ok {
		if mounts, err = mountinfo.Parse(strings.NewReader(mi)); err != nil {
			return nil, nil, false, &FileError{Path: mpath, Reason: err.Error()}
		}
	}
	st, err := os.Lstat(h.procPath("self"))
	fixture = err == nil && st.Mode()&os.ModeSymlink == 0
	return entries, mounts, fixture, nil
}

// cgroupLimits reads /proc/self/cgroup and the limit files of each of the
// agent's cgroups and their ancestors up to the mount's root. Where each
// hierarchy is mounted, and which of its cgroups the mount shows as its
// root, comes from self/mountinfo: its mount points are paths in the
// agent's own mount namespace, except in a fixture (where self is a
// directory, not procfs's magic link), whose mount points under /sys are
// read under the fixture's sysfs. Without mountinfo, the usual layout under
// sysfs's fs/cgroup is tried. A cgroup outside its mount's root (another
// cgroup namespace) is skipped.
func (h *host) cgroupLimits(ctx context.Context) (cgroupLimits, error) {
	var lim cgroupLimits
	entries, mounts, fixture, err := h.selfCgroups(ctx)
	if err != nil {
		return lim, err
	}
	for _, e := range entries {
		v2 := e.controllers == nil
		for _, ctrl := range []string{"cpu", "cpuset", "memory"} {
			if !v2 && !slices.Contains(e.controllers, ctrl) {
				continue
			}
			mnt, dir, ok := h.cgroupDir(mounts, fixture, e, ctrl)
			if !ok {
				continue
			}
			h.log.Debug("cgroup", "controller", ctrl, "v2", v2, "dir", dir)
			if err := lim.read(ctx, ctrl, v2, mnt, dir); err != nil {
				return lim, err
			}
		}
	}
	return lim, nil
}

// mountOf finds where the hierarchy of a cgroup entry (for controller ctrl
// on v1) is mounted, and which of its cgroups the mount shows as its root.
func (h *host) mountOf(mounts []mountinfo.Mount, fixture bool, e cgroupEntry, ctrl string) (mnt, root string, ok bool) {
	v2 := e.controllers == nil
	root = "/"
	for _, m := range mounts {
		if v2 && m.FSType != "cgroup2" || !v2 && (m.FSType != "cgroup" || !slices.Contains(strings.Split(m.SuperOpts, ","), ctrl)) {
			continue
		}
		p := m.MountPoint
		if rest, ok := strings.CutPrefix(p, "/sys/"); ok && fixture {
			p = h.sysPath(rest)
		}
		if isDir(p) {
			return p, m.Root, true
		}
	}
	base := h.sysPath("fs/cgroup")
	var candidates []string
	if v2 {
		if _, err := os.Stat(filepath.Join(base, "cgroup.controllers")); err == nil {
			candidates = append(candidates, base)
		}
		candidates = append(candidates, filepath.Join(base, "unified"))
	} else {
		candidates = append(candidates, filepath.Join(base, strings.Join(e.controllers, ",")), filepath.Join(base, ctrl))
	}
	for _, c := range candidates {
		if isDir(c) {
			return c, root, true
		}
	}
	return "", "", false
}

// cgroupDir finds the directory of the agent's cgroup for one controller
// and the mount it lies in.
func (h *host) cgroupDir(mounts []mountinfo.Mount, fixture bool, e cgroupEntry, ctrl string) (mnt, dir string, ok bool) {
	mnt, root, ok := h.mountOf(mounts, fixture, e, ctrl)
	if !ok {
		return "", "", false
	}
	rel := e.path
	switch {
	case root == "/":
	case rel == root:
		rel = "/"
	case strings.HasPrefix(rel, root+"/"):
		rel = strings.TrimPrefix(rel, root)
	default:
		h.log.Debug("cgroup outside its mount", "controller", ctrl, "path", e.path, "mount_root", root)
		return "", "", false
	}
	if strings.Contains(rel, "/..") {
		return "", "", false
	}
	dir = filepath.Join(mnt, rel)
	if !isDir(dir) {
		h.log.Debug("cgroup not found", "controller", ctrl, "dir", dir)
		return "", "", false
	}
	return mnt, dir, true
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// read applies one controller's limits from dir and its ancestors up to
// the mount. The effective cpuset is the leaf's alone, as it already
// accounts for the ancestors.
func (lim *cgroupLimits) read(ctx context.Context, ctrl string, v2 bool, mnt, dir string) error {
	if ctrl == "cpuset" {
		cpusFile, memsFile := cpusetFiles(v2)
		cpus, ok, err := readList(ctx, filepath.Join(dir, cpusFile))
		if err != nil {
			return err
		}
		if ok {
			lim.cpuset = intersectKnown(lim.cpuset, cpus)
		}
		mems, ok, err := readList(ctx, filepath.Join(dir, memsFile))
		if err != nil {
			return err
		}
		if ok {
			lim.mems = intersectKnown(lim.mems, mems)
		}
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		var err error
		switch {
		case ctrl == "cpu" && v2:
			err = lim.readCPUMax(ctx, filepath.Join(d, "cpu.max"))
		case ctrl == "cpu":
			err = lim.readCFS(ctx, filepath.Join(d, "cpu.cfs_quota_us"), filepath.Join(d, "cpu.cfs_period_us"))
		case ctrl == "memory" && v2:
			err = lim.readMemory(ctx, filepath.Join(d, "memory.max"), "max")
		case ctrl == "memory":
			err = lim.readMemory(ctx, filepath.Join(d, "memory.limit_in_bytes"), "")
		}
		if err != nil {
			return err
		}
		if d == mnt || len(d) <= len(mnt) {
			return nil
		}
	}
}

// cpusetFiles are the files that hold a cgroup's effective CPUs and
// memory nodes on v1 and v2.
func cpusetFiles(v2 bool) (cpus, mems string) {
	if v2 {
		return "cpuset.cpus.effective", "cpuset.mems.effective"
	}
	return "cpuset.effective_cpus", "cpuset.effective_mems"
}

// intersectKnown is intersect where a nil list is not known yet (anything).
func intersectKnown(known, ids []int) []int {
	if known == nil {
		return ids
	}
	return Intersect(known, ids)
}

func (lim *cgroupLimits) applyQuota(quota, period int64) {
	if quota <= 0 || period <= 0 {
		return
	}
	if q := float64(quota) / float64(period); lim.quota == 0 || q < lim.quota {
		lim.quota = q
	}
}

// readCPUMax reads v2's cpu.max: "max 100000" or "150000 100000".
func (lim *cgroupLimits) readCPUMax(ctx context.Context, path string) error {
	data, ok, err := read(ctx, path)
	if err != nil || !ok {
		return err
	}
	f := strings.Fields(data)
	if len(f) != 2 {
		return &FileError{Path: path, Reason: fmt.Sprintf("%q is not QUOTA PERIOD", strings.TrimSpace(data))}
	}
	period, err := parseInt(f[1])
	if err != nil || period <= 0 {
		return &FileError{Path: path, Reason: fmt.Sprintf("bad period %q", f[1])}
	}
	if f[0] == "max" {
		return nil
	}
	quota, err := parseInt(f[0])
	if err != nil || quota <= 0 {
		return &FileError{Path: path, Reason: fmt.Sprintf("bad quota %q", f[0])}
	}
	lim.applyQuota(quota, period)
	return nil
}

// readCFS reads v1's cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us.
func (lim *cgroupLimits) readCFS(ctx context.Context, quotaPath, periodPath string) error {
	q, ok, err := read(ctx, quotaPath)
	if err != nil || !ok {
		return err
	}
	quota, err := parseInt(strings.TrimSpace(q))
	if err != nil || quota == 0 || quota < -1 {
		return &FileError{Path: quotaPath, Reason: fmt.Sprintf("bad quota %q", strings.TrimSpace(q))}
	}
	if quota == -1 {
		return nil
	}
	p, err := mustRead(ctx, periodPath)
	if err != nil {
		return err
	}
	period, err := parseInt(strings.TrimSpace(p))
	if err != nil || period <= 0 {
		return &FileError{Path: periodPath, Reason: fmt.Sprintf("bad period %q", strings.TrimSpace(p))}
	}
	lim.applyQuota(quota, period)
	return nil
}

// readMemory reads a memory limit in bytes; none is the word "max" on v2
// and a value near LONG_MAX on v1.
func (lim *cgroupLimits) readMemory(ctx context.Context, path, none string) error {
	data, ok, err := read(ctx, path)
	if err != nil || !ok {
		return err
	}
	s := strings.TrimSpace(data)
	if none != "" && s == none {
		return nil
	}
	v, err := parseInt(s)
	if err != nil || v < 0 {
		return &FileError{Path: path, Reason: fmt.Sprintf("bad limit %q", s)}
	}
	if none == "" && v1Unlimited(v) {
		return nil
	}
	if lim.memory == 0 || v < lim.memory {
		lim.memory = v
	}
	return nil
}
