package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// The GPU tests run on a simulated DGX A100: go-nvml's mock server with
// the machine's NVSwitch links and NUMA nodes, and fake device nodes
// (major 195) that caisson makes. A node the device cgroup allows opens
// with ENXIO (no driver behind it); one it denies fails with EPERM.

const (
	enxio = "No such device or address"
	eperm = "Operation not permitted"
)

// gpuProbe is run in a container: for every GPU and control node, whether
// it is there and what opening it gives; then the same for GPU 2 and 7,
// made by hand with mknod.
const gpuProbe = `
for d in /dev/nvidia0 /dev/nvidia1 /dev/nvidia2 /dev/nvidia3 /dev/nvidia4 /dev/nvidia5 /dev/nvidia6 /dev/nvidia7 \
	/dev/nvidiactl /dev/nvidia-modeset /dev/nvidia-uvm /dev/nvidia-uvm-tools; do
	if [ ! -e $d ]; then echo "$d: absent"; continue; fi
	if dd if=$d of=/dev/null bs=1 count=1 2>/tmp/err; then echo "$d: read"; else echo "$d: $(sed 's/.*: //' /tmp/err)"; fi
done
for n in 2 7; do
	if ! mknod /tmp/forged$n c 195 $n 2>/tmp/err; then echo "forged$n: mknod $(sed 's/.*: //' /tmp/err)"; continue; fi
	if dd if=/tmp/forged$n of=/dev/null bs=1 count=1 2>/tmp/err; then echo "forged$n: read"; else echo "forged$n: $(sed 's/.*: //' /tmp/err)"; fi
done
echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"
echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
`

func gpuEnv(t *testing.T) *env {
	e := newEnv(t)
	e.extraEnv = append(e.extraEnv, "CAISSON_GPU_BACKEND=mock:dgxa100")
	return e
}

type gpuList struct {
	Backend   string `json:"backend"`
	Simulated bool   `json:"simulated"`
	Devices   []struct {
		api.GPU
		Container string `json:"container"`
		Healthy   bool   `json:"healthy"`
	} `json:"devices"`
}

func (e *env) gpus() gpuList {
	e.t.Helper()
	var l gpuList
	if err := json.Unmarshal([]byte(e.ok("gpu", "ls", "--format", "json")), &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

// probeResult parses gpuProbe's output.
func probeResult(t *testing.T, out string) map[string]string {
	t.Helper()
	res := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			k, v, _ = strings.Cut(l, "=")
		}
		res[strings.TrimPrefix(k, "/dev/")] = v
	}
	return res
}

// wantProbe is what gpuProbe prints in a container that holds granted.
func wantProbe(l gpuList, granted ...int) map[string]string {
	w := map[string]string{}
	var uuids, ordinals []string
	for i := range 8 {
		w[fmt.Sprintf("nvidia%d", i)] = "absent"
		if slices.Contains(granted, i) {
			w[fmt.Sprintf("nvidia%d", i)] = enxio
			uuids = append(uuids, l.Devices[i].UUID)
			ordinals = append(ordinals, fmt.Sprint(len(ordinals)))
		}
	}
	for _, c := range []string{"nvidiactl", "nvidia-modeset", "nvidia-uvm", "nvidia-uvm-tools"} {
		w[c] = "absent"
		if len(granted) > 0 {
			w[c] = enxio
		}
	}
	for _, n := range []int{2, 7} {
		w[fmt.Sprintf("forged%d", n)] = eperm
		if slices.Contains(granted, n) {
			w[fmt.Sprintf("forged%d", n)] = enxio
		}
	}
	w["NVIDIA_VISIBLE_DEVICES"] = "void"
	w["CUDA_VISIBLE_DEVICES"] = ""
	if len(granted) > 0 {
		w["NVIDIA_VISIBLE_DEVICES"] = strings.Join(uuids, ",")
		w["CUDA_VISIBLE_DEVICES"] = strings.Join(ordinals, ",")
	}
	return w
}

// TestGPUPair: --gpus 2 on a simulated DGX A100 grants an NVLink pair on
// one NUMA node (GPUs 0 and 1), and only that pair: their nodes open with
// ENXIO, the other GPUs' nodes are absent and a forged one is denied.
func TestGPUPair(t *testing.T) {
	e := gpuEnv(t)
	l := e.gpus()
	if !l.Simulated || l.Backend != "mock:dgxa100" || len(l.Devices) != 8 {
		t.Fatalf("gpu ls: %+v", l)
	}
	if out := e.ok("gpu", "ls"); !strings.Contains(out, "SIMULATED") || !strings.Contains(out, "NV12") {
		t.Errorf("gpu ls does not say SIMULATED or show the NVLinks:\n%s", out)
	}
	out := e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", "2", "sh", "-c", gpuProbe)
	if diff := cmp.Diff(wantProbe(l, 0, 1), probeResult(t, out)); diff != "" {
		t.Errorf("--gpus 2 (-want +got):\n%s", diff)
	}
	// The device cgroup itself (v1: devices.list; v2 uses an eBPF program,
	// which the probe above exercises).
	id := strings.TrimSpace(e.ok("run", "-d", "--rootfs", e.rootfs, "--gpus", "2", "sleep", "600"))
	c := e.inspect(id)
	if got := []string{c.GPUs[0].UUID, c.GPUs[1].UUID}; len(c.GPUs) != 2 || !cmp.Equal(got, []string{l.Devices[0].UUID, l.Devices[1].UUID}) {
		t.Errorf("inspect GPUs = %+v", c.GPUs)
	} else if a := c.GPUs[0].CPUAffinity; len(a) != 16 || a[0] != 48 || a[15] != 63 || c.GPUs[0].NUMANode != 3 {
		// A simulated node k has CPUs 16k to 16k+15.
		t.Errorf("GPU 0: NUMA node %d, CPU affinity %v; want 3, 48-63", c.GPUs[0].NUMANode, a)
	}
	if list, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/devices", c.CgroupPath, "devices.list")); err == nil {
		rules := strings.Split(strings.TrimSpace(string(list)), "\n")
		for _, want := range []string{"c 195:0 rwm", "c 195:1 rwm", "c 195:255 rwm"} {
			if !slices.Contains(rules, want) {
				t.Errorf("devices.list has no %q:\n%s", want, list)
			}
		}
		for _, r := range rules {
			if strings.HasPrefix(r, "c 195:") && r != "c 195:0 rwm" && r != "c 195:1 rwm" && r != "c 195:255 rwm" && r != "c 195:254 rwm" || r == "a *:* rwm" {
				t.Errorf("devices.list allows %q", r)
			}
		}
	}
	e.ok("rm", "-f", id)
}

// TestGPUNone: a container that asks for no GPU gets none, even when it
// sets NVIDIA_VISIBLE_DEVICES=all itself.
func TestGPUNone(t *testing.T) {
	e := gpuEnv(t)
	l := e.gpus()
	out := e.ok("run", "--rm", "--rootfs", e.rootfs, "-e", "NVIDIA_VISIBLE_DEVICES=all", "sh", "-c", gpuProbe)
	if diff := cmp.Diff(wantProbe(l), probeResult(t, out)); diff != "" {
		t.Errorf("no --gpus (-want +got):\n%s", diff)
	}
}

// TestGPUDisjoint: containers get disjoint sets; GPUs held stay held
// across caisson processes; destroying a container frees its GPUs.
func TestGPUDisjoint(t *testing.T) {
	e := gpuEnv(t)
	l := e.gpus()
	a := strings.TrimSpace(e.ok("run", "-d", "--rootfs", e.rootfs, "--gpus", "4", "sleep", "600"))
	b := strings.TrimSpace(e.ok("run", "-d", "--rootfs", e.rootfs, "--gpus", "4", "sleep", "600"))
	held := map[string]string{}
	for _, id := range []string{a, b} {
		for _, g := range e.inspect(id).GPUs {
			if other, ok := held[g.UUID]; ok {
				t.Errorf("GPU %d held by %s and %s", g.Index, other[:12], id[:12])
			}
			held[g.UUID] = id
		}
	}
	if len(held) != 8 {
		t.Errorf("two containers of 4 GPUs hold %d GPUs", len(held))
	}
	for _, d := range e.gpus().Devices {
		if d.Container != held[d.UUID] {
			t.Errorf("gpu ls: GPU %d held by %q, want %q", d.Index, d.Container, held[d.UUID])
		}
	}
	r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", "1", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "0 of this host's 8 GPUs are free") {
		t.Errorf("a ninth GPU: %s", r)
	}
	// By UUID, a held GPU is refused with its holder named.
	r = e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", l.Devices[0].UUID, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "held by container "+held[l.Devices[0].UUID][:12]) {
		t.Errorf("a held GPU by UUID: %s", r)
	}
	e.ok("rm", "-f", a)
	out := e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", "4", "sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES")
	got := strings.Split(strings.TrimSpace(out), ",")
	for _, u := range got {
		if held[u] != a {
			t.Errorf("after removing %s, the new container got %s, which it did not hold", a[:12], u)
		}
	}
	e.ok("rm", "-f", b)
	for _, d := range e.gpus().Devices {
		if d.Container != "" {
			t.Errorf("GPU %d still held by %s after every container was removed", d.Index, d.Container)
		}
	}
}

// TestGPUCrash: a launch that dies after its GPUs were allocated leaves
// them held until recovery, which frees them; no GPU is handed out twice
// in between.
func TestGPUCrash(t *testing.T) {
	e := gpuEnv(t)
	e.gpus()
	cmd := e.cmd("run", "-d", "--rootfs", e.rootfs, "--gpus", "8", "sleep", "600")
	cmd.Env = append(cmd.Env, "CAISSON_TEST_CRASH_AT=prepared:gpu/nvidia")
	if err := cmd.Run(); err == nil {
		t.Fatal("the crash did not happen")
	}
	// Every caisson command recovers first; the crashed launch is gone
	// after it, and so is its hold on the GPUs.
	out := e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", "8", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES")
	if strings.TrimSpace(out) != "0,1,2,3,4,5,6,7" {
		t.Errorf("after recovery --gpus 8 saw %q", out)
	}
}

// TestGPUBadInput: each bad request fails with exit 125 and a clear
// message, and leaves no GPU allocated.
func TestGPUBadInput(t *testing.T) {
	e := gpuEnv(t)
	l := e.gpus()
	for _, c := range []struct {
		gpus, want string
	}{
		{"9", "--gpus 9: this host has 8 GPUs"},
		{"0.5", "GPUs are not shared, so a count must be whole"},
		{"-1", "a count cannot be negative"},
		{"GPU-00000000-0000-0000-0000-000000000000", "no GPU GPU-00000000-0000-0000-0000-000000000000 on this host"},
		{"GPU-a,GPU-a", "named twice"},
	} {
		r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", c.gpus, "true")
		if r.code != 125 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("--gpus %s: %s; want exit 125 and %q", c.gpus, r, c.want)
		}
	}
	// A device node that vanished.
	node := filepath.Join(e.root, "gpu", "sim", "dev", "nvidia3")
	if err := os.Remove(node); err != nil {
		t.Fatal(err)
	}
	r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", l.Devices[3].UUID, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "nvidia3 is missing") {
		t.Errorf("vanished node: %s", r)
	}
	for _, d := range e.gpus().Devices {
		if d.Container != "" {
			t.Errorf("GPU %d left allocated to %s by a failed run", d.Index, d.Container)
		}
	}
	// Discovering again makes the simulated node again.
	e.ok("gpu", "ls", "--refresh")
	e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", l.Devices[3].UUID, "true")
	// Not a backend.
	r = e.caisson("--gpu-backend", "mock:dgx2", "gpu", "ls")
	if r.code != 125 || !strings.Contains(r.stderr, `gpu backend "mock:dgx2"`) {
		t.Errorf("unknown backend: %s", r)
	}
	// Injection is for simulated GPUs only.
	r = e.caisson("--gpu-backend", "nvml", "gpu", "simulate", "0", "--xid", "79")
	if r.code != 125 || !strings.Contains(r.stderr, "simulated GPUs only") {
		t.Errorf("simulate on nvml: %s", r)
	}
}

// TestGPUMalformedDriverInfo: with the nvml backend and no NVML, GPUs come
// from /proc/driver/nvidia; a file there that cannot be parsed is an error
// that names it, not a GPU silently missing.
func TestGPUMalformedDriverInfo(t *testing.T) {
	e := newEnv(t)
	proc := t.TempDir()
	if err := os.WriteFile(filepath.Join(proc, "devices"), []byte("Character devices:\n195 nvidia\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(proc, "driver", "nvidia", "gpus", "0000:3b:00.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "information"), []byte("Model: NVIDIA H100\nDevice Minor: many\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.caisson("--path.procfs", proc, "--nvml-helper", "/nonexistent/caisson-nvml", "gpu", "ls")
	if r.code != 125 || !strings.Contains(r.stderr, filepath.Join(dir, "information")) {
		t.Errorf("malformed information file: %s", r)
	}
}

// TestGPUHealth: a critical XID takes a GPU out of service, an
// application's XID does not, a double-bit ECC error does and shows in
// stats; a GPU whose probe passes returns, one that keeps failing stays
// out until it recovers.
func TestGPUHealth(t *testing.T) {
	e := gpuEnv(t)
	l := e.gpus()
	watch := e.cmd("gpu", "watch", "--reprobe-interval", "20ms")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = watch.Process.Kill()
			_ = watch.Wait()
		}
	}()
	lines := bufio.NewScanner(stdout)
	// next returns the next line that is not a repeated probe failure.
	next := func() string {
		t.Helper()
		for lines.Scan() {
			if !strings.Contains(lines.Text(), "still unhealthy: probe failed") {
				return lines.Text()
			}
		}
		t.Fatal("gpu watch ended")
		return ""
	}
	if got := next(); got != "watching 8 SIMULATED GPUs (mock:dgxa100)" {
		t.Fatalf("first line %q", got)
	}
	u := func(i int) string { return l.Devices[i].UUID }
	// A job holds GPU 2 while it fails.
	job := strings.TrimSpace(e.ok("run", "-d", "--rootfs", e.rootfs, "--gpus", u(2), "sleep", "600"))

	e.ok("gpu", "simulate", "0", "--xid", "79", "--fault", "fallen off the bus")
	if got, want := next(), fmt.Sprintf("gpu 0 %s unhealthy: XID 79", u(0)); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// An application's XID changes nothing: the next line is the DBE's.
	e.ok("gpu", "simulate", "1", "--xid", "13")
	e.ok("gpu", "simulate", "2", "--dbe")
	if got, want := next(), fmt.Sprintf("gpu 2 %s unhealthy: double-bit ECC error", u(2)); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// GPU 2 has no lasting fault: its next probe brings it back.
	if got, want := next(), fmt.Sprintf("gpu 2 %s healthy again: probe passed", u(2)); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// GPU 0 stays out: 8 GPUs cannot be had, 7 can, without it.
	r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", "8", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "1 unhealthy") {
		t.Errorf("--gpus 8 with GPU 0 unhealthy: %s", r)
	}
	r = e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", u(0), "true")
	if r.code != 125 || !strings.Contains(r.stderr, "unhealthy: XID 79") {
		t.Errorf("the unhealthy GPU by UUID: %s", r)
	}
	var res api.NodeResources
	if err := json.Unmarshal([]byte(e.ok("node", "resources", "--format", "json")), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.GPUs) != 8 || res.GPUs[0].Unhealthy != "XID 79" || res.GPUs[1].Unhealthy != "" || !res.GPUs[0].Simulated {
		t.Errorf("node resources GPUs: %+v", res.GPUs)
	}
	// The DBE counts in the job's GPU stats.
	var rows []struct{ Usage api.Usage }
	if err := json.Unmarshal([]byte(e.ok("stats", "--format", "json", job)), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || len(rows[0].Usage.GPUs) != 1 || rows[0].Usage.GPUs[0].UUID != u(2) ||
		rows[0].Usage.GPUs[0].ECCUncorrected == nil || *rows[0].Usage.GPUs[0].ECCUncorrected != 1 || rows[0].Usage.GPUs[0].MemoryTotalBytes == nil {
		t.Errorf("stats GPUs: %+v", rows)
	}
	e.ok("rm", "-f", job)

	e.ok("gpu", "simulate", "0", "--recover")
	if got, want := next(), fmt.Sprintf("gpu 0 %s healthy again: probe passed", u(0)); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	out := e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", "8", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES")
	if strings.TrimSpace(out) != "0,1,2,3,4,5,6,7" {
		t.Errorf("--gpus 8 after recovery: %q", out)
	}
	if err := watch.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := watch.Wait(); err != nil {
		t.Errorf("gpu watch after SIGTERM: %v", err)
	}
}
