package cgroups

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
)

// requireUnified returns the host's cgroup2 mount (/sys/fs/cgroup on a
// unified host, /sys/fs/cgroup/unified on a hybrid one) and a v2 isolator
// on it with a fresh test parent.
func requireUnified(t *testing.T) (string, *Isolator) {
	t.Helper()
	testutil.RequiresLinux(t)
	testutil.RequiresRoot(t)
	var mount string
	for _, m := range []string{DefaultMountpoint, filepath.Join(DefaultMountpoint, "unified")} {
		if fsMagic(m) == unix.CGROUP2_SUPER_MAGIC {
			mount = m
			break
		}
	}
	if mount == "" {
		t.Skip("no cgroup2 filesystem is mounted (a cgroup v1 only host)")
	}
	iso, err := New(Config{Parent: testParent(t), Mode: V2, Mountpoint: mount})
	if err != nil {
		t.Fatal(err)
	}
	return mount, iso
}

// requireControllers skips unless the cgroup2 mount offers the cpu, memory
// and pids controllers, saying where they are instead.
func requireControllers(t *testing.T, mount string) {
	t.Helper()
	offered := strings.Fields(readFile(t, filepath.Join(mount, "cgroup.controllers")))
	var missing, inV1 []string
	for _, c := range []string{"cpu", "memory", "pids"} {
		if slices.Contains(offered, c) {
			continue
		}
		missing = append(missing, c)
		if fsMagic(filepath.Join(DefaultMountpoint, c)) == unix.CGROUP_SUPER_MAGIC {
			inV1 = append(inV1, c)
		}
	}
	switch {
	case len(missing) == 0:
	case len(inV1) == len(missing):
		t.Skipf("%s controllers are bound to cgroup v1 on this host (%s offers only %q)", strings.Join(missing, "/"), mount, offered)
	default:
		t.Skipf("the kernel offers no %s controller in %s (only %q)", strings.Join(missing, "/"), mount, offered)
	}
}

// newV2Cgroup makes cgroup p as the runtime would: the directory, with the
// cpu, memory and pids controllers enabled when withControllers, and the
// values of r written.
func newV2Cgroup(t *testing.T, iso *Isolator, mount, p string, withControllers bool, r api.Resources) string {
	t.Helper()
	dir := filepath.Join(mount, p)
	if withControllers {
		res := &cgroup2.Resources{CPU: &cgroup2.CPU{}, Memory: &cgroup2.Memory{}, Pids: &cgroup2.Pids{}}
		if _, err := cgroup2.NewManager(mount, p, res); err != nil {
			t.Fatalf("create cgroup %s: %v", p, err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range Values(iso.Host(), r) {
		if err := os.WriteFile(filepath.Join(dir, v.File), []byte(v.Value), 0); err != nil {
			t.Fatalf("write %s: %v", v.File, err)
		}
	}
	return dir
}

// TestV2Core runs what the kernel allows in a cgroup2 hierarchy without
// controllers: moving a process in, the core cpu.stat, status, cgroup.kill.
func TestV2Core(t *testing.T) {
	mount, iso := requireUnified(t)
	const id = "core"
	p := iso.parent + "/" + id
	dir := newV2Cgroup(t, iso, mount, p, false, api.Resources{})
	pr := start(t, joinDir(t, dir), `$BB seq 1 20000 >/dev/null && echo ready && exec $BB sleep 1000`)
	if _, err := pr.stdout.ReadString('\n'); err != nil {
		t.Fatalf("waiting for the process: %v", err)
	}
	if u := usage(t, iso, id); u.CPUUsageNanos == 0 {
		t.Errorf("CPUUsageNanos = 0 after seq ran in the cgroup (usage %+v)", u)
	}
	var st isolators.StatusResponse
	if err := iso.Status(context.Background(), &isolators.StatusRequest{ContainerID: id}, &st); err != nil || st.CgroupPath != p {
		t.Errorf("Status = %q, %v; want %q", st.CgroupPath, err, p)
	}
	if !fileExists(filepath.Join(dir, "memory.events")) {
		// No memory controller, so no limit to hit: Watch waits for ctx.
		ctx, cancel := context.WithCancel(context.Background())
		ch := watchAsync(ctx, iso, id)
		cancel()
		if res := await(t, ch); res.lim != nil || res.err != nil {
			t.Errorf("Watch without a memory controller = %+v, %v; want nil, nil", res.lim, res.err)
		}
	}
	for round := 1; round <= 2; round++ {
		if err := iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
			t.Fatalf("Cleanup #%d: %v", round, err)
		}
	}
	if dirExists(dir) {
		t.Errorf("Cleanup left %s", dir)
	}
	if err := pr.wait(); !killedBy(err, syscall.SIGKILL) {
		t.Errorf("process: %v, want killed by SIGKILL", err)
	}
	var u api.Usage
	if err := iso.Usage(context.Background(), &isolators.UsageRequest{ContainerID: id}, &u); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Usage after Cleanup = %v, want an error wrapping api.ErrNotFound", err)
	}
}

func TestV2Recover(t *testing.T) {
	mount, iso := requireUnified(t)
	orphanDir := newV2Cgroup(t, iso, mount, iso.parent+"/orphan", false, api.Resources{})
	knownDir := newV2Cgroup(t, iso, mount, iso.parent+"/known", false, api.Resources{})
	// Another work dir's container under the same parent: not known, not
	// an orphan of this one.
	foreignDir := newV2Cgroup(t, iso, mount, iso.parent+"/foreign", false, api.Resources{})
	// A container may make cgroups of its own below its cgroup.
	nested := filepath.Join(orphanDir, "nested")
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	orphan := start(t, joinDir(t, nested), "exec $BB sleep 1000")
	known := start(t, joinDir(t, knownDir), "exec $BB sleep 1000")
	foreign := start(t, joinDir(t, foreignDir), "exec $BB sleep 1000")
	req := &isolators.RecoverRequest{
		Containers: []isolators.RecoveredContainer{{ID: "known"}},
		Orphans:    []string{"orphan", "gone-without-cgroup", "known"},
	}
	for round := 1; round <= 2; round++ {
		if err := iso.Recover(context.Background(), req); err != nil {
			t.Fatalf("Recover #%d: %v", round, err)
		}
	}
	if dirExists(orphanDir) {
		t.Errorf("Recover left the orphan %s", orphanDir)
	}
	if err := orphan.wait(); !killedBy(err, syscall.SIGKILL) {
		t.Errorf("orphan's process: %v, want killed by SIGKILL", err)
	}
	for dir, p := range map[string]*proc{knownDir: known, foreignDir: foreign} {
		if procs := readPids(filepath.Join(dir, "cgroup.procs")); !slices.Contains(procs, p.cmd.Process.Pid) {
			t.Errorf("process %d is no longer in its cgroup %s (%v)", p.cmd.Process.Pid, dir, procs)
		}
	}
}

// TestV2Controllers checks limits, OOM, usage and update where cgroup v2
// has the cpu, memory and pids controllers.
func TestV2Controllers(t *testing.T) {
	mount, iso := requireUnified(t)
	requireControllers(t, mount)
	ctx := context.Background()
	setup := func(t *testing.T, id string, r api.Resources) (string, func(int)) {
		t.Helper()
		var resp isolators.PrepareResponse
		if err := iso.Prepare(ctx, &isolators.PrepareRequest{ContainerID: id, Spec: api.ContainerSpec{Resources: r}}, &resp); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		dir := newV2Cgroup(t, iso, mount, resp.CgroupsPath, true, r)
		return dir, joinDir(t, dir)
	}

	t.Run("limits", func(t *testing.T) {
		r := api.Resources{CPUs: 0.5, MemoryBytes: 64 * mib, MemoryReservationBytes: 32 * mib, PidsLimit: 32}
		dir, _ := setup(t, "limits", r)
		want := map[string]string{
			"cpu.max": "50000 100000", "cpu.weight": "20", "memory.max": "67108864",
			"memory.high": "33554432", "pids.max": "32",
		}
		if iso.Host().Swap {
			want["memory.swap.max"] = "0"
		}
		for file, w := range want {
			if got := readFile(t, filepath.Join(dir, file)); got != w {
				t.Errorf("%s = %s, want %s", file, got, w)
			}
		}
		u := usage(t, iso, "limits")
		got := api.Usage{CPULimit: u.CPULimit, MemoryLimitBytes: u.MemoryLimitBytes, PidsLimit: u.PidsLimit}
		if diff := cmp.Diff(api.Usage{CPULimit: 0.5, MemoryLimitBytes: 64 * mib, PidsLimit: 32}, got); diff != "" {
			t.Errorf("limits in Usage (-want +got):\n%s", diff)
		}
	})

	t.Run("oom", func(t *testing.T) {
		const id = "oom"
		_, join := setup(t, id, api.Resources{MemoryBytes: 32 * mib})
		wctx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		ch := watchAsync(wctx, iso, id)
		if err := start(t, join, ooms).wait(); !killedBy(err, syscall.SIGKILL) {
			t.Fatalf("dd in a 32 MiB cgroup: %v, want killed by the OOM killer", err)
		}
		want := &isolators.Limitation{Reason: api.ReasonOOM, Message: "memory limit of 32MiB exceeded"}
		res := await(t, ch)
		if res.err != nil {
			t.Fatalf("Watch: %v", res.err)
		}
		if diff := cmp.Diff(want, res.lim); diff != "" {
			t.Errorf("limitation (-want +got):\n%s", diff)
		}
		done, cancelDone := context.WithCancel(ctx)
		cancelDone()
		if lim, err := iso.Watch(done, &isolators.WatchRequest{ContainerID: id}); err != nil || !cmp.Equal(want, lim) {
			t.Errorf("Watch after cancel = %+v, %v; want %+v", lim, err, want)
		}
		if killed, err := iso.OOMKilled(ctx, id); err != nil || !killed {
			t.Errorf("OOMKilled = %v, %v; want true", killed, err)
		}
		if u := usage(t, iso, id); u.OOMKills == 0 || u.OOMEvents == 0 {
			t.Errorf("Usage OOM events %d, kills %d; want both above 0", u.OOMEvents, u.OOMKills)
		}
	})

	t.Run("usage", func(t *testing.T) {
		const id = "usage"
		_, join := setup(t, id, api.Resources{CPUs: 1, MemoryBytes: 256 * mib, PidsLimit: 100})
		pr := start(t, join, "exec $BB dd if=/dev/zero bs=64M count=1")
		if _, err := pr.stdout.ReadByte(); err != nil {
			t.Fatalf("reading dd's output: %v", err)
		}
		u := usage(t, iso, id)
		t.Logf("usage with 64 MiB held: %+v", u)
		for name, v := range map[string]uint64{"usage": u.MemoryUsageBytes, "anon": u.MemoryRSSBytes} {
			if v < 60*mib || v > 72*mib {
				t.Errorf("memory %s = %d bytes (%.1f MiB), want 60-72 MiB", name, v, float64(v)/mib)
			}
		}
		if u.CPUUsageNanos == 0 {
			t.Error("CPUUsageNanos = 0 for a process that filled 64 MiB")
		}
		got := api.Usage{MemoryLimitBytes: u.MemoryLimitBytes, CPULimit: u.CPULimit, Pids: u.Pids, PidsLimit: u.PidsLimit}
		if diff := cmp.Diff(api.Usage{MemoryLimitBytes: 256 * mib, CPULimit: 1, Pids: 1, PidsLimit: 100}, got); diff != "" {
			t.Errorf("Usage (-want +got):\n%s", diff)
		}
	})

	t.Run("pids", func(t *testing.T) {
		const id, limit = "pids", 8
		dir, join := setup(t, id, api.Resources{PidsLimit: limit})
		_ = start(t, join, `for i in $($BB seq 1 20); do $BB sleep 1000 & done`).wait()
		if got := readKey(t, filepath.Join(dir, "pids.events"), "max"); got == 0 {
			t.Error("pids.events max = 0: no fork was refused")
		}
		if peak := filepath.Join(dir, "pids.peak"); fileExists(peak) {
			if got, _ := strconv.Atoi(readFile(t, peak)); got > limit {
				t.Errorf("pids.peak = %d, above the limit of %d", got, limit)
			}
		}
	})

	t.Run("update", func(t *testing.T) {
		const id = "update"
		dir, join := setup(t, id, api.Resources{CPUs: 0.5, MemoryBytes: 64 * mib, PidsLimit: 16})
		start(t, join, "exec $BB sleep 1000")
		steps := []struct {
			r     api.Resources
			files map[string]string
		}{
			{api.Resources{CPUs: 1.5}, map[string]string{"cpu.max": "150000 100000", "cpu.weight": "59"}},
			{api.Resources{MemoryBytes: 128 * mib}, map[string]string{"memory.max": "134217728"}},
			{api.Resources{MemoryBytes: 48 * mib, MemoryReservationBytes: 16 * mib}, map[string]string{"memory.max": "50331648", "memory.high": "16777216"}},
			{api.Resources{CPUs: 0.25, PidsLimit: 32}, map[string]string{"cpu.max": "25000 100000", "pids.max": "32", "memory.max": "50331648"}},
		}
		for _, s := range steps {
			if err := iso.Update(ctx, &isolators.UpdateRequest{ContainerID: id, Resources: s.r}); err != nil {
				t.Fatalf("Update(%+v): %v", s.r, err)
			}
			for file, want := range s.files {
				if got := readFile(t, filepath.Join(dir, file)); got != want {
					t.Errorf("after Update(%+v): %s = %s, want %s", s.r, file, got, want)
				}
			}
		}
	})
}

// TestV2CleanupSpecPath checks that Cleanup also removes the cgroup the
// spec names, when the container ran under another parent.
func TestV2CleanupSpecPath(t *testing.T) {
	mount, iso := requireUnified(t)
	const id = "moved"
	old := testParent(t) + "/" + id
	dir := newV2Cgroup(t, iso, mount, old, false, api.Resources{})
	pr := start(t, joinDir(t, dir), "exec $BB sleep 1000")
	spec := &specs.Spec{Linux: &specs.Linux{CgroupsPath: old}}
	var st isolators.StatusResponse
	if err := iso.Status(context.Background(), &isolators.StatusRequest{ContainerID: id, Spec: spec}, &st); err != nil || st.CgroupPath != old {
		t.Errorf("Status = %q, %v; want %q", st.CgroupPath, err, old)
	}
	if err := iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	if dirExists(dir) {
		t.Errorf("Cleanup left %s", dir)
	}
	if err := pr.wait(); !killedBy(err, syscall.SIGKILL) {
		t.Errorf("process: %v, want killed by SIGKILL", err)
	}
}
