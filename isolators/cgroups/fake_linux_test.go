package cgroups

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
)

// fakeCgroupfs makes a cgroup filesystem tree in a temporary directory:
// files maps paths below the mountpoint to their contents. It returns an
// isolator on it with Parent /caisson.
func fakeCgroupfs(t *testing.T, h Host, files map[string]string) (*Isolator, string) {
	t.Helper()
	mount := t.TempDir()
	for name, content := range files {
		p := filepath.Join(mount, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &Isolator{parent: "/caisson", mountpoint: mount, host: h, cpus: 4, log: testutil.Logger(t)}, mount
}

func readAll(t *testing.T, mount string, names []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		out[n] = readFile(t, filepath.Join(mount, n))
	}
	return out
}

func TestFakeV2Update(t *testing.T) {
	initial := map[string]string{
		"caisson/c/cpu.weight": "100", "caisson/c/cpu.max": "max 100000", "caisson/c/memory.max": "max",
		"caisson/c/memory.swap.max": "max", "caisson/c/memory.high": "max", "caisson/c/pids.max": "max",
	}
	var names []string
	for n := range initial {
		names = append(names, n)
	}
	tests := []struct {
		name string
		host Host
		r    api.Resources
		want map[string]string // changed files
		err  error
	}{
		{
			name: "everything", host: Host{Mode: V2, Swap: true},
			r: api.Resources{CPUs: 1.5, MemoryBytes: 64 * mib, MemoryReservationBytes: 32 * mib, PidsLimit: 10},
			want: map[string]string{
				"caisson/c/cpu.weight": "59", "caisson/c/cpu.max": "150000 100000", "caisson/c/memory.max": "67108864",
				"caisson/c/memory.swap.max": "0", "caisson/c/memory.high": "33554432", "caisson/c/pids.max": "10",
			},
		},
		{
			name: "without swap accounting", host: Host{Mode: V2},
			r:    api.Resources{MemoryBytes: 64 * mib},
			want: map[string]string{"caisson/c/memory.max": "67108864"},
		},
		{
			name: "pids only", host: Host{Mode: V2, Swap: true},
			r:    api.Resources{PidsLimit: 3},
			want: map[string]string{"caisson/c/pids.max": "3"},
		},
		{
			name: "nothing", host: Host{Mode: V2, Swap: true},
			r: api.Resources{},
		},
		{
			name: "invalid", host: Host{Mode: V2, Swap: true},
			r:   api.Resources{CPUs: 0.5, MemoryBytes: 1},
			err: api.ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso, mount := fakeCgroupfs(t, tt.host, initial)
			err := iso.Update(context.Background(), &isolators.UpdateRequest{ContainerID: "c", Resources: tt.r})
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Update = %v, want %v", err, tt.err)
			}
			want := map[string]string{}
			for n, v := range initial {
				want[n] = v
			}
			for n, v := range tt.want {
				want[n] = v
			}
			if diff := cmp.Diff(want, readAll(t, mount, names)); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFakeUpdateErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown container", func(t *testing.T) {
		iso, _ := fakeCgroupfs(t, Host{Mode: V2}, map[string]string{"caisson/other/pids.max": "max"})
		err := iso.Update(ctx, &isolators.UpdateRequest{ContainerID: "c", Resources: api.Resources{PidsLimit: 1}})
		if !errors.Is(err, api.ErrNotFound) {
			t.Errorf("Update = %v, want an error wrapping api.ErrNotFound", err)
		}
	})
	t.Run("controller not enabled", func(t *testing.T) {
		iso, _ := fakeCgroupfs(t, Host{Mode: V2}, map[string]string{"caisson/c/cgroup.procs": ""})
		err := iso.Update(ctx, &isolators.UpdateRequest{ContainerID: "c", Resources: api.Resources{PidsLimit: 1}})
		if !errors.Is(err, api.ErrUnavailable) {
			t.Errorf("Update = %v, want an error wrapping api.ErrUnavailable", err)
		}
	})
	t.Run("reservation above the current limit", func(t *testing.T) {
		iso, mount := fakeCgroupfs(t, Host{Mode: V2}, map[string]string{"caisson/c/memory.max": "67108864", "caisson/c/memory.high": "max"})
		err := iso.Update(ctx, &isolators.UpdateRequest{ContainerID: "c", Resources: api.Resources{MemoryReservationBytes: 128 * mib}})
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Update = %v, want an error wrapping api.ErrInvalid", err)
		}
		if got := readFile(t, filepath.Join(mount, "caisson/c/memory.high")); got != "max" {
			t.Errorf("memory.high = %s, want it untouched", got)
		}
	})
	t.Run("spec path", func(t *testing.T) {
		iso, mount := fakeCgroupfs(t, Host{Mode: V2}, map[string]string{"old/c/pids.max": "max"})
		spec := specWithPath("/old/c")
		if err := iso.Update(ctx, &isolators.UpdateRequest{ContainerID: "c", Spec: spec, Resources: api.Resources{PidsLimit: 7}}); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(mount, "old/c/pids.max")); got != "7" {
			t.Errorf("pids.max = %s, want 7", got)
		}
	})
}

func TestFakeV1Update(t *testing.T) {
	initial := map[string]string{
		"cpu/caisson/c/cpu.shares": "1024", "cpu/caisson/c/cpu.cfs_period_us": "100000", "cpu/caisson/c/cpu.cfs_quota_us": "-1",
		"memory/caisson/c/memory.limit_in_bytes": "67108864", "memory/caisson/c/memory.memsw.limit_in_bytes": "67108864",
		"memory/caisson/c/memory.soft_limit_in_bytes": "9223372036854771712", "pids/caisson/c/pids.max": "max",
	}
	iso, mount := fakeCgroupfs(t, Host{Mode: V1, Swap: true}, initial)
	r := api.Resources{CPUs: 0.5, MemoryBytes: 128 * mib, MemoryReservationBytes: 64 * mib, PidsLimit: 20}
	if err := iso.Update(context.Background(), &isolators.UpdateRequest{ContainerID: "c", Resources: r}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu/caisson/c/cpu.shares": "512", "cpu/caisson/c/cpu.cfs_period_us": "100000", "cpu/caisson/c/cpu.cfs_quota_us": "50000",
		"memory/caisson/c/memory.limit_in_bytes": "134217728", "memory/caisson/c/memory.memsw.limit_in_bytes": "134217728",
		"memory/caisson/c/memory.soft_limit_in_bytes": "67108864", "pids/caisson/c/pids.max": "20",
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	if diff := cmp.Diff(want, readAll(t, mount, names)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestFakeV2Usage(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  api.Usage
	}{
		{
			name: "limited",
			files: map[string]string{
				"caisson/c/cpu.stat":            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 300\n",
				"caisson/c/cpu.max":             "50000 100000\n",
				"caisson/c/memory.current":      "70000000\n",
				"caisson/c/memory.max":          "134217728\n",
				"caisson/c/memory.peak":         "80000000\n",
				"caisson/c/memory.swap.current": "4096\n",
				"caisson/c/memory.stat":         "anon 60000000\nfile 9000000\nkernel_stack 16384\n",
				"caisson/c/memory.events":       "low 0\nhigh 3\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
				"caisson/c/pids.current":        "4\n",
				"caisson/c/pids.max":            "64\n",
			},
			want: api.Usage{
				CPUUsageNanos: 1500000, CPUUserNanos: 1000000, CPUSystemNanos: 500000, CPUPeriods: 10, CPUThrottled: 2,
				CPUThrottledNanos: 300000, CPULimit: 0.5,
				MemoryUsageBytes: 70000000, MemoryLimitBytes: 134217728, MemoryRSSBytes: 60000000, MemoryCacheBytes: 9000000,
				MemorySwapBytes: 4096, MemoryMaxBytes: 80000000,
				Pids: 4, PidsLimit: 64, OOMEvents: 2, OOMKills: 1,
			},
		},
		{
			name: "unlimited",
			files: map[string]string{
				"caisson/c/cpu.stat":       "usage_usec 7\nuser_usec 5\nsystem_usec 2\n",
				"caisson/c/cpu.max":        "max 100000\n",
				"caisson/c/memory.current": "4096\n",
				"caisson/c/memory.max":     "max\n",
				"caisson/c/memory.stat":    "anon 0\nfile 0\n",
				"caisson/c/pids.current":   "1\n",
				"caisson/c/pids.max":       "max\n",
			},
			want: api.Usage{CPUUsageNanos: 7000, CPUUserNanos: 5000, CPUSystemNanos: 2000, MemoryUsageBytes: 4096, Pids: 1},
		},
		{
			name:  "no controllers",
			files: map[string]string{"caisson/c/cgroup.procs": ""},
			want:  api.Usage{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso, _ := fakeCgroupfs(t, Host{Mode: V2, Swap: true}, tt.files)
			var u api.Usage
			if err := iso.Usage(context.Background(), &isolators.UsageRequest{ContainerID: "c"}, &u); err != nil {
				t.Fatal(err)
			}
			if u.Timestamp.IsZero() {
				t.Error("Timestamp left zero")
			}
			if diff := cmp.Diff(tt.want, u, cmpopts.IgnoreFields(api.Usage{}, "Timestamp")); diff != "" {
				t.Errorf("Usage (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		iso, _ := fakeCgroupfs(t, Host{Mode: V2}, nil)
		var u api.Usage
		if err := iso.Usage(context.Background(), &isolators.UsageRequest{ContainerID: "c"}, &u); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("Usage = %v, want an error wrapping api.ErrNotFound", err)
		}
	})
}

// TestFakeV2Watch drives the v2 watcher, an inotify watch on memory.events,
// with writes to a fake memory.events.
func TestFakeV2Watch(t *testing.T) {
	files := map[string]string{
		"caisson/c/memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
		"caisson/c/memory.max":    "33554432\n",
	}
	oomed := "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"
	want := &isolators.Limitation{Reason: api.ReasonOOM, Message: "memory limit of 32MiB exceeded"}
	req := &isolators.WatchRequest{ContainerID: "c"}

	t.Run("oom while running", func(t *testing.T) {
		iso, mount := fakeCgroupfs(t, Host{Mode: V2}, files)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		ch := watchAsync(ctx, iso, "c")
		// Events that are not OOM kills wake the watcher and are ignored.
		events := filepath.Join(mount, "caisson/c/memory.events")
		if err := os.WriteFile(events, []byte("low 0\nhigh 7\nmax 2\noom 0\noom_kill 0\n"), 0); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(events, []byte(oomed), 0); err != nil {
			t.Fatal(err)
		}
		res := await(t, ch)
		if res.err != nil {
			t.Fatal(res.err)
		}
		if diff := cmp.Diff(want, res.lim); diff != "" {
			t.Errorf("limitation (-want +got):\n%s", diff)
		}
	})

	t.Run("final check", func(t *testing.T) {
		iso, mount := fakeCgroupfs(t, Host{Mode: V2}, files)
		if err := os.WriteFile(filepath.Join(mount, "caisson/c/memory.events"), []byte(oomed), 0); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		lim, err := iso.Watch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, lim); diff != "" {
			t.Errorf("limitation (-want +got):\n%s", diff)
		}
	})

	t.Run("spec limit when the cgroup has none", func(t *testing.T) {
		iso, _ := fakeCgroupfs(t, Host{Mode: V2}, map[string]string{"caisson/c/memory.events": oomed, "caisson/c/memory.max": "max"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		spec := specWithPath("")
		limit := int64(48 * mib)
		spec.Linux.Resources.Memory.Limit = &limit
		lim, err := iso.Watch(ctx, &isolators.WatchRequest{ContainerID: "c", Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&isolators.Limitation{Reason: api.ReasonOOM, Message: "memory limit of 48MiB exceeded"}, lim); diff != "" {
			t.Errorf("limitation (-want +got):\n%s", diff)
		}
	})

	t.Run("cancel without oom leaks nothing", func(t *testing.T) {
		iso, _ := fakeCgroupfs(t, Host{Mode: V2}, files)
		fds := -1
		for round := 0; round < 5; round++ {
			ctx, cancel := context.WithCancel(context.Background())
			ch := watchAsync(ctx, iso, "c")
			cancel()
			if res := await(t, ch); res.lim != nil || res.err != nil {
				t.Fatalf("Watch after cancel = %+v, %v; want nil, nil", res.lim, res.err)
			}
			if n := openFDs(t); round == 1 {
				fds = n
			} else if round > 1 && n != fds {
				t.Errorf("round %d: %d open descriptors, want %d", round, n, fds)
			}
		}
	})

	t.Run("cgroup removed while watching", func(t *testing.T) {
		iso, mount := fakeCgroupfs(t, Host{Mode: V2}, files)
		ctx, cancel := context.WithCancel(context.Background())
		ch := watchAsync(ctx, iso, "c")
		if err := os.RemoveAll(filepath.Join(mount, "caisson/c")); err != nil {
			t.Fatal(err)
		}
		cancel()
		// Whether Watch saw the cgroup before it went or not, it reports
		// no limitation and does not hang.
		if res := await(t, ch); res.lim != nil || (res.err != nil && !errors.Is(res.err, api.ErrNotFound)) {
			t.Errorf("Watch = %+v, %v; want nil and nil or api.ErrNotFound", res.lim, res.err)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		iso, _ := fakeCgroupfs(t, Host{Mode: V2}, nil)
		if lim, err := iso.Watch(context.Background(), req); lim != nil || !errors.Is(err, api.ErrNotFound) {
			t.Errorf("Watch = %+v, %v; want nil and an error wrapping api.ErrNotFound", lim, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if lim, err := iso.Watch(ctx, req); lim != nil || err != nil {
			t.Errorf("Watch with ctx done = %+v, %v; want nil, nil", lim, err)
		}
	})

	t.Run("no memory controller", func(t *testing.T) {
		iso, _ := fakeCgroupfs(t, Host{Mode: V2}, map[string]string{"caisson/c/cgroup.procs": ""})
		ctx, cancel := context.WithCancel(context.Background())
		ch := watchAsync(ctx, iso, "c")
		cancel()
		if res := await(t, ch); res.lim != nil || res.err != nil {
			t.Errorf("Watch = %+v, %v; want nil, nil", res.lim, res.err)
		}
		if killed, err := iso.OOMKilled(context.Background(), "c"); killed || err != nil {
			t.Errorf("OOMKilled = %v, %v; want false, nil", killed, err)
		}
	})
}

func specWithPath(p string) *specs.Spec {
	return &specs.Spec{Linux: &specs.Linux{CgroupsPath: p, Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{}}}}
}

// A quota below DeferQuotaBelow reaches the runtime as the same share of
// a StartPeriod (at least MinStartQuota): Started sets it over CFSPeriod
// in the running container's cgroup, on v1 and v2, from the annotation
// Prepare left.
func TestFakeStartedQuota(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		host    Host
		initial map[string]string
		want    map[string]string
	}{
		{Host{Mode: V1},
			map[string]string{"cpu/caisson/c/cpu.cfs_period_us": "1000000", "cpu/caisson/c/cpu.cfs_quota_us": "100000"},
			map[string]string{"cpu/caisson/c/cpu.cfs_period_us": "100000", "cpu/caisson/c/cpu.cfs_quota_us": "10000"}},
		{Host{Mode: V2},
			map[string]string{"caisson/c/cpu.max": "100000 1000000"},
			map[string]string{"caisson/c/cpu.max": "10000 100000"}},
	} {
		t.Run(tc.host.Mode.String(), func(t *testing.T) {
			iso, mount := fakeCgroupfs(t, tc.host, tc.initial)
			var resp isolators.PrepareResponse
			err := iso.Prepare(ctx, &isolators.PrepareRequest{ContainerID: "c", Spec: api.ContainerSpec{Resources: api.Resources{CPUs: 0.1}}}, &resp)
			if err != nil {
				t.Fatal(err)
			}
			if cpu := resp.Resources.CPU; cpu == nil || cpu.Quota == nil || *cpu.Quota != 100000 || cpu.Period == nil || *cpu.Period != StartPeriod {
				t.Fatalf("Prepare: cpu %+v, want quota 100000 over a period of %d", cpu, StartPeriod)
			}
			if got := resp.Annotations[AnnotationCPUQuota]; got != "10000" {
				t.Fatalf("Prepare: annotation %s = %q, want 10000", AnnotationCPUQuota, got)
			}
			spec := &specs.Spec{Annotations: resp.Annotations, Linux: &specs.Linux{CgroupsPath: resp.CgroupsPath, Resources: resp.Resources}}
			var names []string
			for n := range tc.want {
				names = append(names, n)
			}
			if err := iso.Started(ctx, &isolators.IsolateRequest{ContainerID: "c", Spec: spec}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, readAll(t, mount, names)); diff != "" {
				t.Errorf("files after Started (-want +got):\n%s", diff)
			}

			// Another container's cgroup is not there: not found.
			err = iso.Started(ctx, &isolators.IsolateRequest{ContainerID: "gone", Spec: &specs.Spec{Annotations: resp.Annotations}})
			if !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Started(no cgroup) = %v, want an error wrapping api.ErrNotFound", err)
			}
		})
	}
	iso, mount := fakeCgroupfs(t, Host{Mode: V1}, map[string]string{"cpu/caisson/c/cpu.cfs_period_us": "100000", "cpu/caisson/c/cpu.cfs_quota_us": "60000"})
	for _, a := range []map[string]string{nil, {"other": "x"}} {
		spec := &specs.Spec{Annotations: a}
		if err := iso.Started(ctx, &isolators.IsolateRequest{ContainerID: "c", Spec: spec}); err != nil {
			t.Errorf("Started without an annotation = %v, want nil", err)
		}
	}
	if got := readAll(t, mount, []string{"cpu/caisson/c/cpu.cfs_quota_us"}); got["cpu/caisson/c/cpu.cfs_quota_us"] != "60000" {
		t.Errorf("Started without an annotation wrote the quota: %v", got)
	}
	for _, bad := range []string{"x", "0", "999", "100001", "-5"} {
		spec := &specs.Spec{Annotations: map[string]string{AnnotationCPUQuota: bad}}
		if err := iso.Started(ctx, &isolators.IsolateRequest{ContainerID: "c", Spec: spec}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Started(quota %q) = %v, want an error wrapping api.ErrInvalid", bad, err)
		}
	}
	// The runtime's quota per StartPeriod is the same share, and at least
	// MinStartQuota; half a CPU and more are left to the runtime.
	for _, tc := range []struct {
		cpus          float64
		quota, period uint64
		annotation    string
	}{
		{0.01, MinStartQuota, StartPeriod, "1000"},
		{0.05, 50000, StartPeriod, "5000"},
		{0.49, 490000, StartPeriod, "49000"},
		{0.5, 50000, CFSPeriod, ""},
		{2, 200000, CFSPeriod, ""},
	} {
		var resp isolators.PrepareResponse
		if err := iso.Prepare(ctx, &isolators.PrepareRequest{ContainerID: "c", Spec: api.ContainerSpec{Resources: api.Resources{CPUs: tc.cpus}}}, &resp); err != nil {
			t.Fatal(err)
		}
		cpu := resp.Resources.CPU
		if cpu == nil || cpu.Quota == nil || cpu.Period == nil || uint64(*cpu.Quota) != tc.quota || *cpu.Period != tc.period || resp.Annotations[AnnotationCPUQuota] != tc.annotation {
			t.Errorf("Prepare(cpus %v): cpu %+v, annotations %v; want %d over %d, annotation %q", tc.cpus, cpu, resp.Annotations, tc.quota, tc.period, tc.annotation)
		}
	}
}
