//go:build linux

package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/resources"
)

// The GPU NUMA affinity tests run caisson as an agent confined to one CPU
// by its own cgroup's cpuset (as systemd's AllowedCPUs= or docker
// --cpuset-cpus confine a service), on simulated DGX machines whose NUMA
// node k has CPUs 16k to 16k+15. A container's cgroup is made under
// caisson's --cgroup-parent, a new cgroup that inherits the root's cpuset:
// without a cpuset of its own, a container runs on all the root's CPUs;
// with the one its GPU gives, on caisson's one CPU.

// cpusetAnnotation is where the gpu/nvidia isolator says which cpuset a
// container got from its GPUs, or why none.
const cpusetAnnotation = "caisson.gpu/cpuset"

// cpusetProbe prints the container's own CPUs and memory nodes.
const cpusetProbe = `grep -E '^(Cpus|Mems)_allowed_list:' /proc/self/status`

// cpusetSeen is what a container with GPUs ran with: its CPUs and memory
// nodes as it saw them, the cpuset its runtime spec asked for, the CPU
// quota beside it, and the annotation (its start when it gives a reason).
type cpusetSeen struct {
	CPUsInside, MemsInside string
	SpecCPUs, SpecMems     string
	SpecQuota              int64
	Annotation             string
}

// agentCPU is the CPU caisson runs on: the highest of the CPUs that a
// simulated GPU on NUMA node 0 is near (0-15) and that this test may use.
func agentCPU(t *testing.T) int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	for c := 15; c >= 0; c-- {
		if set.IsSet(c) {
			return c
		}
	}
	t.Skip("this test may run on none of CPUs 0-15, the CPUs of a simulated GPU on NUMA node 0")
	return -1
}

// cpusetRoot is the root of the hierarchy with the cpuset controller (the
// v1 cpuset hierarchy, or the cgroup v2 mount) and the names of its files
// of effective CPUs and memory nodes.
func cpusetRoot(t *testing.T) (root string, v2 bool, cpusFile, memsFile string) {
	t.Helper()
	const base = "/sys/fs/cgroup"
	var st unix.Statfs_t
	if err := unix.Statfs(base, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		ctrls, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
		if err != nil || !slices.Contains(strings.Fields(string(ctrls)), "cpuset") {
			t.Skipf("the cgroup v2 hierarchy offers no cpuset controller (%q, %v)", ctrls, err)
		}
		return base, true, "cpuset.cpus.effective", "cpuset.mems.effective"
	}
	root = filepath.Join(base, "cpuset")
	if _, err := os.Stat(filepath.Join(root, "cpuset.effective_cpus")); err != nil {
		t.Skipf("no cgroup v1 cpuset hierarchy: %v", err)
	}
	return root, false, "cpuset.effective_cpus", "cpuset.effective_mems"
}

// readTrim reads a one-line file.
func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// agentCgroup makes a cgroup whose cpuset is CPU cpu and the root's memory
// nodes, for caisson to run in, and returns its cgroup.procs. The cgroup
// is removed at the end of the test: after the env's teardown, when the
// env is made after it.
func agentCgroup(t *testing.T, cpu int) string {
	t.Helper()
	testutil.RequiresRoot(t)
	root, v2, _, memsFile := cpusetRoot(t)
	if ctl := filepath.Join(root, "cgroup.subtree_control"); v2 && !slices.Contains(strings.Fields(readTrim(t, ctl)), "cpuset") {
		// runc enables it there too, for the containers' cgroups. It goes
		// off again after the cgroup below is removed, unless something
		// else on the host has come to use it.
		if err := os.WriteFile(ctl, []byte("+cpuset"), 0o644); err != nil {
			t.Fatalf("enable the cpuset controller: %v", err)
		}
		t.Cleanup(func() {
			if err := os.WriteFile(ctl, []byte("-cpuset"), 0o644); err != nil && !errors.Is(err, syscall.EBUSY) {
				t.Errorf("disable the cpuset controller again: %v", err)
			}
		})
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	dir := filepath.Join(root, "caisson-e2e-agent-"+hex.EncodeToString(b))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The env's teardown has removed the containers and killed
		// caisson's processes; anything left here is killed too, and the
		// cgroup goes once the kernel has reaped it.
		if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		for i := 0; ; i++ {
			err := os.Remove(dir)
			if err == nil || os.IsNotExist(err) {
				return
			}
			if i == 100 {
				t.Errorf("remove the agent's cgroup: %v", err)
				return
			}
			time.Sleep(10 * time.Millisecond) // cleanup only: let the kernel reap
		}
	})
	for _, f := range []struct{ file, value string }{
		{"cpuset.cpus", strconv.Itoa(cpu)},
		{"cpuset.mems", readTrim(t, filepath.Join(root, memsFile))},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.file), []byte(f.value), 0o644); err != nil {
			t.Fatalf("%s of the agent's cgroup: %v", f.file, err)
		}
	}
	return filepath.Join(dir, "cgroup.procs")
}

// okIn runs caisson in the cgroup whose cgroup.procs is procs, and fails
// the test unless it exits 0.
func (e *env) okIn(procs string, args ...string) string {
	e.t.Helper()
	cmd := e.cmd(args...)
	cmd.Path = "/bin/sh"
	cmd.Args = append([]string{"sh", "-c", `echo $$ >"$0" && exec "$@"`, procs}, cmd.Args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("caisson %s in %s: %v, stdout %q, stderr %q", strings.Join(args, " "), filepath.Dir(procs), err, out.String(), errb.String())
	}
	return out.String()
}

// runCPUSet runs cpusetProbe in a container named name with GPU uuid and
// --cpus 0.5, caisson running in the cgroup whose cgroup.procs is procs,
// and returns what the container saw and what its bundle says; the
// container is removed afterwards.
func (e *env) runCPUSet(procs, name, uuid string, globalFlags ...string) cpusetSeen {
	e.t.Helper()
	args := append(append([]string{}, globalFlags...), "run", "--name", name, "--rootfs", e.rootfs, "--cpus", "0.5", "--gpus", uuid, "sh", "-c", cpusetProbe)
	out := e.okIn(procs, args...)
	defer e.ok("rm", name)
	var seen cpusetSeen
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "Cpus_allowed_list":
			seen.CPUsInside = strings.TrimSpace(v)
		case "Mems_allowed_list":
			seen.MemsInside = strings.TrimSpace(v)
		}
	}
	data, err := os.ReadFile(filepath.Join(e.inspect(name).Bundle, "config.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		e.t.Fatal(err)
	}
	if s.Linux != nil && s.Linux.Resources != nil && s.Linux.Resources.CPU != nil {
		r := s.Linux.Resources.CPU
		seen.SpecCPUs, seen.SpecMems = r.Cpus, r.Mems
		if r.Quota != nil {
			seen.SpecQuota = *r.Quota
		}
	}
	seen.Annotation = s.Annotations[cpusetAnnotation]
	e.t.Logf("%s: Cpus_allowed_list %s, Mems_allowed_list %s; spec cpus %q, mems %q; %s %q",
		name, seen.CPUsInside, seen.MemsInside, seen.SpecCPUs, seen.SpecMems, cpusetAnnotation, seen.Annotation)
	if why, ok := strings.CutPrefix(seen.Annotation, "not applied: "); ok && why != "" {
		seen.Annotation = "not applied: …"
	}
	return seen
}

// quota is the CFS quota of --cpus 0.5, which the cgroups isolator sets
// beside the cpuset.
const quota = 50000

// TestGPUCPUSet: under the default best-effort policy, a container runs
// on the CPUs and memory node nearest its GPU that caisson may use, set by
// runc from linux.resources.cpu.cpus and .mems beside the --cpus quota.
// caisson runs confined to one CPU c of 0-15. On a simulated DGX H100,
// GPU 0 is on NUMA node 0 with CPUs 0-15: the container runs on c and
// node 0. GPU 4 is on node 1 with CPUs 16-31, none of which caisson may
// use: the container starts with no cpuset of its own (the root's, through
// its parent cgroup) and the annotation says why. With
// --gpu-numa-affinity none nothing is set; an unknown policy is refused.
func TestGPUCPUSet(t *testing.T) {
	c := agentCPU(t)
	procs := agentCgroup(t, c)
	e := newEnv(t)
	e.extraEnv = append(e.extraEnv, "CAISSON_GPU_BACKEND=mock:dgxh100")
	l := e.gpus()
	if len(l.Devices) != 8 || l.Devices[0].NUMANode != 0 || l.Devices[4].NUMANode != 1 {
		t.Fatalf("gpu ls: %+v", l)
	}
	root, _, cpusFile, memsFile := cpusetRoot(t)
	rootCPUs, rootMems := readTrim(t, filepath.Join(root, cpusFile)), readTrim(t, filepath.Join(root, memsFile))
	if nodes, err := resources.ParseList(rootMems); err != nil || !slices.Contains(nodes, 0) {
		t.Skipf("NUMA node 0, the GPU's, is not among the root cpuset's memory nodes (%s, %v)", rootMems, err)
	}
	cpu := strconv.Itoa(c)

	got := e.runCPUSet(procs, "near", l.Devices[0].UUID)
	want := cpusetSeen{CPUsInside: cpu, MemsInside: "0", SpecCPUs: cpu, SpecMems: "0", SpecQuota: quota, Annotation: "cpus " + cpu + ", mems 0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GPU 0 (NUMA node 0, CPUs 0-15) (-want +got):\n%s", diff)
	}

	inherited := cpusetSeen{CPUsInside: rootCPUs, MemsInside: rootMems, SpecQuota: quota}
	got = e.runCPUSet(procs, "far", l.Devices[4].UUID)
	want = inherited
	want.Annotation = "not applied: …"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GPU 4 (NUMA node 1, CPUs 16-31) (-want +got):\n%s", diff)
	}

	got = e.runCPUSet(procs, "off", l.Devices[0].UUID, "--gpu-numa-affinity", "none")
	if diff := cmp.Diff(inherited, got); diff != "" {
		t.Errorf("--gpu-numa-affinity none (-want +got):\n%s", diff)
	}

	r := e.caisson("--gpu-numa-affinity", "single-numa-node", "run", "--rm", "--rootfs", e.rootfs, "--gpus", "1", "true")
	if r.code != 125 || !strings.Contains(r.stderr, `gpu NUMA affinity policy "single-numa-node"`) {
		t.Errorf("an unknown policy: %s", r)
	}
}

// TestGPUCPUSetDGXA100: on a simulated DGX A100 every GPU is on NUMA node
// 1, 3, 5 or 7, with CPUs from 16 up; caisson confined to a CPU below 16
// has none of them to give, so a container with GPU 0 (node 3, CPUs 48-63)
// starts with the root's cpuset through its parent cgroup, and the
// annotation says why.
func TestGPUCPUSetDGXA100(t *testing.T) {
	procs := agentCgroup(t, agentCPU(t))
	e := gpuEnv(t)
	l := e.gpus()
	root, _, cpusFile, memsFile := cpusetRoot(t)
	got := e.runCPUSet(procs, "a100", l.Devices[0].UUID)
	want := cpusetSeen{CPUsInside: readTrim(t, filepath.Join(root, cpusFile)), MemsInside: readTrim(t, filepath.Join(root, memsFile)),
		SpecQuota: quota, Annotation: "not applied: …"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GPU 0 (NUMA node 3, CPUs 48-63) (-want +got):\n%s", diff)
	}
}
