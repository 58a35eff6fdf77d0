package cgroups

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	cgroupsv3 "github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// removeTimeout bounds how long Cleanup and Recover wait for a cgroup's
// processes to die so that it can be removed, when ctx has no deadline.
const removeTimeout = 10 * time.Second

// resourceControllers are the v1 hierarchies that hold the files this
// isolator reads and writes.
var resourceControllers = []cgroup1.Name{cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Pids}

func detect(mode Mode, mountpoint string) (Host, error) {
	if mode == Auto {
		m, err := detectMode(mountpoint)
		if err != nil {
			return Host{}, err
		}
		mode = m
	}
	h := Host{Mode: mode}
	switch mode {
	case V1:
		h.Swap = fileExists(filepath.Join(mountpoint, "memory", "memory.memsw.limit_in_bytes"))
	case V2:
		h.Swap = v2Swap(mountpoint)
	}
	return h, nil
}

func detectMode(mountpoint string) (Mode, error) {
	if mountpoint == DefaultMountpoint {
		switch cgroupsv3.Mode() {
		case cgroupsv3.Legacy, cgroupsv3.Hybrid:
			return V1, nil
		case cgroupsv3.Unified:
			return V2, nil
		}
		return Auto, fmt.Errorf("no cgroup filesystem at %s: %w", mountpoint, api.ErrUnavailable)
	}
	switch {
	case fsMagic(mountpoint) == unix.CGROUP2_SUPER_MAGIC:
		return V2, nil
	case fsMagic(filepath.Join(mountpoint, "memory")) == unix.CGROUP_SUPER_MAGIC,
		fsMagic(filepath.Join(mountpoint, "cpu")) == unix.CGROUP_SUPER_MAGIC:
		return V1, nil
	}
	return Auto, fmt.Errorf("no cgroup filesystem at %s: %w", mountpoint, api.ErrUnavailable)
}

// v2Swap reports whether cgroup v2 accounts swap: the root has no
// memory.swap.max, so look in its children.
func v2Swap(mountpoint string) bool {
	entries, err := os.ReadDir(mountpoint)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() && fileExists(filepath.Join(mountpoint, e.Name(), "memory.swap.max")) {
			return true
		}
	}
	return false
}

func fsMagic(p string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return 0
	}
	return int64(st.Type)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// dir is the directory of cgroup p that holds controller's files.
func (i *Isolator) dir(controller, p string) string {
	if i.host.Mode == V2 {
		return filepath.Join(i.mountpoint, p)
	}
	return filepath.Join(i.mountpoint, controller, p)
}

// exists reports whether cgroup p exists where this isolator reads and
// writes: in the unified hierarchy, or in one of the v1 resource hierarchies.
func (i *Isolator) exists(p string) bool {
	if i.host.Mode == V2 {
		return dirExists(i.dir("", p))
	}
	for _, c := range resourceControllers {
		if dirExists(i.dir(string(c), p)) {
			return true
		}
	}
	return false
}

func notFound(p string) error {
	return fmt.Errorf("container cgroup %s: %w", p, api.ErrNotFound)
}

// hierarchies are the roots of every cgroup filesystem a container's cgroup
// may have been made in: on v1 each hierarchy below the mountpoint (named
// ones such as systemd's and a hybrid host's unified one included), on v2 the
// mountpoint.
func (i *Isolator) hierarchies() ([]string, error) {
	if i.host.Mode == V2 {
		return []string{i.mountpoint}, nil
	}
	entries, err := os.ReadDir(i.mountpoint)
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		p := filepath.Join(i.mountpoint, e.Name())
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			continue
		}
		if m := fsMagic(real); m != unix.CGROUP_SUPER_MAGIC && m != unix.CGROUP2_SUPER_MAGIC {
			continue
		}
		seen[real] = true
		out = append(out, p)
	}
	return out, nil
}

// v1Hierarchy is the cgroup1 hierarchy of the resource controllers mounted
// below the mountpoint; it leaves out the named hierarchies and the
// controllers this isolator does not read.
func (i *Isolator) v1Hierarchy() ([]cgroup1.Subsystem, error) {
	var out []cgroup1.Subsystem
	for _, c := range resourceControllers {
		root := filepath.Join(i.mountpoint, string(c))
		if fsMagic(root) != unix.CGROUP_SUPER_MAGIC {
			continue
		}
		switch c {
		case cgroup1.Cpu:
			out = append(out, cgroup1.NewCpu(i.mountpoint))
		case cgroup1.Cpuacct:
			out = append(out, cgroup1.NewCpuacct(i.mountpoint))
		case cgroup1.Pids:
			out = append(out, cgroup1.NewPids(i.mountpoint))
		case cgroup1.Memory:
			var ignore []string
			for _, module := range []string{"memsw", "kmem", "kmem.tcp"} {
				if !fileExists(filepath.Join(root, "memory."+module+".usage_in_bytes")) {
					ignore = append(ignore, module)
				}
			}
			out = append(out, cgroup1.NewMemory(i.mountpoint, cgroup1.IgnoreModules(ignore...)))
		}
	}
	return out, nil
}

func (i *Isolator) usage(_ context.Context, p string, u *api.Usage) error {
	if !i.exists(p) {
		return notFound(p)
	}
	var err error
	if i.host.Mode == V2 {
		err = i.usageV2(p, u)
	} else {
		err = i.usageV1(p, u)
	}
	if err != nil {
		return err
	}
	if u.Timestamp.IsZero() {
		u.Timestamp = time.Now().UTC()
	}
	return nil
}

func (i *Isolator) usageV1(p string, u *api.Usage) error {
	cg, err := cgroup1.Load(cgroup1.StaticPath(p), cgroup1.WithHierarchy(i.v1Hierarchy))
	if err != nil {
		if errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return notFound(p)
		}
		return fmt.Errorf("load cgroup %s: %w", p, err)
	}
	m, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		if errors.Is(err, cgroup1.ErrCgroupDeleted) {
			return notFound(p)
		}
		return fmt.Errorf("read cgroup %s: %w", p, err)
	}
	if c := m.CPU; c != nil {
		if c.Usage != nil {
			u.CPUUsageNanos = c.Usage.Total
			u.CPUUserNanos = c.Usage.User
			u.CPUSystemNanos = c.Usage.Kernel
		}
		if t := c.Throttling; t != nil {
			u.CPUPeriods = t.Periods
			u.CPUThrottled = t.ThrottledPeriods
			u.CPUThrottledNanos = t.ThrottledTime
		}
	}
	quota, qerr := readInt(filepath.Join(i.dir("cpu", p), "cpu.cfs_quota_us"))
	period, perr := readInt(filepath.Join(i.dir("cpu", p), "cpu.cfs_period_us"))
	if qerr == nil && perr == nil && quota > 0 && period > 0 {
		u.CPULimit = float64(quota) / float64(period)
	}
	if mem := m.Memory; mem != nil {
		if e := mem.Usage; e != nil {
			u.MemoryUsageBytes = e.Usage
			u.MemoryMaxBytes = e.Max
			if e.Limit < unlimitedV1() {
				u.MemoryLimitBytes = e.Limit
			}
			if sw := mem.Swap; sw != nil && sw.Usage > e.Usage {
				u.MemorySwapBytes = sw.Usage - e.Usage
			}
		}
		u.MemoryRSSBytes = mem.TotalRSS
		u.MemoryCacheBytes = mem.TotalCache
	}
	if oc := m.MemoryOomControl; oc != nil {
		u.OOMKills = oc.OomKill
	}
	if pids := m.Pids; pids != nil {
		u.Pids = pids.Current
		u.PidsLimit = pids.Limit
	}
	return nil
}

func (i *Isolator) usageV2(p string, u *api.Usage) error {
	cg, err := cgroup2.Load(p, cgroup2.WithMountpoint(i.mountpoint))
	if err != nil {
		return fmt.Errorf("load cgroup %s: %w", p, err)
	}
	m, err := cg.StatFiltered(cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents | cgroup2.StatPids)
	if err != nil {
		return fmt.Errorf("read cgroup %s: %w", p, err)
	}
	limited := func(v uint64) uint64 {
		if v == math.MaxUint64 {
			return 0
		}
		return v
	}
	if c := m.CPU; c != nil {
		u.CPUUsageNanos = c.UsageUsec * 1000
		u.CPUUserNanos = c.UserUsec * 1000
		u.CPUSystemNanos = c.SystemUsec * 1000
		u.CPUPeriods = c.NrPeriods
		u.CPUThrottled = c.NrThrottled
		u.CPUThrottledNanos = c.ThrottledUsec * 1000
	}
	if b, err := os.ReadFile(filepath.Join(i.dir("cpu", p), "cpu.max")); err == nil {
		if q, per, ok := parseCPUMax(string(b)); ok {
			u.CPULimit = float64(q) / float64(per)
		}
	}
	if mem := m.Memory; mem != nil {
		u.MemoryUsageBytes = mem.Usage
		u.MemoryLimitBytes = limited(mem.UsageLimit)
		u.MemoryMaxBytes = mem.MaxUsage
		u.MemorySwapBytes = mem.SwapUsage
		u.MemoryRSSBytes = mem.Anon
		u.MemoryCacheBytes = mem.File
	}
	if ev := m.MemoryEvents; ev != nil {
		u.OOMEvents = ev.Oom
		u.OOMKills = ev.OomKill
	}
	if pids := m.Pids; pids != nil {
		u.Pids = pids.Current
		u.PidsLimit = limited(pids.Limit)
	}
	return nil
}

// parseCPUMax parses v2 cpu.max ("QUOTA PERIOD" or "max PERIOD"); ok is
// false when there is no quota.
func parseCPUMax(s string) (quota, period int64, ok bool) {
	f := strings.Fields(s)
	if len(f) != 2 || f[0] == "max" {
		return 0, 0, false
	}
	q, err1 := strconv.ParseInt(f[0], 10, 64)
	per, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || q <= 0 || per <= 0 {
		return 0, 0, false
	}
	return q, per, true
}

// unlimitedV1 is what v1 memory.limit_in_bytes reads when there is no
// limit: LONG_MAX rounded down to the page size.
func unlimitedV1() uint64 {
	return uint64(math.MaxInt64) &^ uint64(os.Getpagesize()-1)
}

func readInt(p string) (int64, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// memoryLimit is the cgroup's hard memory limit, 0 when there is none or
// it cannot be read.
func (i *Isolator) memoryLimit(p string) int64 {
	if i.host.Mode == V2 {
		v, err := readInt(filepath.Join(i.dir("memory", p), "memory.max"))
		if err != nil {
			return 0 // "max", or no memory controller
		}
		return v
	}
	v, err := readInt(filepath.Join(i.dir("memory", p), "memory.limit_in_bytes"))
	if err != nil || uint64(v) >= unlimitedV1() {
		return 0
	}
	return v
}

func (i *Isolator) update(_ context.Context, p string, r api.Resources) error {
	if !i.exists(p) {
		return notFound(p)
	}
	if res := r.MemoryReservationBytes; res > 0 && r.MemoryBytes == 0 {
		if limit := i.memoryLimit(p); limit > 0 && res > limit {
			return errReservationAboveLimit(res, limit)
		}
	}
	vs := Values(i.host, r)
	if i.host.Mode == V1 && i.host.Swap && r.MemoryBytes > 0 {
		file := filepath.Join(i.dir("memory", p), "memory.memsw.limit_in_bytes")
		cur, err := readInt(file)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && !i.exists(p) {
				return notFound(p)
			}
			return fmt.Errorf("read %s: %w", file, err)
		}
		vs = updateOrder(i.host, vs, uint64(cur))
	}
	// All or nothing: what was written goes back when a later write fails
	// (a memory limit below what the container uses, say).
	var before []FileValue
	for _, v := range vs {
		old, err := i.read(p, v.File)
		if err == nil {
			err = i.write(p, v)
		}
		if err != nil {
			i.restore(p, before)
			return err
		}
		before = append(before, FileValue{File: v.File, Value: old})
	}
	i.log.Debug("updated cgroup", "cgroup", p, "values", vs)
	return nil
}

// read returns the content of one of cgroup p's files, as it can be
// written back.
func (i *Isolator) read(p, file string) (string, error) {
	v := FileValue{File: file}
	b, err := os.ReadFile(filepath.Join(i.dir(v.Controller(), p), file))
	if errors.Is(err, fs.ErrNotExist) {
		return "", i.missing(p, v)
	}
	if err != nil {
		return "", fmt.Errorf("read %s of cgroup %s: %w", file, p, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// restore writes back values, last first.
func (i *Isolator) restore(p string, values []FileValue) {
	for _, v := range slices.Backward(values) {
		if err := i.write(p, v); err != nil {
			i.log.Error("restore a cgroup file after a refused update", "cgroup", p, "file", v.File, "err", err)
		}
	}
}

// setQuota writes a CFS quota into cgroup p.
func (i *Isolator) setQuota(p string, quota int64) error {
	if !i.exists(p) {
		return notFound(p)
	}
	for _, v := range quotaValues(i.host, quota) {
		if err := i.write(p, v); err != nil {
			return err
		}
	}
	i.log.Debug("set the CPU quota over the standard period", "cgroup", p, "quota", quota)
	return nil
}

// write writes one value without creating the file: a missing file is a
// missing cgroup or controller, never something to make.
func (i *Isolator) write(p string, v FileValue) error {
	dir := i.dir(v.Controller(), p)
	file := filepath.Join(dir, v.File)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return i.missing(p, v)
	}
	if err != nil {
		return fmt.Errorf("set %s of cgroup %s: %w", v.File, p, err)
	}
	_, err = f.WriteString(v.Value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EBUSY) && v.Controller() == "memory":
		return fmt.Errorf("set %s of cgroup %s to %s: the container uses more memory and the kernel cannot reclaim it: %w",
			v.File, p, v.Value, api.ErrWrongState)
	}
	return fmt.Errorf("set %s of cgroup %s to %s: %w", v.File, p, v.Value, err)
}

// missing is the error for a control file of cgroup p that is not there:
// the cgroup is missing, or its controller.
func (i *Isolator) missing(p string, v FileValue) error {
	if !i.exists(p) {
		return notFound(p)
	}
	return fmt.Errorf("set %s of cgroup %s: no %s controller there: %w", v.File, p, v.Controller(), api.ErrUnavailable)
}

// readOOM reads the OOM kill counter of cgroup p and, on v1, whether it is
// under OOM right now. The error wraps fs.ErrNotExist when the cgroup or its
// memory controller is missing.
func (i *Isolator) readOOM(p string) (kills uint64, under bool, err error) {
	file := filepath.Join(i.dir("memory", p), "memory.events")
	if i.host.Mode == V1 {
		file = filepath.Join(i.dir("memory", p), "memory.oom_control")
	}
	kv, err := readKV(file)
	if err != nil {
		return 0, false, err
	}
	return kv["oom_kill"], kv["under_oom"] > 0, nil
}

func readKV(file string) (map[string]uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", file, err)
		}
		out[k] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, nil
}

func (i *Isolator) oomKilled(_ context.Context, p string) (bool, error) {
	if !i.exists(p) {
		return false, notFound(p)
	}
	kills, _, err := i.readOOM(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !i.exists(p) {
			return false, notFound(p)
		}
		return false, nil // no memory controller, no memory limit
	case err != nil:
		return false, err
	}
	return kills > 0, nil
}

// destroy kills every process in cgroup p and removes it, with its
// descendants, from every hierarchy. A cgroup that is not there is fine.
func (i *Isolator) destroy(ctx context.Context, p string) error {
	roots, err := i.hierarchies()
	if err != nil {
		return err
	}
	var dirs []string
	for _, r := range roots {
		if d := filepath.Join(r, p); dirExists(d) {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, removeTimeout)
		defer cancel()
	}
	delay := 5 * time.Millisecond
	for {
		killAll(dirs)
		var left []string
		var lastErr error
		for _, d := range dirs {
			if err := rmdirTree(d); err != nil {
				left, lastErr = append(left, d), err
			}
		}
		if len(left) == 0 {
			i.log.Debug("removed cgroup", "cgroup", p, "hierarchies", len(dirs))
			return nil
		}
		dirs = left
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("remove cgroup %s (%v): %w", p, lastErr, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// killAll kills the processes in dirs and their descendants: with
// cgroup.kill where the kernel has it (v2, 5.14+), and SIGKILL to every pid
// listed in cgroup.procs in any case (v1, or processes that raced a fork).
func killAll(dirs []string) {
	self := os.Getpid()
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "cgroup.kill")) {
			_ = os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
		}
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			for _, pid := range readPids(filepath.Join(p, "cgroup.procs")) {
				if pid > 1 && pid != self {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
			return nil
		})
	}
}

func readPids(file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// rmdirTree removes cgroup directory d, children first. Only directories are
// removed: a cgroup's files go with it.
func rmdirTree(d string) error {
	entries, err := os.ReadDir(d)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := rmdirTree(filepath.Join(d, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "rmdir", Path: d, Err: err}
	}
	return nil
}

// recoverOrphans destroys the cgroups Parent/<id> of the given orphans.
func (i *Isolator) recoverOrphans(ctx context.Context, orphans []string) error {
	var errs []error
	for _, id := range orphans {
		p := i.parent + "/" + id
		if err := i.destroy(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("orphan %w", err))
			continue
		}
		i.log.Info("destroyed orphan cgroup", "cgroup", p)
	}
	return errors.Join(errs...)
}
