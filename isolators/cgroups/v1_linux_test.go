package cgroups

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
)

// prepareV1 runs Prepare for id with r and creates the cgroup from the
// response as runc would. It returns the cgroup path and a join function.
func prepareV1(t *testing.T, iso *Isolator, id string, r api.Resources) (string, func(int)) {
	t.Helper()
	var resp isolators.PrepareResponse
	req := &isolators.PrepareRequest{ContainerID: id, Spec: api.ContainerSpec{Resources: r}}
	if err := iso.Prepare(context.Background(), req, &resp); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	cg := newV1Cgroup(t, resp.CgroupsPath, resp.Resources)
	// What the containerizer does once the runtime has started it.
	spec := &specs.Spec{Annotations: resp.Annotations, Linux: &specs.Linux{CgroupsPath: resp.CgroupsPath}}
	if err := iso.Started(context.Background(), &isolators.IsolateRequest{ContainerID: id, Spec: spec}); err != nil {
		t.Fatalf("Started: %v", err)
	}
	return resp.CgroupsPath, joinV1(t, cg, resp.CgroupsPath)
}

func v1File(p, file string) string {
	c, _, _ := strings.Cut(file, ".")
	return filepath.Join(DefaultMountpoint, c, p, file)
}

func TestV1Limits(t *testing.T) {
	iso := requireV1(t)
	tests := []struct {
		name  string
		r     api.Resources
		files map[string]string // what runc wrote from the spec, read back
		usage api.Usage         // the limits Usage reports
	}{
		{
			name:  "cpus 0.5",
			r:     api.Resources{CPUs: 0.5},
			files: map[string]string{"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000", "cpu.shares": "512"},
			usage: api.Usage{CPULimit: 0.5},
		},
		{
			// The runtime writes 100000 per second; Started puts it over
			// 100 ms.
			name:  "cpus 0.1",
			r:     api.Resources{CPUs: 0.1},
			files: map[string]string{"cpu.cfs_quota_us": "10000", "cpu.cfs_period_us": "100000", "cpu.shares": "102"},
			usage: api.Usage{CPULimit: 0.1},
		},
		{
			name: "everything",
			r:    api.Resources{CPUs: 1.5, MemoryBytes: 64 * mib, MemoryReservationBytes: 32 * mib, PidsLimit: 32},
			files: map[string]string{
				"cpu.cfs_quota_us": "150000", "cpu.cfs_period_us": "100000", "cpu.shares": "1536",
				"memory.limit_in_bytes": "67108864", "memory.memsw.limit_in_bytes": "67108864",
				"memory.soft_limit_in_bytes": "33554432", "pids.max": "32",
			},
			usage: api.Usage{CPULimit: 1.5, MemoryLimitBytes: 64 * mib, PidsLimit: 32},
		},
		{
			name: "smallest",
			r:    api.Resources{CPUs: 0.01, MemoryBytes: 6 * mib, PidsLimit: 1},
			files: map[string]string{
				"cpu.cfs_quota_us": "1000", "cpu.cfs_period_us": "100000", "cpu.shares": "10",
				"memory.limit_in_bytes": "6291456", "memory.memsw.limit_in_bytes": "6291456", "pids.max": "1",
			},
			usage: api.Usage{CPULimit: 0.01, MemoryLimitBytes: 6 * mib, PidsLimit: 1},
		},
		{
			name:  "none",
			r:     api.Resources{},
			files: map[string]string{"cpu.cfs_quota_us": "-1", "pids.max": "max"},
			usage: api.Usage{},
		},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "limits-" + strconv.Itoa(n)
			p, _ := prepareV1(t, iso, id, tt.r)
			for file, want := range tt.files {
				if strings.HasPrefix(file, "memory.memsw.") && !iso.Host().Swap {
					continue
				}
				if got := readFile(t, v1File(p, file)); got != want {
					t.Errorf("%s = %s, want %s", file, got, want)
				}
			}
			// The values layer names the same files and values.
			for _, v := range Values(iso.Host(), tt.r) {
				if got := readFile(t, v1File(p, v.File)); got != v.Value {
					t.Errorf("%s = %s, but Values says %s", v.File, got, v.Value)
				}
			}
			u := usage(t, iso, id)
			got := api.Usage{CPULimit: u.CPULimit, MemoryLimitBytes: u.MemoryLimitBytes, PidsLimit: u.PidsLimit}
			if diff := cmp.Diff(tt.usage, got); diff != "" {
				t.Errorf("limits in Usage (-want +got):\n%s", diff)
			}
		})
	}
}

type watchResult struct {
	lim *isolators.Limitation
	err error
}

func watchAsync(ctx context.Context, iso *Isolator, id string) <-chan watchResult {
	ch := make(chan watchResult, 1)
	go func() {
		lim, err := iso.Watch(ctx, &isolators.WatchRequest{ContainerID: id})
		ch <- watchResult{lim, err}
	}()
	return ch
}

// await returns Watch's result; the timeout only turns a hang into a failure.
func await(t *testing.T, ch <-chan watchResult) watchResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(2 * time.Minute):
		t.Fatal("Watch did not return")
		return watchResult{}
	}
}

// ooms is a process that allocates 100 MiB at once: dd fills its buffer.
const ooms = "exec $BB dd if=/dev/zero of=/dev/null bs=100M count=1"

func TestV1OOM(t *testing.T) {
	iso := requireV1(t)
	r := api.Resources{MemoryBytes: 32 * mib}
	want := &isolators.Limitation{Reason: api.ReasonOOM, Message: "memory limit of 32MiB exceeded"}

	t.Run("while running", func(t *testing.T) {
		const id = "oom-running"
		_, join := prepareV1(t, iso, id, r)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		ch := watchAsync(ctx, iso, id)
		if err := start(t, join, ooms).wait(); !killedBy(err, syscall.SIGKILL) {
			t.Fatalf("dd in a 32 MiB cgroup: %v, want killed by the OOM killer", err)
		}
		// ctx is still live: Watch reports the OOM on its own.
		res := await(t, ch)
		if res.err != nil {
			t.Fatalf("Watch: %v", res.err)
		}
		if diff := cmp.Diff(want, res.lim); diff != "" {
			t.Errorf("limitation (-want +got):\n%s", diff)
		}
		u := usage(t, iso, id)
		if u.OOMKills == 0 {
			t.Errorf("Usage OOMKills = 0 after an OOM kill")
		}
		if u.MemoryMaxBytes > 32*mib {
			t.Errorf("max memory usage %d is above the 32 MiB limit", u.MemoryMaxBytes)
		}
	})

	t.Run("final check after cancel", func(t *testing.T) {
		const id = "oom-final"
		_, join := prepareV1(t, iso, id, r)
		if err := start(t, join, ooms).wait(); !killedBy(err, syscall.SIGKILL) {
			t.Fatalf("dd in a 32 MiB cgroup: %v, want killed by the OOM killer", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		lim, err := iso.Watch(ctx, &isolators.WatchRequest{ContainerID: id})
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		if diff := cmp.Diff(want, lim); diff != "" {
			t.Errorf("limitation (-want +got):\n%s", diff)
		}
		killed, err := iso.OOMKilled(context.Background(), id)
		if err != nil || !killed {
			t.Errorf("OOMKilled = %v, %v; want true", killed, err)
		}
	})

	t.Run("no oom", func(t *testing.T) {
		const id = "oom-none"
		_, join := prepareV1(t, iso, id, r)
		start(t, join, "exec $BB sleep 1000")
		fds := -1
		for round := 0; round < 4; round++ {
			ctx, cancel := context.WithCancel(context.Background())
			ch := watchAsync(ctx, iso, id)
			cancel()
			if res := await(t, ch); res.lim != nil || res.err != nil {
				t.Fatalf("Watch after cancel = %+v, %v; want nil, nil", res.lim, res.err)
			}
			// The first round may open the runtime's poller; later rounds
			// must leave the descriptor count alone.
			if n := openFDs(t); round == 1 {
				fds = n
			} else if round > 1 && n != fds {
				t.Errorf("round %d: %d open descriptors, want %d", round, n, fds)
			}
		}
		killed, err := iso.OOMKilled(context.Background(), id)
		if err != nil || killed {
			t.Errorf("OOMKilled = %v, %v; want false", killed, err)
		}
	})
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestV1Usage(t *testing.T) {
	iso := requireV1(t)
	const id = "usage"
	_, join := prepareV1(t, iso, id, api.Resources{CPUs: 1, MemoryBytes: 256 * mib, PidsLimit: 100})
	// dd fills its 64 MiB buffer from /dev/zero before it writes the first
	// byte, then blocks on the full pipe, holding the buffer.
	pr := start(t, join, "exec $BB dd if=/dev/zero bs=64M count=1")
	if _, err := pr.stdout.ReadByte(); err != nil {
		t.Fatalf("reading dd's output: %v", err)
	}
	u := usage(t, iso, id)
	t.Logf("usage with 64 MiB held: %+v", u)
	for name, v := range map[string]uint64{"usage": u.MemoryUsageBytes, "rss": u.MemoryRSSBytes} {
		if v < 60*mib || v > 72*mib {
			t.Errorf("memory %s = %d bytes (%.1f MiB), want 60-72 MiB", name, v, float64(v)/mib)
		}
	}
	if u.MemoryMaxBytes < u.MemoryUsageBytes {
		t.Errorf("max memory usage %d is below the usage %d", u.MemoryMaxBytes, u.MemoryUsageBytes)
	}
	if u.CPUUsageNanos == 0 {
		t.Error("CPUUsageNanos = 0 for a process that filled 64 MiB")
	}
	got := api.Usage{MemoryLimitBytes: u.MemoryLimitBytes, CPULimit: u.CPULimit, Pids: u.Pids, PidsLimit: u.PidsLimit, OOMKills: u.OOMKills}
	want := api.Usage{MemoryLimitBytes: 256 * mib, CPULimit: 1, Pids: 1, PidsLimit: 100}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Usage (-want +got):\n%s", diff)
	}
	if u.Timestamp.IsZero() {
		t.Error("Usage left Timestamp zero")
	}
}

func TestV1Pids(t *testing.T) {
	iso := requireV1(t)
	const id, limit = "pids", 8
	p, join := prepareV1(t, iso, id, api.Resources{PidsLimit: limit})
	// The shell forks 20 sleepers; forks past the limit fail.
	pr := start(t, join, `for i in $($BB seq 1 20); do $BB sleep 1000 & done`)
	_ = pr.wait() // the shell gives up at the first failed fork, or finishes
	if got := readKey(t, v1File(p, "pids.events"), "max"); got == 0 {
		t.Error("pids.events max = 0: no fork was refused")
	}
	if peak := v1File(p, "pids.peak"); fileExists(peak) {
		if got, _ := strconv.Atoi(readFile(t, peak)); got > limit {
			t.Errorf("pids.peak = %d, above the limit of %d", got, limit)
		}
	}
	u := usage(t, iso, id)
	if u.Pids == 0 || u.Pids > limit || u.PidsLimit != limit {
		t.Errorf("Usage pids = %d of %d, want 1-%d of %d", u.Pids, u.PidsLimit, limit, limit)
	}
}

func TestV1Update(t *testing.T) {
	iso := requireV1(t)
	const id = "update"
	p, join := prepareV1(t, iso, id, api.Resources{CPUs: 0.5, MemoryBytes: 64 * mib, PidsLimit: 16})
	start(t, join, "exec $BB sleep 1000")
	ctx := context.Background()
	steps := []struct {
		name  string
		r     api.Resources
		err   error
		files map[string]string
	}{
		{
			name:  "raise cpus",
			r:     api.Resources{CPUs: 1.5},
			files: map[string]string{"cpu.shares": "1536", "cpu.cfs_quota_us": "150000", "cpu.cfs_period_us": "100000", "memory.limit_in_bytes": "67108864"},
		},
		{
			name:  "raise memory",
			r:     api.Resources{MemoryBytes: 128 * mib},
			files: map[string]string{"memory.limit_in_bytes": "134217728", "memory.memsw.limit_in_bytes": "134217728", "cpu.shares": "1536"},
		},
		{
			name:  "lower memory",
			r:     api.Resources{MemoryBytes: 48 * mib},
			files: map[string]string{"memory.limit_in_bytes": "50331648", "memory.memsw.limit_in_bytes": "50331648"},
		},
		{
			name:  "lower cpus",
			r:     api.Resources{CPUs: 0.25},
			files: map[string]string{"cpu.shares": "256", "cpu.cfs_quota_us": "25000"},
		},
		{
			name:  "reservation",
			r:     api.Resources{MemoryReservationBytes: 16 * mib},
			files: map[string]string{"memory.soft_limit_in_bytes": "16777216", "memory.limit_in_bytes": "50331648"},
		},
		{
			name:  "reservation above the current limit",
			r:     api.Resources{MemoryReservationBytes: 100 * mib},
			err:   api.ErrInvalid,
			files: map[string]string{"memory.soft_limit_in_bytes": "16777216"},
		},
		{
			name:  "pids",
			r:     api.Resources{PidsLimit: 32},
			files: map[string]string{"pids.max": "32"},
		},
		{
			name:  "more cpus than the host has",
			r:     api.Resources{CPUs: float64(iso.cpus + 1)},
			err:   api.ErrInvalid,
			files: map[string]string{"cpu.cfs_quota_us": "25000"},
		},
		{
			name: "nothing",
			r:    api.Resources{},
			files: map[string]string{
				"cpu.shares": "256", "cpu.cfs_quota_us": "25000", "memory.limit_in_bytes": "50331648",
				"memory.memsw.limit_in_bytes": "50331648", "memory.soft_limit_in_bytes": "16777216", "pids.max": "32",
			},
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := iso.Update(ctx, &isolators.UpdateRequest{ContainerID: id, Resources: s.r})
			if s.err == nil && err != nil || s.err != nil && !errors.Is(err, s.err) {
				t.Fatalf("Update(%+v) = %v, want %v", s.r, err, s.err)
			}
			for file, want := range s.files {
				if strings.HasPrefix(file, "memory.memsw.") && !iso.Host().Swap {
					continue
				}
				if got := readFile(t, v1File(p, file)); got != want {
					t.Errorf("%s = %s, want %s", file, got, want)
				}
			}
		})
	}
}

// An update the kernel refuses part way changes nothing: the limits
// written before the refused one get their values back.
func TestV1UpdateBelowUsage(t *testing.T) {
	iso := requireV1(t)
	noSwap(t)
	const id = "update-busy"
	p, join := prepareV1(t, iso, id, api.Resources{CPUs: 0.5, MemoryBytes: 64 * mib, PidsLimit: 16})
	pr := start(t, join, "exec $BB dd if=/dev/zero bs=40M count=1")
	if _, err := pr.stdout.ReadByte(); err != nil {
		t.Fatalf("reading dd's output: %v", err)
	}
	files := []string{"cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "memory.limit_in_bytes", "memory.soft_limit_in_bytes", "pids.max"}
	if iso.Host().Swap {
		files = append(files, "memory.memsw.limit_in_bytes")
	}
	read := func() map[string]string {
		m := map[string]string{}
		for _, f := range files {
			m[f] = readFile(t, v1File(p, f))
		}
		return m
	}
	want := read()
	for _, tc := range []struct {
		name string
		r    api.Resources
	}{
		{"memory alone", api.Resources{MemoryBytes: 16 * mib}},
		{"cpus first", api.Resources{CPUs: 1.5, MemoryBytes: 16 * mib}},
		{"everything", api.Resources{CPUs: 0.25, MemoryBytes: 16 * mib, MemoryReservationBytes: 8 * mib, PidsLimit: 32}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := iso.Update(context.Background(), &isolators.UpdateRequest{ContainerID: id, Resources: tc.r})
			if !errors.Is(err, api.ErrWrongState) {
				t.Fatalf("lowering the limit below 40 MiB in use: %v, want an error wrapping api.ErrWrongState", err)
			}
			if diff := cmp.Diff(want, read()); diff != "" {
				t.Errorf("the refused update changed the cgroup (-before +after):\n%s", diff)
			}
		})
	}
	if u := usage(t, iso, id); u.OOMKills != 0 {
		t.Errorf("OOMKills = %d: the refused update killed something", u.OOMKills)
	}
}

func TestV1Cleanup(t *testing.T) {
	iso := requireV1(t)
	const id = "cleanup"
	p, join := prepareV1(t, iso, id, api.Resources{MemoryBytes: 64 * mib, PidsLimit: 10})
	// A container may make cgroups of its own below its cgroup.
	nested := filepath.Join(DefaultMountpoint, "memory", p, "nested")
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	top := start(t, join, "exec $BB sleep 1000")
	inner := start(t, func(pid int) {
		join(pid)
		joinDirV1(t, nested, pid)
	}, "exec $BB sleep 1000")
	before := cgroupDirs(t, p)
	if len(before) < 4 {
		t.Fatalf("the test cgroup is in %d hierarchies (%v); want cpu, cpuacct, memory, pids at least", len(before), before)
	}
	for round := 1; round <= 2; round++ {
		if err := iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
			t.Fatalf("Cleanup #%d: %v", round, err)
		}
	}
	if left := cgroupDirs(t, p); len(left) > 0 {
		t.Errorf("Cleanup left %v (of %v)", left, before)
	}
	for name, pr := range map[string]*proc{"top": top, "nested": inner} {
		if err := pr.wait(); !killedBy(err, syscall.SIGKILL) {
			t.Errorf("%s process: %v, want killed by SIGKILL", name, err)
		}
	}
}

func joinDirV1(t *testing.T, dir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatalf("move %d into %s: %v", pid, dir, err)
	}
}

func TestV1Recover(t *testing.T) {
	iso := requireV1(t)
	orphanPath, joinOrphan := prepareV1(t, iso, "orphan", api.Resources{MemoryBytes: 64 * mib})
	knownPath, joinKnown := prepareV1(t, iso, "known", api.Resources{MemoryBytes: 64 * mib})
	// Another work dir's container under the same parent: not known, not
	// an orphan of this one.
	foreignPath, joinForeign := prepareV1(t, iso, "foreign", api.Resources{MemoryBytes: 64 * mib})
	orphan := start(t, joinOrphan, "exec $BB sleep 1000")
	known := start(t, joinKnown, "exec $BB sleep 1000")
	foreign := start(t, joinForeign, "exec $BB sleep 1000")
	knownDirs := cgroupDirs(t, knownPath)
	foreignDirs := cgroupDirs(t, foreignPath)
	req := &isolators.RecoverRequest{
		Containers: []isolators.RecoveredContainer{{ID: "known", Pid: known.cmd.Process.Pid}},
		Orphans:    []string{"orphan", "gone-without-cgroup", "known"},
	}
	for round := 1; round <= 2; round++ {
		if err := iso.Recover(context.Background(), req); err != nil {
			t.Fatalf("Recover #%d: %v", round, err)
		}
	}
	if left := cgroupDirs(t, orphanPath); len(left) > 0 {
		t.Errorf("Recover left the orphan's cgroup in %v", left)
	}
	if err := orphan.wait(); !killedBy(err, syscall.SIGKILL) {
		t.Errorf("orphan's process: %v, want killed by SIGKILL", err)
	}
	if diff := cmp.Diff(knownDirs, cgroupDirs(t, knownPath)); diff != "" {
		t.Errorf("the known container's cgroups changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(foreignDirs, cgroupDirs(t, foreignPath)); diff != "" {
		t.Errorf("a cgroup no orphan names changed (-before +after):\n%s", diff)
	}
	for _, c := range []struct {
		path string
		p    *proc
	}{{knownPath, known}, {foreignPath, foreign}} {
		procs := readPids(filepath.Join(DefaultMountpoint, "memory", c.path, "cgroup.procs"))
		if !slices.Contains(procs, c.p.cmd.Process.Pid) {
			t.Errorf("process %d is no longer in its cgroup %s (%v)", c.p.cmd.Process.Pid, c.path, procs)
		}
	}
}

func TestV1Hierarchy(t *testing.T) {
	iso := requireV1(t)
	subs, err := iso.v1Hierarchy()
	if err != nil {
		t.Fatal(err)
	}
	var names []cgroup1.Name
	for _, s := range subs {
		names = append(names, s.Name())
	}
	for _, n := range names {
		if !slices.Contains(resourceControllers, n) {
			t.Errorf("v1Hierarchy includes %s", n)
		}
	}
	if !slices.Contains(names, cgroup1.Memory) {
		t.Errorf("v1Hierarchy = %v, want memory in it", names)
	}
	roots, err := iso.hierarchies()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(roots, filepath.Join(DefaultMountpoint, "memory")) {
		t.Errorf("hierarchies() = %v, want the memory hierarchy in it", roots)
	}
}

// Under a parent with a CPU limit, Started can put a small quota over the
// standard period: written period first, the quota of the runtime's long
// period would be, for a moment, ten times the container's share, more
// than the parent has, and the kernel refuses that.
func TestV1StartedQuotaUnderLimitedParent(t *testing.T) {
	iso := requireV1(t)
	p, err := iso.Path("small")
	if err != nil {
		t.Fatal(err)
	}
	quota, period := int64(50000), uint64(CFSPeriod)
	newV1Cgroup(t, path.Dir(p), &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: &quota, Period: &period}})
	p, _ = prepareV1(t, iso, "small", api.Resources{CPUs: 0.2})
	for file, want := range map[string]string{"cpu.cfs_quota_us": "20000", "cpu.cfs_period_us": "100000"} {
		if got := readFile(t, v1File(p, file)); got != want {
			t.Errorf("%s = %s, want %s", file, got, want)
		}
	}
}
