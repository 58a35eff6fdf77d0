package manager

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/gpu/manager/managertest"
	"github.com/caisson/caisson/internal/testutil"
)

func dgxMIG() *gpu.Inventory { return managertest.DGXA100MIG() }

// migUUID is MIG device j of GPU i of dgxMIG.
func migUUID(i, j int) string { return managertest.MIGUUID(i, j) }

// granted lists a grant as "GPU" indexes and "GPU:MIG" indexes.
func granted(g *Grant) []string {
	var out []string
	for _, d := range g.Devices {
		if !d.MIG {
			out = append(out, itoa(d.Index))
			continue
		}
		for _, m := range d.MIGDevices {
			out = append(out, itoa(d.Index)+":"+itoa(m.Index))
		}
	}
	return out
}

func itoa(i int) string { return string(rune('0' + i)) }

// TestAllocateMIGWhole: a GPU in MIG mode is never given whole: counts and
// all take the others, and naming it says to ask for its MIG devices.
func TestAllocateMIGWhole(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost(t, dgxMIG())
	m := h.manager(t)
	inv := dgxMIG()
	before := h.stateOrEmpty(t)
	for _, c := range []struct {
		req  api.GPURequest
		want error
		msg  string
	}{
		{api.GPURequest{Count: 7}, api.ErrInvalid, "this host has 6 GPUs that are not in MIG mode (GPUs 0, 1 are in MIG mode: ask for MIG devices by profile, mig-PROFILE)"},
		{api.GPURequest{UUIDs: []string{inv.Devices[0].UUID}}, api.ErrInvalid, "GPU 0 (" + inv.Devices[0].UUID + ") is in MIG mode, so it is not given whole; ask for its MIG devices"},
		{api.GPURequest{UUIDs: []string{inv.Devices[2].UUID, inv.Devices[1].UUID}}, api.ErrInvalid, "GPU 1"},
	} {
		_, err := m.Allocate(ctx, "bad", c.req)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Allocate(%v) = %v, want %v with %q", c.req, err, c.want, c.msg)
		}
		aboutGPUs(t, c.req, err)
	}
	if diff := cmp.Diff(before, h.stateOrEmpty(t)); diff != "" {
		t.Errorf("failed requests changed the allocations (-before +after):\n%s", diff)
	}
	g, err := m.Allocate(ctx, "c1", api.GPURequest{All: true})
	must(t, err)
	if diff := cmp.Diff([]string{"2", "3", "4", "5", "6", "7"}, granted(g)); diff != "" {
		t.Errorf("--gpus all (-want +got):\n%s", diff)
	}
	if g.MIG() {
		t.Error("a grant of whole GPUs says MIG")
	}
	// The MIG devices are still free.
	if _, err := m.Allocate(ctx, "c2", api.GPURequest{MIGProfile: "1g.10gb", Count: 3}); err != nil {
		t.Errorf("MIG devices after all whole GPUs were given: %v", err)
	}
	if _, err := m.Allocate(ctx, "c3", api.GPURequest{Count: 1}); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "0 of this host's 6 GPUs are free") {
		t.Errorf("a seventh GPU: %v", err)
	}
}

// TestAllocateMIG: MIG devices by profile (packed onto GPUs already partly
// held) and by UUID; the devices of one GPU go to different containers;
// bad requests change nothing.
func TestAllocateMIG(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost(t, dgxMIG())
	m := h.manager(t)

	// Nothing held: index order, GPU 0 first.
	g, err := m.Allocate(ctx, "c1", api.GPURequest{MIGProfile: "1c.3g.40gb", Count: 1})
	must(t, err)
	if diff := cmp.Diff([]string{"1:1"}, granted(g)); diff != "" {
		t.Errorf("first 1c.3g.40gb (-want +got):\n%s", diff)
	}
	if !g.MIG() || g.Devices[0].UUID != dgxMIG().Devices[1].UUID || len(g.Devices[0].MIGDevices) != 1 || g.UUIDs()[0] != migUUID(1, 1) {
		t.Errorf("grant %+v, UUIDs %v", g.Devices, g.UUIDs())
	}
	// GPU 1 is now partly held: a 1g.10gb goes there, not to GPU 0, which
	// stays untouched.
	g, err = m.Allocate(ctx, "c2", api.GPURequest{MIGProfile: "1g.10gb", Count: 1})
	must(t, err)
	if diff := cmp.Diff([]string{"1:0"}, granted(g)); diff != "" {
		t.Errorf("1g.10gb packed (-want +got):\n%s", diff)
	}
	// Two at once: GPU 1 has none left, so GPU 0's two.
	g, err = m.Allocate(ctx, "c3", api.GPURequest{MIGProfile: "1g.10gb", Count: 2})
	must(t, err)
	if diff := cmp.Diff([]string{"0:0", "0:1"}, granted(g)); diff != "" {
		t.Errorf("two 1g.10gb (-want +got):\n%s", diff)
	}
	// By UUID, mixed with a whole GPU.
	g, err = m.Allocate(ctx, "c4", api.GPURequest{UUIDs: []string{migUUID(0, 3), dgxMIG().Devices[5].UUID}})
	must(t, err)
	if diff := cmp.Diff([]string{"0:3", "5"}, granted(g)); diff != "" {
		t.Errorf("by UUID (-want +got):\n%s", diff)
	}
	// The same container asking again gets what it holds.
	again, err := m.Allocate(ctx, "c3", api.GPURequest{MIGProfile: "1g.10gb", Count: 2})
	must(t, err)
	if diff := cmp.Diff([]string{"0:0", "0:1"}, granted(again)); diff != "" {
		t.Errorf("c3 again (-want +got):\n%s", diff)
	}

	before := h.state(t)
	for _, c := range []struct {
		req  api.GPURequest
		want error
		msg  string
	}{
		{api.GPURequest{MIGProfile: "1g.10gb", Count: 1}, api.ErrUnavailable, "0 of this host's 3 1g.10gb MIG devices are free and healthy (3 held by containers, 0 unhealthy)"},
		{api.GPURequest{MIGProfile: "1c.3g.40gb", Count: 3}, api.ErrUnavailable, "2 of this host's 3 1c.3g.40gb MIG devices are free"},
		{api.GPURequest{MIGProfile: "2g.20gb", Count: 2}, api.ErrInvalid, "this host has 1 MIG devices of profile 2g.20gb"},
		{api.GPURequest{MIGProfile: "1g.5gb", Count: 1}, api.ErrInvalid, "no MIG device of profile 1g.5gb (it has 1g.10gb ×3, 2g.20gb, 3g.40gb, 1c.3g.40gb ×3"},
		{api.GPURequest{UUIDs: []string{migUUID(1, 1)}}, api.ErrUnavailable, "MIG device 1:1 (" + migUUID(1, 1) + ") is held by container c1"},
		{api.GPURequest{UUIDs: []string{migUUID(1, 2), migUUID(0, 0)}}, api.ErrUnavailable, "held by container c3"},
		{api.GPURequest{UUIDs: []string{"MIG-00000000-0000-0000-0000-000000000000"}}, api.ErrNotFound, "no MIG device MIG-00000000-0000-0000-0000-000000000000 on this host"},
	} {
		_, err := m.Allocate(ctx, "bad", c.req)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Allocate(%v) = %v, want %v with %q", c.req, err, c.want, c.msg)
		}
		aboutGPUs(t, c.req, err)
	}
	if diff := cmp.Diff(before, h.state(t)); diff != "" {
		t.Errorf("failed requests changed the allocations (-before +after):\n%s", diff)
	}

	// Allocations key MIG devices by UUID: one GPU's devices, several
	// containers.
	want := map[string]string{
		migUUID(1, 1): "c1", migUUID(1, 0): "c2", migUUID(0, 0): "c3", migUUID(0, 1): "c3",
		migUUID(0, 3): "c4", dgxMIG().Devices[5].UUID: "c4",
	}
	if diff := cmp.Diff(want, h.state(t)); diff != "" {
		t.Errorf("allocations (-want +got):\n%s", diff)
	}
	// Held and List show the holders.
	held, err := m.Held(ctx, "c4")
	must(t, err)
	if len(held) != 2 || !held[0].MIG || len(held[0].MIGDevices) != 1 || held[0].MIGDevices[0].UUID != migUUID(0, 3) || held[1].Index != 5 {
		t.Errorf("Held(c4) = %+v", held)
	}
	_, list, err := m.List(ctx, false)
	must(t, err)
	if list[0].Container != "" || len(list[0].MIGDevices) != 4 || list[0].MIGDevices[3].Container != "c4" || list[0].MIGDevices[2].Container != "" || !list[0].MIGDevices[2].Healthy {
		t.Errorf("List GPU 0: %+v", list[0])
	}
	b, err := json.Marshal(list[1])
	must(t, err)
	if !strings.Contains(string(b), `"mig_devices":[{"uuid":"`+migUUID(1, 0)+`"`) || !strings.Contains(string(b), `"container":"c2"`) {
		t.Errorf("gpu ls JSON of GPU 1: %s", b)
	}
	// Release frees what a container held, and only that.
	must(t, m.Release("c3"))
	g, err = m.Allocate(ctx, "c5", api.GPURequest{MIGProfile: "1g.10gb", Count: 2})
	must(t, err)
	if diff := cmp.Diff([]string{"0:0", "0:1"}, granted(g)); diff != "" {
		t.Errorf("after release (-want +got):\n%s", diff)
	}
}

// TestMIGHealth: a GPU's mark takes its MIG devices out too; a MIG
// device's own mark takes only it.
func TestMIGHealth(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost(t, dgxMIG())
	m := h.manager(t)
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	_, err := m.MarkUnhealthy(dgxMIG().Devices[0].UUID, "XID 79", now)
	must(t, err)
	_, err = m.MarkUnhealthy(migUUID(1, 2), "XID 94", now)
	must(t, err)
	if _, err := m.Allocate(ctx, "c1", api.GPURequest{UUIDs: []string{migUUID(0, 2)}}); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "unhealthy: GPU 0: XID 79") {
		t.Errorf("a MIG device of an unhealthy GPU: %v", err)
	}
	if _, err := m.Allocate(ctx, "c1", api.GPURequest{MIGProfile: "1c.3g.40gb", Count: 3}); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "(0 held by containers, 1 unhealthy)") {
		t.Errorf("three 1c.3g.40gb, one unhealthy: %v", err)
	}
	g, err := m.Allocate(ctx, "c1", api.GPURequest{MIGProfile: "1g.10gb", Count: 1})
	must(t, err)
	if diff := cmp.Diff([]string{"1:0"}, granted(g)); diff != "" {
		t.Errorf("the one healthy 1g.10gb (-want +got):\n%s", diff)
	}
	_, list, err := m.List(ctx, false)
	must(t, err)
	for j, ms := range list[0].MIGDevices {
		if ms.Healthy || ms.Unhealthy == nil || ms.Unhealthy.Reason != "GPU 0: XID 79" {
			t.Errorf("GPU 0 MIG device %d: %+v, want unhealthy with its GPU", j, ms)
		}
	}
	for j, ms := range list[1].MIGDevices {
		if ms.Healthy != (j != 2) {
			t.Errorf("GPU 1 MIG device %d: healthy %v", j, ms.Healthy)
		}
	}
	if !list[1].Healthy {
		t.Error("GPU 1 is unhealthy for its MIG device's error")
	}
	changed, err := m.MarkHealthy(dgxMIG().Devices[0].UUID)
	must(t, err)
	if !changed {
		t.Error("MarkHealthy of GPU 0 changed nothing")
	}
	if _, err := m.Allocate(ctx, "c2", api.GPURequest{UUIDs: []string{migUUID(0, 2)}}); err != nil {
		t.Errorf("after GPU 0 recovered: %v", err)
	}
}

// TestWatchMIG: an event that names a GPU instance marks its MIG devices
// (only one compute instance's when it names one), a whole-GPU event marks
// the GPU, one for an instance that does not exist marks nothing, and
// instance IDs on a GPU not in MIG mode are ignored.
func TestWatchMIG(t *testing.T) {
	h := newFakeHost(t, dgxMIG())
	inv := dgxMIG()
	u32 := func(v uint32) *uint32 { return &v }
	lines := []gpu.Event{
		{Type: gpu.EventReady},
		{UUID: inv.Devices[1].UUID, Type: gpu.EventXID, XID: 94, GPUInstance: u32(1), ComputeInstance: u32(1)},
		{UUID: inv.Devices[1].UUID, Type: gpu.EventXID, XID: 43, GPUInstance: u32(7), ComputeInstance: u32(0)}, // an application's
		{UUID: inv.Devices[0].UUID, Type: gpu.EventXID, XID: 95, GPUInstance: u32(3)},
		{UUID: inv.Devices[1].UUID, Type: gpu.EventXID, XID: 95, GPUInstance: u32(9)}, // no such instance
		{UUID: inv.Devices[3].UUID, Type: gpu.EventDBE},
		// Instance IDs on a GPU not in MIG mode: the GPU.
		{UUID: inv.Devices[4].UUID, Type: gpu.EventXID, XID: 79, GPUInstance: u32(0), ComputeInstance: u32(0)},
	}
	var b strings.Builder
	for _, ev := range lines {
		j, err := json.Marshal(ev)
		must(t, err)
		b.Write(append(j, '\n'))
	}
	must(t, os.WriteFile(filepath.Join(h.Dir, "events.out"), []byte(b.String()), 0o644))
	// Every probe fails: the marks stay.
	for _, u := range []string{migUUID(1, 2), migUUID(0, 2), inv.Devices[3].UUID, inv.Devices[4].UUID} {
		must(t, os.WriteFile(filepath.Join(h.Dir, "fault-"+u), nil, 0o644))
	}
	m := h.manager(t)
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan Change, 100)
	done := make(chan error, 1)
	go func() {
		done <- m.Watch(ctx, time.Hour, nil, func(c Change) { changes <- c })
	}()
	got := map[string]int{}
	for len(got) < 4 {
		c := <-changes
		if c.Event == nil {
			continue
		}
		got[c.UUID+" "+c.Reason] = c.Index
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
	want := map[string]int{migUUID(1, 2) + " XID 94": 1, migUUID(0, 2) + " XID 95": 0, inv.Devices[3].UUID + " double-bit ECC error": 3, inv.Devices[4].UUID + " XID 79": 4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	marks, err := m.Unhealthy()
	must(t, err)
	var marked []string
	for u := range marks {
		marked = append(marked, u)
	}
	if len(marks) != 4 {
		t.Errorf("marked %v, want the two MIG devices and GPUs 3 and 4", marked)
	}
}

// TestSetMIG: the layout of a simulated GPU is written where the helper
// reads it and the GPUs are discovered again; a GPU held by a container is
// refused, a layout the helper refuses leaves the old one in place.
func TestSetMIG(t *testing.T) {
	testutil.RequiresRoot(t) // a simulated machine's fake nodes
	ctx := context.Background()
	sim := dgxMIG()
	sim.Backend, sim.Simulated = gpu.BackendDGXA100, true
	h := newFakeHost(t, sim)
	m, err := New(Config{Backend: gpu.BackendDGXA100, Dir: filepath.Join(h.Dir, "state"), Helper: h.Helper, ProcFS: h.ProcFS,
		SysFS: filepath.Join(h.Dir, "sys"), DriverRoot: filepath.Join(h.Dir, "driver")})
	must(t, err)
	inv := dgxMIG()
	layoutFile := filepath.Join(h.Dir, "state", "sim", gpu.SimMIGFile)
	layout := func() gpu.MIGLayout {
		t.Helper()
		b, err := os.ReadFile(layoutFile)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		must(t, err)
		var l gpu.MIGLayout
		must(t, json.Unmarshal(b, &l))
		return l
	}

	if _, err := m.Allocate(ctx, "c1", api.GPURequest{UUIDs: []string{migUUID(1, 3)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Allocate(ctx, "c2", api.GPURequest{UUIDs: []string{inv.Devices[4].UUID}}); err != nil {
		t.Fatal(err)
	}
	_, err = m.MarkUnhealthy(migUUID(0, 1), "XID 94", time.Now())
	must(t, err)
	for _, i := range []int{1, 4} {
		if _, err := m.SetMIG(ctx, inv.Devices[i].UUID, []string{"7g.80gb"}); !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "held by container c") {
			t.Errorf("SetMIG of held GPU %d: %v, want api.ErrConflict naming the holder", i, err)
		}
	}
	if _, err := m.SetMIG(ctx, "GPU-nope", nil); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("SetMIG of an unknown GPU: %v", err)
	}
	if l := layout(); l != nil {
		t.Errorf("refused changes wrote %v", l)
	}

	calls := len(h.calls(t))
	d, err := m.SetMIG(ctx, inv.Devices[0].UUID, []string{"3g.40gb", "4g.40gb"})
	must(t, err)
	if diff := cmp.Diff(gpu.MIGLayout{inv.Devices[0].UUID: {"3g.40gb", "4g.40gb"}}, layout()); diff != "" {
		t.Errorf("mig.json (-want +got):\n%s", diff)
	}
	if d.UUID != inv.Devices[0].UUID || len(h.calls(t)) != calls+1 {
		t.Errorf("SetMIG returned %s after %d helper calls; want GPU 0 after one inventory", d.UUID, len(h.calls(t))-calls)
	}
	// The GPUs were discovered again: the helper's inventory, its MIG
	// devices' fake nodes, the CDI spec naming them.
	spec, err := os.ReadFile(filepath.Join(m.CDIDir(), "caisson-nvidia-gpu.json"))
	must(t, err)
	if !strings.Contains(string(spec), migUUID(0, 3)) || strings.Contains(string(spec), `"name": "`+inv.Devices[0].UUID) {
		t.Errorf("CDI spec does not name GPU 0's MIG devices, or names GPU 0 itself")
	}
	// mig-minors of a simulated machine: gpu0/gi2/ci0 is 3+2*9+1 = 22.
	if _, err := os.Stat(filepath.Join(m.DevRoot(), "nvidia-caps", "nvidia-cap22")); err != nil {
		t.Errorf("GPU 0's 3g.40gb has no capability node: %v", err)
	}

	// The helper refuses a layout: the old one stays.
	must(t, os.WriteFile(filepath.Join(h.Dir, "exit-inventory"), []byte("3\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(h.Dir, "stderr-inventory"), []byte("caisson-nvml: simulated GPU 0: MIG layout 4g.40gb,4g.40gb: holds at most 1: invalid argument\n"), 0o644))
	_, err = m.SetMIG(ctx, inv.Devices[0].UUID, []string{"4g.40gb", "4g.40gb"})
	if !errors.Is(err, api.ErrInvalid) || errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "holds at most 1") || strings.Contains(err.Error(), HelperName) {
		t.Errorf("refused layout: %v, want the helper's reason (alone) wrapping api.ErrInvalid", err)
	}
	if diff := cmp.Diff(gpu.MIGLayout{inv.Devices[0].UUID: {"3g.40gb", "4g.40gb"}}, layout()); diff != "" {
		t.Errorf("mig.json after a refused layout (-want +got):\n%s", diff)
	}
	// Any other failure of the helper is its being unavailable, said on
	// one line however many the helper printed.
	must(t, os.WriteFile(filepath.Join(h.Dir, "exit-inventory"), []byte("1\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(h.Dir, "stderr-inventory"), []byte("panic: oops\n\ngoroutine 1 [running]:\nmain.main()\n"), 0o644))
	if _, err := m.SetMIG(ctx, inv.Devices[0].UUID, nil); !errors.Is(err, api.ErrUnavailable) || strings.Contains(err.Error(), "\n") {
		t.Errorf("helper failing: %q, want one line wrapping api.ErrUnavailable", err)
	}
	must(t, os.Remove(filepath.Join(h.Dir, "exit-inventory")))

	// Off: the GPU leaves the layout, the file stays valid.
	_, err = m.SetMIG(ctx, inv.Devices[0].UUID, nil)
	must(t, err)
	if diff := cmp.Diff(gpu.MIGLayout{}, layout()); diff != "" {
		t.Errorf("mig.json after off (-want +got):\n%s", diff)
	}
	real, err := New(Config{Backend: gpu.BackendNVML, Dir: t.TempDir()})
	must(t, err)
	if _, err := real.SetMIG(ctx, inv.Devices[0].UUID, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("SetMIG with the nvml backend: %v, want api.ErrInvalid", err)
	}
}

// stateOrEmpty is the allocations, none before state.json exists.
func (h *fakeHost) stateOrEmpty(t *testing.T) map[string]string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(h.Dir, "state", "state.json")); errors.Is(err, os.ErrNotExist) {
		return map[string]string{}
	}
	return h.state(t)
}
