//go:build linux

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
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu/cdi"
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
		Container  string   `json:"container"`
		Healthy    bool     `json:"healthy"`
		Unhealthy  *gpuMark `json:"unhealthy"`
		MIGDevices []struct {
			api.MIGDevice
			Container string   `json:"container"`
			Healthy   bool     `json:"healthy"`
			Unhealthy *gpuMark `json:"unhealthy"`
		} `json:"mig_devices"`
	} `json:"devices"`
}

// gpuMark is why gpu ls says a GPU or MIG device is unhealthy.
type gpuMark struct {
	Reason string `json:"reason"`
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
	if r.code != 125 || !strings.Contains(r.stderr, `--gpu-backend (gpu.backend): "mock:dgx2"`) {
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
	next, stop := startGPUWatch(t, e)
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
	stop()
}

// migProbe is run in a container given one MIG device of GPU 0: what
// opening each GPU and control node gives, the capability nodes it sees,
// then for the capability minors in $MINE, $OTHERS and $ADMIN (config and
// monitor) what their node in /dev/nvidia-caps gives and what a node made
// with mknod on the caps major ($CAPS) gives.
const migProbe = `
check() {
	if [ ! -e $1 ]; then echo "$2: absent"; return; fi
	if dd if=$1 of=/dev/null bs=1 count=1 2>/tmp/err; then echo "$2: read"; else echo "$2: $(sed 's/.*: //' /tmp/err)"; fi
}
for d in /dev/nvidia0 /dev/nvidia1 /dev/nvidia2 /dev/nvidia3 /dev/nvidia4 /dev/nvidia5 /dev/nvidia6 /dev/nvidia7 \
	/dev/nvidiactl /dev/nvidia-modeset /dev/nvidia-uvm /dev/nvidia-uvm-tools; do check $d ${d#/dev/}; done
echo "caps: $(ls /dev/nvidia-caps 2>/dev/null | sort | tr '\n' ' ')"
for n in $MINE $OTHERS $ADMIN; do
	check /dev/nvidia-caps/nvidia-cap$n cap$n
	if mknod /tmp/cap$n c $CAPS $n 2>/tmp/err; then check /tmp/cap$n forged-cap$n; else echo "forged-cap$n: mknod $(sed 's/.*: //' /tmp/err)"; fi
done
echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"
echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
`

// TestGPUMIG: GPU 0 of a simulated DGX A100 in MIG mode. A container that
// asks for a 1g.5gb gets one MIG device: its GPU's node and its own GPU and
// compute instance capabilities (ENXIO: allowed, no driver behind them),
// not another instance's (absent, and EPERM when forged), nor config or
// monitor; two such containers get different ones. The GPU is no longer
// given whole, its layout cannot change while a container holds one of its
// MIG devices, and removing the containers and turning MIG off gives the
// eight GPUs back.
func TestGPUMIG(t *testing.T) {
	e := gpuEnv(t)
	l := e.gpus()
	g0 := l.Devices[0].UUID
	out := e.ok("gpu", "simulate", "0", "--mig", "1g.5gb,1g.5gb,2g.10gb,3g.20gb")
	if !strings.Contains(out, "SIMULATED MIG mode on, 4 MIG devices") {
		t.Errorf("gpu simulate --mig:\n%s", out)
	}
	l = e.gpus()
	var profiles []string
	for _, m := range l.Devices[0].MIGDevices {
		profiles = append(profiles, m.Profile)
		if !api.IsMIGUUID(m.UUID) || m.ParentUUID != g0 || m.Container != "" || !m.Healthy {
			t.Errorf("MIG device %+v", m)
		}
	}
	if !l.Devices[0].MIG || !cmp.Equal(profiles, []string{"1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"}) || l.Devices[1].MIG {
		t.Fatalf("gpu ls after --mig: GPU 0 MIG %v, profiles %v; GPU 1 MIG %v", l.Devices[0].MIG, profiles, l.Devices[1].MIG)
	}
	if table := e.ok("gpu", "ls"); !strings.Contains(table, "0:3") || !strings.Contains(table, "MIG 3g.20gb") || !strings.Contains(table, "(MIG mode)") {
		t.Errorf("gpu ls does not list the MIG devices:\n%s", table)
	}
	// An impossible layout is refused and changes nothing.
	r := e.caisson("gpu", "simulate", "1", "--mig", "1g.5gb,1g.5gb,1g.5gb,1g.5gb,1g.5gb,1g.5gb,1g.5gb,1g.5gb")
	if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "holds at most 7 GPU instances of profile 1g.5gb, the layout has 8") {
		t.Errorf("eight 1g.5gb: %s", r)
	}
	if e.gpus().Devices[1].MIG {
		t.Error("a refused layout turned MIG mode on")
	}

	caps, err := cdi.ReadMIGMinors(filepath.Join(e.root, "gpu", "sim", "mig-minors"))
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(e.root, "gpu", "sim", "dev", "nvidia-caps", "nvidia-cap1"), &st); err != nil {
		t.Fatal(err)
	}
	capsMajor := unix.Major(st.Rdev)
	migCaps := func(i int) []string { // GPU 0's MIG device i: its GI and CI access minors
		m := l.Devices[0].MIGDevices[i]
		return []string{fmt.Sprint(caps[cdi.GIAccess(0, m.GPUInstance)]), fmt.Sprint(caps[cdi.CIAccess(0, m.GPUInstance, m.ComputeInstance)])}
	}
	// probe runs migProbe with a 1g.5gb and returns what it saw and the
	// minors of the MIG device it was given.
	probe := func(args ...string) (map[string]string, int) {
		t.Helper()
		out := e.ok(append(append([]string{"run", "--rm", "--rootfs", e.rootfs, "--gpus", "mig-1g.5gb"}, args...), "sh", "-c", migProbe)...)
		res := probeResult(t, out)
		for i, m := range l.Devices[0].MIGDevices {
			if res["NVIDIA_VISIBLE_DEVICES"] == m.UUID {
				return res, i
			}
		}
		t.Fatalf("--gpus mig-1g.5gb got %q, no 1g.5gb:\n%s", res["NVIDIA_VISIBLE_DEVICES"], out)
		return nil, 0
	}
	// want is what migProbe prints for MIG device mine of GPU 0, with
	// others being the other instances' capability minors.
	want := func(mine int, others []string) map[string]string {
		w := map[string]string{"nvidia0": enxio, "nvidiactl": enxio, "nvidia-modeset": enxio, "nvidia-uvm": enxio, "nvidia-uvm-tools": enxio}
		for i := 1; i < 8; i++ {
			w[fmt.Sprintf("nvidia%d", i)] = "absent"
		}
		my := migCaps(mine)
		sorted := []string{"nvidia-cap" + my[0], "nvidia-cap" + my[1]}
		slices.Sort(sorted)
		w["caps"] = strings.Join(sorted, " ") + " "
		for _, n := range my {
			w["cap"+n], w["forged-cap"+n] = enxio, enxio
		}
		for _, n := range append(others, "1", "2") { // another instance's; config and monitor
			w["cap"+n], w["forged-cap"+n] = "absent", eperm
		}
		uuid := l.Devices[0].MIGDevices[mine].UUID
		w["NVIDIA_VISIBLE_DEVICES"], w["CUDA_VISIBLE_DEVICES"] = uuid, uuid
		return w
	}
	// otherCaps are the capability minors of GPU 0's other MIG devices.
	otherCaps := func(mine int) []string {
		var rest []string
		for i := range l.Devices[0].MIGDevices {
			for _, n := range migCaps(i) {
				if !slices.Contains(migCaps(mine), n) {
					rest = append(rest, n)
				}
			}
		}
		return rest
	}
	env := func(mine int) []string {
		return []string{"-e", "MINE=" + strings.Join(migCaps(mine), " "), "-e", "OTHERS=" + strings.Join(otherCaps(mine), " "),
			"-e", "ADMIN=1 2", "-e", fmt.Sprintf("CAPS=%d", capsMajor)}
	}

	// One container holds a 1g.5gb; another gets the other one, and
	// reaches neither the first one's capabilities nor config or monitor.
	a := strings.TrimSpace(e.ok("run", "-d", "--rootfs", e.rootfs, "--gpus", "mig-1g.5gb", "sleep", "600"))
	ca := e.inspect(a)
	if len(ca.GPUs) != 1 || ca.GPUs[0].UUID != g0 || len(ca.GPUs[0].MIGDevices) != 1 || ca.GPUs[0].MIGDevices[0].Profile != "1g.5gb" {
		t.Fatalf("inspect GPUs = %+v", ca.GPUs)
	}
	held := ca.GPUs[0].MIGDevices[0].UUID
	heldIdx := ca.GPUs[0].MIGDevices[0].Index
	// The first probe learns which device it got, then is checked with
	// the right minors.
	res, mine := probe(env(1 - heldIdx)...)
	if l.Devices[0].MIGDevices[mine].UUID == held {
		t.Errorf("two containers were given MIG device %s", held)
	}
	if diff := cmp.Diff(want(mine, otherCaps(mine)), res); diff != "" {
		t.Errorf("--gpus mig-1g.5gb (-want +got):\n%s", diff)
	}
	// The device cgroup itself (v1: devices.list).
	if list, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/devices", ca.CgroupPath, "devices.list")); err == nil {
		rules := strings.Split(strings.TrimSpace(string(list)), "\n")
		my := migCaps(heldIdx)
		for _, w := range []string{"c 195:0 rwm", fmt.Sprintf("c %d:%s rwm", capsMajor, my[0]), fmt.Sprintf("c %d:%s rwm", capsMajor, my[1])} {
			if !slices.Contains(rules, w) {
				t.Errorf("devices.list has no %q:\n%s", w, list)
			}
		}
		for _, r := range rules {
			if strings.HasPrefix(r, fmt.Sprintf("c %d:", capsMajor)) && r != fmt.Sprintf("c %d:%s rwm", capsMajor, my[0]) && r != fmt.Sprintf("c %d:%s rwm", capsMajor, my[1]) {
				t.Errorf("devices.list allows another capability: %q", r)
			}
		}
	}

	// Both 1g.5gb held: a third is refused; so are eight whole GPUs, GPU 0
	// whole, a profile this host lacks, a malformed request, and a layout
	// change of the GPU. Nothing is left allocated by them.
	b := strings.TrimSpace(e.ok("run", "-d", "--rootfs", e.rootfs, "--gpus", "mig-1g.5gb", "sleep", "600"))
	if cb := e.inspect(b); len(cb.GPUs) != 1 || len(cb.GPUs[0].MIGDevices) != 1 || cb.GPUs[0].MIGDevices[0].UUID == held {
		t.Errorf("second holder's GPUs = %+v, want the other 1g.5gb", cb.GPUs)
	}
	for _, c := range []struct{ gpus, want string }{
		{"mig-1g.5gb", "0 of this host's 2 1g.5gb MIG devices are free and healthy (2 held by containers, 0 unhealthy)"},
		{"8", "--gpus 8: this host has 7 GPUs that are not in MIG mode (GPU 0 is in MIG mode: ask for MIG devices by profile, mig-PROFILE)"},
		{g0, "is in MIG mode, so it is not given whole; ask for its MIG devices"},
		{"mig-7g.40gb", "no MIG device of profile 7g.40gb (it has 1g.5gb ×2, 2g.10gb, 3g.20gb"},
		{"mig-1g.5gb:0", "is not a whole number of at least 1"},
		{"mig-1g", "does not have 2 or 3 fields"},
		{held, "held by container " + a[:12]},
	} {
		r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", c.gpus, "true")
		if r.code != 125 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("--gpus %s: %s; want exit 125 and one line with %q", c.gpus, r, c.want)
		}
	}
	r = e.caisson("gpu", "simulate", "0", "--mig", "off")
	if r.code != 125 || !strings.Contains(r.stderr, "held by container") || !strings.Contains(r.stderr, "cannot change") {
		t.Errorf("--mig off while held: %s", r)
	}
	for _, d := range e.gpus().Devices[0].MIGDevices {
		want := map[string]string{held: a}
		if d.Profile == "1g.5gb" && d.UUID != held {
			want[d.UUID] = b
		}
		if d.Container != want[d.UUID] {
			t.Errorf("gpu ls: MIG device %s held by %q, want %q", d.UUID, d.Container, want[d.UUID])
		}
	}
	var res2 api.NodeResources
	if err := json.Unmarshal([]byte(e.ok("node", "resources", "--format", "json")), &res2); err != nil {
		t.Fatal(err)
	}
	if len(res2.GPUs) != 8 || !res2.GPUs[0].MIG || len(res2.GPUs[0].MIGDevices) != 4 || res2.GPUs[0].MIGDevices[3].Profile != "3g.20gb" {
		t.Errorf("node resources GPU 0: %+v", res2.GPUs[0])
	}
	// The other MIG devices and the seven whole GPUs are still there.
	out = e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", "mig-3g.20gb", "sh", "-c", "ls /dev/nvidia-caps | wc -l; echo $CUDA_VISIBLE_DEVICES")
	if f := strings.Fields(out); len(f) != 2 || f[0] != "2" || f[1] != l.Devices[0].MIGDevices[3].UUID {
		t.Errorf("--gpus mig-3g.20gb beside the holders: %q", out)
	}
	out = e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", "7", "sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES; [ ! -e /dev/nvidia-caps ] || echo has-caps")
	if strings.Contains(out, g0) || strings.Contains(out, "has-caps") || strings.Count(out, "GPU-") != 7 {
		t.Errorf("--gpus 7 with GPU 0 in MIG mode: %q; want GPUs 1-7 and no capability", out)
	}

	// Removing the holders frees the MIG devices; MIG off gives GPU 0
	// back whole.
	e.ok("rm", "-f", a, b)
	for _, d := range e.gpus().Devices[0].MIGDevices {
		if d.Container != "" {
			t.Errorf("MIG device %s still held by %s", d.UUID, d.Container)
		}
	}
	if out := e.ok("gpu", "simulate", g0, "--mig", "off"); !strings.Contains(out, "SIMULATED MIG mode off") {
		t.Errorf("--mig off: %q", out)
	}
	if d := e.gpus().Devices[0]; d.MIG || len(d.MIGDevices) != 0 {
		t.Errorf("GPU 0 after --mig off: MIG %v, %d MIG devices", d.MIG, len(d.MIGDevices))
	}
	out = e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", "8", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES")
	if strings.TrimSpace(out) != "0,1,2,3,4,5,6,7" {
		t.Errorf("--gpus 8 after --mig off: %q", out)
	}
	r = e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", "mig-1g.5gb", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "no GPU is in MIG mode") {
		t.Errorf("mig-1g.5gb with MIG off: %s", r)
	}
}

// TestGPUMIGHealth: an XID in one MIG device (the event names its GPU and
// compute instances) takes only that MIG device out of service; one of the
// whole GPU takes all of its MIG devices out; both come back once their
// probes pass.
func TestGPUMIGHealth(t *testing.T) {
	e := gpuEnv(t)
	e.ok("gpu", "simulate", "0", "--mig", "1g.5gb,1g.5gb,2g.10gb,3g.20gb")
	l := e.gpus()
	g0, mig := l.Devices[0].UUID, l.Devices[0].MIGDevices
	next, stop := startGPUWatch(t, e)
	out := e.ok("gpu", "simulate", mig[1].UUID, "--xid", "94", "--fault", "contained ECC error")
	if want := fmt.Sprintf("gpu 0:1 %s: SIMULATED XID 94 sent", mig[1].UUID); strings.TrimSpace(out) != want {
		t.Errorf("gpu simulate MIG-…: %q, want %q", out, want)
	}
	if got, want := next(), fmt.Sprintf("gpu 0 %s unhealthy: XID 94", mig[1].UUID); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	health := func() []bool {
		var out []bool
		d := e.gpus().Devices[0]
		out = append(out, d.Healthy)
		for _, m := range d.MIGDevices {
			out = append(out, m.Healthy)
		}
		return out
	}
	if diff := cmp.Diff([]bool{true, true, false, true, true}, health()); diff != "" {
		t.Errorf("health of GPU 0 and its MIG devices (-want +got):\n%s", diff)
	}
	r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", "mig-1g.5gb:2", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "1 of this host's 2 1g.5gb MIG devices are free and healthy (0 held by containers, 1 unhealthy)") {
		t.Errorf("two 1g.5gb with one unhealthy: %s", r)
	}
	if out := e.ok("run", "--rm", "--rootfs", e.rootfs, "--gpus", "mig-1g.5gb", "sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"); strings.TrimSpace(out) != mig[0].UUID {
		t.Errorf("the healthy 1g.5gb: got %q, want %s", out, mig[0].UUID)
	}

	// An error of the whole GPU: every MIG device is out.
	e.ok("gpu", "simulate", "0", "--xid", "79", "--fault", "fallen off the bus")
	if got, want := next(), fmt.Sprintf("gpu 0 %s unhealthy: XID 79", g0); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if diff := cmp.Diff([]bool{false, false, false, false, false}, health()); diff != "" {
		t.Errorf("health after the GPU's XID (-want +got):\n%s", diff)
	}
	if d := e.gpus().Devices[0]; d.MIGDevices[0].Unhealthy == nil || d.MIGDevices[0].Unhealthy.Reason != "GPU 0: XID 79" ||
		d.MIGDevices[1].Unhealthy == nil || d.MIGDevices[1].Unhealthy.Reason != "XID 94" {
		t.Errorf("gpu ls reasons: %+v %+v", d.MIGDevices[0].Unhealthy, d.MIGDevices[1].Unhealthy)
	}
	r = e.caisson("run", "--rm", "--rootfs", e.rootfs, "--gpus", mig[3].UUID, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "unhealthy: GPU 0: XID 79") {
		t.Errorf("a MIG device of the unhealthy GPU: %s", r)
	}

	e.ok("gpu", "simulate", "0", "--recover")
	e.ok("gpu", "simulate", mig[1].UUID, "--recover")
	got := []string{next(), next()}
	slices.Sort(got)
	want := []string{fmt.Sprintf("gpu 0 %s healthy again: probe passed", g0), fmt.Sprintf("gpu 0 %s healthy again: probe passed", mig[1].UUID)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recovery (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{true, true, true, true, true}, health()); diff != "" {
		t.Errorf("health after recovery (-want +got):\n%s", diff)
	}
	stop()
}

// startGPUWatch starts `caisson gpu watch` with a short re-probe interval
// and checks its first line. next returns the next line that is not a
// repeated probe failure; stop ends the watch with SIGTERM and checks that
// it exits cleanly. The watch is killed at the end of the test if stop was
// not called.
func startGPUWatch(t *testing.T, e *env) (next func() string, stop func()) {
	t.Helper()
	watch := e.cmd("gpu", "watch", "--reprobe-interval", "20ms")
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = watch.Process.Kill()
			_ = watch.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	next = func() string {
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
	stop = func() {
		t.Helper()
		if err := watch.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		stopped = true
		if err := watch.Wait(); err != nil {
			t.Errorf("gpu watch after SIGTERM: %v", err)
		}
	}
	return next, stop
}
