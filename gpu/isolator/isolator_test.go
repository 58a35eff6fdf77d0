package isolator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu/manager"
	"github.com/caisson/caisson/gpu/manager/managertest"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/isolators/isolatorstest"
	"github.com/caisson/caisson/resources"
)

// newIso returns the isolator on a fake DGX A100 whose device nodes are in
// devRoot.
func newIso(t *testing.T, devRoot string) (*Isolator, *managertest.Host) {
	t.Helper()
	h := managertest.New(t, managertest.DGXA100())
	m, err := manager.New(manager.Config{Dir: filepath.Join(h.Dir, "state"), Helper: h.Helper, ProcFS: h.ProcFS,
		SysFS: filepath.Join(h.Dir, "sys"), DriverRoot: filepath.Join(h.Dir, "driver"), DevRoot: devRoot})
	if err != nil {
		t.Fatal(err)
	}
	return newTestIso(t, m), h
}

// oneNodeHost is a host with CPUs 0-1 on NUMA node 0, as this project's
// development machine.
func oneNodeHost() *resources.CPUSet {
	return &resources.CPUSet{CPUs: []int{0, 1}, Mems: []int{0},
		Nodes: []api.NUMANode{{ID: 0, CPUs: []int{0, 1}, MemoryBytes: 8 << 30}}}
}

// newTestIso is the isolator over m with the best-effort policy on
// oneNodeHost, whatever the machine running the test is.
func newTestIso(t *testing.T, m *manager.Manager) *Isolator {
	t.Helper()
	iso, err := New(m, Config{})
	if err != nil {
		t.Fatal(err)
	}
	iso.hostCPUSet = func(context.Context) (*resources.CPUSet, error) { return oneNodeHost(), nil }
	return iso
}

// fakeNodes makes /dev/nvidia0..7 (195:N) in a temp dir.
func fakeNodes(t *testing.T) string {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	for i := range 8 {
		if err := unix.Mknod(filepath.Join(dir, "nvidia"+strconv.Itoa(i)), unix.S_IFCHR|0o666, int(unix.Mkdev(195, uint32(i)))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func prepare(iso *Isolator, id string, gpus *api.GPURequest) (*isolators.PrepareResponse, error) {
	resp := &isolators.PrepareResponse{}
	err := iso.Prepare(context.Background(), &isolators.PrepareRequest{ContainerID: id, Spec: api.ContainerSpec{GPUs: gpus}}, resp)
	return resp, err
}

func TestPrepare(t *testing.T) {
	iso, _ := newIso(t, fakeNodes(t))
	resp, err := prepare(iso, "c1", &api.GPURequest{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	paths := devicePaths(resp)
	want := []string{"/dev/nvidia-modeset", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("device nodes (-want +got):\n%s", diff)
	}
	var rules []string
	for _, r := range resp.DeviceRules {
		if !r.Allow || r.Major == nil || r.Minor == nil {
			t.Errorf("rule %+v is not an allow rule for one node", r)
			continue
		}
		rules = append(rules, r.Type+" "+itoa(*r.Major)+":"+itoa(*r.Minor)+" "+r.Access)
	}
	slices.Sort(rules)
	wantRules := []string{"c 195:0 rwm", "c 195:1 rwm", "c 195:254 rwm", "c 195:255 rwm", "c 237:0 rwm", "c 237:1 rwm"}
	if diff := cmp.Diff(wantRules, rules); diff != "" {
		t.Errorf("device rules (-want +got):\n%s", diff)
	}
	inv := managertest.DGXA100()
	env := map[string]string{}
	for _, e := range resp.Env {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	if env["NVIDIA_VISIBLE_DEVICES"] != inv.Devices[0].UUID+","+inv.Devices[1].UUID || env["CUDA_VISIBLE_DEVICES"] != "0,1" {
		t.Errorf("env %v", resp.Env)
	}
	if resp.Annotations[AnnotationNUMANodes] != "3" || resp.Annotations[AnnotationCPUs] != "48-49" || resp.Annotations[AnnotationUUIDs] != env["NVIDIA_VISIBLE_DEVICES"] {
		t.Errorf("annotations %v", resp.Annotations)
	}
	// Status and usage name the container's GPUs.
	var st isolators.StatusResponse
	if err := iso.Status(context.Background(), &isolators.StatusRequest{ContainerID: "c1"}, &st); err != nil || len(st.GPUs) != 2 || st.GPUs[1].UUID != inv.Devices[1].UUID {
		t.Errorf("status %+v, %v", st.GPUs, err)
	}
	var u api.Usage
	if err := iso.Usage(context.Background(), &isolators.UsageRequest{ContainerID: "c1"}, &u); err != nil || len(u.GPUs) != 2 || u.GPUs[1].UtilizationPercent == nil || *u.GPUs[1].UtilizationPercent != 42 || u.GPUs[1].Index != 1 {
		t.Errorf("usage %+v, %v", u.GPUs, err)
	}
	if err := iso.Usage(context.Background(), &isolators.UsageRequest{ContainerID: "c9", Spec: &specs.Spec{}}, &u); err != nil {
		t.Errorf("usage of a container without GPUs: %v", err)
	}
	// Another container gets other GPUs; cleanup frees them.
	resp2, err := prepare(iso, "c2", &api.GPURequest{Count: 6})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp2.Devices {
		if d.Path == "/dev/nvidia0" || d.Path == "/dev/nvidia1" {
			t.Errorf("c2 got %s, which c1 holds", d.Path)
		}
	}
	if _, err := prepare(iso, "c3", &api.GPURequest{Count: 1}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("a ninth GPU: %v", err)
	}
	if err := iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: "c2"}); err != nil {
		t.Fatal(err)
	}
	if err := iso.Recover(context.Background(), &isolators.RecoverRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := prepare(iso, "c3", &api.GPURequest{All: true}); err != nil {
		t.Errorf("all GPUs after cleanup and recovery: %v", err)
	}
}

// TestNoRequest: a container that asks for nothing gets no device and
// NVIDIA_VISIBLE_DEVICES=void, which overrides whatever its image says.
func TestNoRequest(t *testing.T) {
	iso, _ := newIso(t, t.TempDir())
	resp, err := prepare(iso, "c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &isolators.PrepareResponse{Env: []string{"NVIDIA_VISIBLE_DEVICES=void"}}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestMissingNode: a granted GPU whose node is gone fails the prepare and
// leaves nothing allocated.
func TestMissingNode(t *testing.T) {
	iso, h := newIso(t, t.TempDir())
	if _, err := prepare(iso, "c1", &api.GPURequest{Count: 1}); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "nvidia0 is missing") {
		t.Fatalf("prepare without nodes: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(h.Dir, "state", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "c1") {
		t.Errorf("allocation left after a failed prepare:\n%s", b)
	}
}

func TestConformance(t *testing.T) {
	dev := fakeNodes(t)
	isolatorstest.Run(t, func(t *testing.T) isolators.Isolator { iso, _ := newIso(t, dev); return iso },
		isolatorstest.Options{Request: func(t *testing.T, id string) *isolators.PrepareRequest {
			return &isolators.PrepareRequest{ContainerID: id, Spec: api.ContainerSpec{GPUs: &api.GPURequest{Count: 1}}}
		}, Holds: func(t *testing.T, iso isolators.Isolator, id string) bool {
			held, err := iso.(*Isolator).m.Held(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			return len(held) > 0
		}})
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// newMIGIso is newIso on a fake DGX A100 whose GPUs 0 and 1 are in MIG mode
// (managertest.DGXA100MIG), with the nodes of GPU 1's MIG devices.
func newMIGIso(t *testing.T) (*Isolator, *managertest.Host, string) {
	t.Helper()
	dev := fakeNodes(t)
	h := managertest.New(t, managertest.DGXA100MIG())
	// gpu1/gi1/access is 3 + 135 + 9 = 147, its compute instances 148-150;
	// gpu1/gi7/access 201, ci0 202.
	if err := os.MkdirAll(filepath.Join(dev, "nvidia-caps"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, minor := range []int{147, 148, 149, 150, 201, 202} {
		p := filepath.Join(dev, "nvidia-caps", "nvidia-cap"+strconv.Itoa(minor))
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(234, uint32(minor)))); err != nil {
			t.Fatal(err)
		}
	}
	m, err := manager.New(manager.Config{Dir: filepath.Join(h.Dir, "state"), Helper: h.Helper, ProcFS: h.ProcFS,
		SysFS: filepath.Join(h.Dir, "sys"), DriverRoot: filepath.Join(h.Dir, "driver"), DevRoot: dev})
	if err != nil {
		t.Fatal(err)
	}
	return newTestIso(t, m), h, dev
}

// TestPrepareMIG: a MIG device brings its GPU's node and its two access
// capabilities, nothing of its GPU's other instances; both visible-device
// variables list the MIG UUID.
func TestPrepareMIG(t *testing.T) {
	iso, _, _ := newMIGIso(t)
	resp, err := prepare(iso, "c1", &api.GPURequest{MIGProfile: "1c.3g.40gb", Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	paths := devicePaths(resp)
	want := []string{"/dev/nvidia-caps/nvidia-cap147", "/dev/nvidia-caps/nvidia-cap148", "/dev/nvidia-modeset", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia1", "/dev/nvidiactl"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("device nodes (-want +got):\n%s", diff)
	}
	var rules []string
	for _, r := range resp.DeviceRules {
		rules = append(rules, r.Type+" "+itoa(*r.Major)+":"+itoa(*r.Minor)+" "+r.Access)
	}
	slices.Sort(rules)
	wantRules := []string{"c 195:1 rwm", "c 195:254 rwm", "c 195:255 rwm", "c 234:147 rwm", "c 234:148 rwm", "c 237:0 rwm", "c 237:1 rwm"}
	if diff := cmp.Diff(wantRules, rules); diff != "" {
		t.Errorf("device rules (-want +got):\n%s", diff)
	}
	mig := managertest.MIGUUID(1, 1)
	env := map[string]string{}
	for _, e := range resp.Env {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	if env["NVIDIA_VISIBLE_DEVICES"] != mig || env["CUDA_VISIBLE_DEVICES"] != mig || resp.Annotations[AnnotationUUIDs] != mig {
		t.Errorf("env %v, annotations %v; want %s", resp.Env, resp.Annotations, mig)
	}
	var st isolators.StatusResponse
	if err := iso.Status(context.Background(), &isolators.StatusRequest{ContainerID: "c1"}, &st); err != nil || len(st.GPUs) != 1 ||
		st.GPUs[0].Index != 1 || !st.GPUs[0].MIG || len(st.GPUs[0].MIGDevices) != 1 || st.GPUs[0].MIGDevices[0].UUID != mig {
		t.Errorf("status %+v, %v", st.GPUs, err)
	}
	var u api.Usage
	if err := iso.Usage(context.Background(), &isolators.UsageRequest{ContainerID: "c1"}, &u); err != nil || len(u.GPUs) != 1 || u.GPUs[0].UUID != mig || u.GPUs[0].Index != 1 {
		t.Errorf("usage %+v, %v", u.GPUs, err)
	}

	// A second container gets another compute instance of the same GPU
	// instance: the shared GPU instance cap, its own compute instance cap.
	resp2, err := prepare(iso, "c2", &api.GPURequest{UUIDs: []string{managertest.MIGUUID(1, 2), managertest.MIGUUID(1, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	paths = paths[:0]
	for _, d := range resp2.Devices {
		if strings.HasPrefix(d.Path, "/dev/nvidia-caps/") {
			paths = append(paths, d.Path)
		}
	}
	slices.Sort(paths)
	if diff := cmp.Diff([]string{"/dev/nvidia-caps/nvidia-cap147", "/dev/nvidia-caps/nvidia-cap149", "/dev/nvidia-caps/nvidia-cap201", "/dev/nvidia-caps/nvidia-cap202"}, paths); diff != "" {
		t.Errorf("c2's caps (-want +got):\n%s", diff)
	}
	for _, e := range resp2.Env {
		if e == "CUDA_VISIBLE_DEVICES="+managertest.MIGUUID(1, 0)+","+managertest.MIGUUID(1, 2) {
			return
		}
	}
	t.Errorf("c2 env %v, want CUDA_VISIBLE_DEVICES with both MIG UUIDs in index order", resp2.Env)
}

// TestPrepareMIGNoCaps: a MIG device whose capability nodes are unknown or
// gone fails the prepare with the reason, and leaves nothing allocated.
func TestPrepareMIGNoCaps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, h *managertest.Host, dev string)
		want  error
		msg   string
	}{
		{"cap node removed", func(t *testing.T, _ *managertest.Host, dev string) {
			if err := os.Remove(filepath.Join(dev, "nvidia-caps", "nvidia-cap148")); err != nil {
				t.Fatal(err)
			}
		}, api.ErrNotFound, "nvidia-cap148 is missing"},
		{"no mig-minors", func(t *testing.T, h *managertest.Host, _ string) {
			if err := os.Remove(filepath.Join(h.ProcFS, "driver", "nvidia-caps", "mig-minors")); err != nil {
				t.Fatal(err)
			}
		}, api.ErrUnavailable, "capabilities of GPU instance 1 and compute instance 0 are unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iso, h, dev := newMIGIso(t)
			tc.spoil(t, h, dev)
			if _, err := prepare(iso, "c1", &api.GPURequest{MIGProfile: "1c.3g.40gb", Count: 1}); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("prepare: %v, want %v with %q", err, tc.want, tc.msg)
			}
			b, err := os.ReadFile(filepath.Join(h.Dir, "state", "state.json"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "c1") {
				t.Errorf("allocation left after a failed prepare:\n%s", b)
			}
		})
	}
}

// devicePaths lists the device nodes a prepare gives, in order.
func devicePaths(resp *isolators.PrepareResponse) []string {
	var paths []string
	for _, d := range resp.Devices {
		paths = append(paths, d.Path)
	}
	slices.Sort(paths)
	return paths
}

// The isolator owns the GPUs' and the MIG capabilities' nodes, not the
// shared control nodes.
func TestOwnsDevice(t *testing.T) {
	iso := &Isolator{}
	for path, want := range map[string]bool{
		"/dev/nvidia0": true, "/dev/nvidia7": true, "/dev/nvidia-caps/nvidia-cap21": true,
		"/dev/nvidiactl": false, "/dev/nvidia-uvm": false, "/dev/nvidia-modeset": false, "/dev/null": false, "/dev/nvidia0x": false,
	} {
		if got := iso.OwnsDevice(specs.LinuxDevice{Path: path}); got != want {
			t.Errorf("OwnsDevice(%s) = %v, want %v", path, got, want)
		}
	}
}
