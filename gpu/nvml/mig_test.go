//go:build cgo && linux

package nvml

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// writeLayout writes a simulation directory's MIG layout.
func writeLayout(t *testing.T, dir string, layout gpu.MIGLayout) {
	t.Helper()
	b, err := json.Marshal(layout)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SimMIGFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// migShape is what a test states of a MIG device: all but its UUID.
type migShape struct {
	GI, CI, SMs int
	Profile     string
	MemoryMB    int64
}

func shapes(migs []gpu.MIGDevice) []migShape {
	var out []migShape
	for _, m := range migs {
		out = append(out, migShape{GI: m.GPUInstance, CI: m.ComputeInstance, SMs: m.Multiprocessors, Profile: m.Profile, MemoryMB: m.MemoryBytes >> 20})
	}
	return out
}

// TestMIGSimulated: the layout of mig.json is made through NVML's GPU and
// compute instance calls and found again as NVML exposes MIG devices, with
// NVIDIA's profile names, the same UUIDs in every process, and GPUs not
// named left whole.
func TestMIGSimulated(t *testing.T) {
	for _, tc := range []struct {
		backend string
		layouts [][]string
		want    [][]migShape
	}{
		{
			BackendDGXA100,
			[][]string{
				{"1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"},
				// A GPU instance split into compute instances; one with
				// media extensions; one with 10 GB of a single slice.
				{"1c.3g.20gb", "1g.5gb+me", "1g.10gb"},
				{"7g.40gb"},
			},
			[][]migShape{
				{{0, 0, 14, "1g.5gb", 4864}, {1, 0, 14, "1g.5gb", 4864}, {2, 0, 28, "2g.10gb", 9856}, {3, 0, 42, "3g.20gb", 19968}},
				{{0, 0, 14, "1c.3g.20gb", 19968}, {0, 1, 14, "1c.3g.20gb", 19968}, {0, 2, 14, "1c.3g.20gb", 19968},
					{1, 0, 14, "1g.5gb+me", 4864}, {2, 0, 14, "1g.10gb", 9856}},
				{{0, 0, 98, "7g.40gb", 40192}},
			},
		},
		{
			BackendDGXH100,
			[][]string{
				{"1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"},
				{"4g.40gb", "1g.20gb", "1g.20gb", "1g.10gb"},
				{"7g.80gb"},
			},
			[][]migShape{
				{{0, 0, 16, "1g.10gb", 10240}, {1, 0, 16, "1g.10gb", 10240}, {2, 0, 32, "2g.20gb", 20480}, {3, 0, 48, "3g.40gb", 40960}},
				{{0, 0, 64, "4g.40gb", 40960}, {1, 0, 16, "1g.20gb", 20480}, {2, 0, 16, "1g.20gb", 20480}, {3, 0, 16, "1g.10gb", 10240}},
				{{0, 0, 112, "7g.80gb", 81920}},
			},
		},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			ids := uuids(t, tc.backend)
			dir := t.TempDir()
			layout := gpu.MIGLayout{}
			for i, l := range tc.layouts {
				layout[ids[i]] = l
			}
			writeLayout(t, dir, layout)
			inv, err := Discover(tc.backend, dir)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for i, d := range inv.Devices {
				if i >= len(tc.layouts) {
					if d.MIG || len(d.MIGDevices) != 0 {
						t.Errorf("GPU %d not in the layout: MIG %v, %d MIG devices", i, d.MIG, len(d.MIGDevices))
					}
					continue
				}
				if !d.MIG {
					t.Errorf("GPU %d: MIG mode off", i)
				}
				if diff := cmp.Diff(tc.want[i], shapes(d.MIGDevices)); diff != "" {
					t.Errorf("GPU %d MIG devices (-want +got):\n%s", i, diff)
				}
				for j, m := range d.MIGDevices {
					if !api.IsMIGUUID(m.UUID) || seen[m.UUID] || m.ParentUUID != d.UUID || m.Index != j {
						t.Errorf("GPU %d MIG device %d: %+v", i, j, m)
					}
					seen[m.UUID] = true
				}
			}
			// Another process applying the same layout sees the same
			// UUIDs.
			again, err := Discover(tc.backend, dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(inv.Devices, again.Devices); diff != "" {
				t.Errorf("a second discovery differs (-first +second):\n%s", diff)
			}
		})
	}
}

// TestMIGLayoutRefused: a layout the GPU cannot hold fails discovery (and
// every other call) with an error wrapping api.ErrInvalid that says why.
func TestMIGLayoutRefused(t *testing.T) {
	ids := uuids(t, BackendDGXA100)
	for _, tc := range []struct {
		name   string
		layout gpu.MIGLayout
		why    string
	}{
		{"eight 1g.5gb on an A100 that holds seven",
			gpu.MIGLayout{ids[0]: strings.Split("1g.5gb,1g.5gb,1g.5gb,1g.5gb,1g.5gb,1g.5gb,1g.5gb,1g.5gb", ",")}, "holds at most 7 GPU instances of profile 1g.5gb, the layout has 8"},
		{"unknown profile", gpu.MIGLayout{ids[1]: {"1g.6gb"}}, "has no MIG profile 1g.6gb (it has 1g.5gb, 1c.2g.10gb"},
		{"another machine's profile", gpu.MIGLayout{ids[1]: {"1g.10gb", "7g.80gb"}}, "no MIG profile 7g.80gb"},
		{"more compute slices than the GPU has", gpu.MIGLayout{ids[2]: {"4g.20gb", "3g.20gb", "1g.5gb"}}, "need 8 compute slices"},
		// Two 3g instances take all eight memory slices: no placement is
		// left for a 1g, though seven compute slices would do.
		{"no placement", gpu.MIGLayout{ids[3]: {"3g.20gb", "3g.20gb", "1g.5gb"}}, "cannot be placed"},
		{"unknown GPU", gpu.MIGLayout{"GPU-nope": {"1g.5gb"}}, "does not have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeLayout(t, dir, tc.layout)
			_, err := Discover(BackendDGXA100, dir)
			if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("Discover = %v, want an error wrapping api.ErrInvalid with %q", err, tc.why)
			}
			if _, err := Probe(BackendDGXA100, dir, ids[0]); !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Probe with the bad layout: %v, want api.ErrInvalid", err)
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SimMIGFile), []byte(`["1g.5gb"]`), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Discover(BackendDGXA100, dir); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), SimMIGFile) {
			t.Errorf("Discover = %v, want api.ErrInvalid naming %s", err, SimMIGFile)
		}
	})
}

// migServer is a simulated DGX A100 whose GPU 0 has two MIG devices.
func migServer(t *testing.T) (*server.Server, string) {
	t.Helper()
	ids := uuids(t, BackendDGXA100)
	dir := t.TempDir()
	writeLayout(t, dir, gpu.MIGLayout{ids[0]: {"1g.5gb+me", "3g.20gb"}})
	srv, err := MockWith(BackendDGXA100, dir)
	if err != nil {
		t.Fatal(err)
	}
	return srv, dir
}

// TestMIGGated: a driver that lacks MIG's functions (before R450) is never
// called for them, since a missing symbol would abort the helper; a mock
// without them (a panic) reads as not supported. The GPU is then listed
// without its MIG devices, or without MIG mode.
func TestMIGGated(t *testing.T) {
	for _, tc := range []struct {
		name        string
		missing     string
		mig         bool
		wantProfile []string
	}{
		{"every function", "", true, []string{"1g.5gb+me", "3g.20gb"}},
		{"no MIG mode", "nvmlDeviceGetMigMode", false, nil},
		{"no MIG devices", "nvmlDeviceGetMaxMigDeviceCount", true, nil},
		{"no instance IDs", "nvmlDeviceGetComputeInstanceId", true, nil},
		// Without the profile lookups the name comes from the attributes,
		// which do not say +me.
		{"no profile lookup", "nvmlDeviceGetGpuInstanceById", true, []string{"1g.5gb", "3g.20gb"}},
		{"no attributes either", "nvmlDeviceGetAttributes", true, []string{"1g.5gb+me", "3g.20gb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := migServer(t)
			srv.LookupSymbolFunc = func(name string) error {
				if name == tc.missing {
					return errors.New("undefined symbol")
				}
				return nil
			}
			d := srv.Devices[0].(*server.Device)
			// Calling a function the library lacks would abort the
			// process: fail the test instead.
			get := d.GetMaxMigDeviceCountFunc
			d.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) {
				if tc.missing == "nvmlDeviceGetMaxMigDeviceCount" || tc.missing == "nvmlDeviceGetMigMode" {
					t.Error("GetMaxMigDeviceCount called although the driver lacks it")
				}
				return get()
			}
			inv, err := discover(srv, BackendDGXA100, true)
			if err != nil {
				t.Fatal(err)
			}
			g := inv.Devices[0]
			var profiles []string
			for _, m := range g.MIGDevices {
				profiles = append(profiles, m.Profile)
			}
			if g.MIG != tc.mig || !cmp.Equal(profiles, tc.wantProfile) {
				t.Errorf("MIG %v, profiles %q; want %v, %q", g.MIG, profiles, tc.mig, tc.wantProfile)
			}
		})
	}

	t.Run("a mock without MIG device handles", func(t *testing.T) {
		srv := dgxa100.New() // go-nvml's own: no GetMaxMigDeviceCount
		d := srv.Devices[0].(*server.Device)
		d.SetMigMode(gonvml.DEVICE_MIG_ENABLE)
		inv, err := discover(srv, "bare", true)
		if err != nil {
			t.Fatal(err)
		}
		if !inv.Devices[0].MIG || len(inv.Devices[0].MIGDevices) != 0 || inv.Devices[1].MIG {
			t.Errorf("bare mock in MIG mode: %+v %+v", inv.Devices[0], inv.Devices[1])
		}
	})
}

// TestMIGProbeStats: a MIG device's UUID finds its handle: it is probed
// (with its GPU's checks) and sampled (its own memory); a fault on it or on
// its GPU makes it unfit.
func TestMIGProbeStats(t *testing.T) {
	ids := uuids(t, BackendDGXA100)
	dir := t.TempDir()
	writeLayout(t, dir, gpu.MIGLayout{ids[0]: {"1g.5gb", "1g.5gb"}, ids[1]: {"7g.40gb"}})
	inv, err := Discover(BackendDGXA100, dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := inv.Devices[0].MIGDevices[0].UUID, inv.Devices[0].MIGDevices[1].UUID, inv.Devices[1].MIGDevices[0].UUID
	st, err := Stats(BackendDGXA100, dir, []string{b})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 1 || st.Devices[0].UUID != b || st.Devices[0].MemoryTotalBytes == nil || *st.Devices[0].MemoryTotalBytes != 4864<<20 {
		t.Errorf("stats of a MIG device: %+v", st.Devices)
	}
	writeFaults(t, dir, map[string]string{a: "ECC error in its slice", ids[1]: "fallen off the bus"})
	for uuid, want := range map[string]bool{a: false, b: true, c: false} {
		p, err := Probe(BackendDGXA100, dir, uuid)
		if err != nil {
			t.Fatal(err)
		}
		if p.OK != want || p.OK == (p.Reason != "") {
			t.Errorf("probe %s: %+v, want ok %v", uuid, p, want)
		}
	}
	if p, err := Probe(BackendDGXA100, dir, a); err != nil || !strings.Contains(p.Reason, "ECC error in its slice") {
		t.Errorf("probe of the faulted MIG device: %+v, %v; want the fault named", p, err)
	}
}

// TestMIGEvents: an event in a MIG device carries its GPU and compute
// instance IDs (NVML's GI/CI filter); one of the whole GPU carries none.
func TestMIGEvents(t *testing.T) {
	ids := uuids(t, BackendDGXA100)
	dir := t.TempDir()
	writeLayout(t, dir, gpu.MIGLayout{ids[0]: {"1g.5gb", "3g.20gb"}})
	events, stop := watchSim(t, dir)
	gi, ci := uint32(1), uint32(0)
	appendEvents(t, dir,
		eventLine(t, gpu.Event{UUID: ids[0], Type: gpu.EventXID, XID: 94, GPUInstance: &gi, ComputeInstance: &ci}),
		eventLine(t, gpu.Event{UUID: ids[0], Type: gpu.EventXID, XID: 95, GPUInstance: &gi}),
		eventLine(t, gpu.Event{UUID: ids[0], Type: gpu.EventXID, XID: 79}),
	)
	want := []gpu.Event{
		{UUID: ids[0], Type: gpu.EventXID, XID: 94, GPUInstance: &gi, ComputeInstance: &ci},
		{UUID: ids[0], Type: gpu.EventXID, XID: 95, GPUInstance: &gi},
		{UUID: ids[0], Type: gpu.EventXID, XID: 79},
	}
	var got []gpu.Event
	for range want {
		got = append(got, <-events)
	}
	if err := stop(); err != nil {
		t.Errorf("watch after cancel: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(gpu.Event{}, "Time")); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestProfileName: go-nvlib's names, from slice counts, attributes and the
// instance's share of the GPU's memory.
func TestProfileName(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		c, g        int
		total, mbs  uint64
		plus, minus []string
		want        string
	}{
		{1, 1, 40 * gib, 4864, nil, nil, "1g.5gb"},
		{1, 1, 40 * gib, 4864, []string{"me"}, nil, "1g.5gb+me"},
		{1, 3, 40 * gib, 19968, nil, nil, "1c.3g.20gb"},
		{7, 7, 40 * gib, 40192, nil, nil, "7g.40gb"},
		{1, 1, 80 * gib, 10240, nil, nil, "1g.10gb"},
		{1, 1, 80 * gib, 20480, nil, []string{"me"}, "1g.20gb-me"},
		{3, 3, 180 * gib, 92160, nil, nil, "3g.90gb"},
		{1, 1, 141 * gib, 16384, []string{"me.all"}, nil, "1g.18gb+me.all"},
	} {
		if got := profileName(tc.c, tc.g, migMemoryGB(tc.total, tc.mbs), tc.plus, tc.minus); got != tc.want {
			t.Errorf("profile of %dc %dg %d MB of %d GiB: %q, want %q", tc.c, tc.g, tc.mbs, tc.total/gib, got, tc.want)
		}
		if err := api.CheckMIGProfile(tc.want); err != nil {
			t.Errorf("%s is not a profile --gpus takes: %v", tc.want, err)
		}
	}
}
