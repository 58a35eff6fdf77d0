//go:build cgo && linux

package nvml

import (
	"errors"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu/topology"
)

// sameLinks compares the links discovery found with the preset's.
func sameLinks(t *testing.T, name string, want, got *topology.Topology) {
	t.Helper()
	if diff := cmp.Diff(want.NVLinks, got.NVLinks); diff != "" {
		t.Errorf("%s NVLinks (-want +got):\n%s", name, diff)
	}
	if diff := cmp.Diff(want.PCIe, got.PCIe); diff != "" {
		t.Errorf("%s PCIe (-want +got):\n%s", name, diff)
	}
	for i := range want.Devices {
		if w, g := want.Devices[i], got.Devices[i]; w.NUMANode != g.NUMANode || w.CPULinks != g.CPULinks {
			t.Errorf("%s device %d: NUMA %d, CPU links %d; want %d, %d", name, i, g.NUMANode, g.CPULinks, w.NUMANode, w.CPULinks)
		}
	}
}

func TestDiscoverSimulated(t *testing.T) {
	for _, tc := range []struct {
		backend, model string
		memory         int64
		cc             string
		preset         *topology.Topology
	}{
		{BackendDGXA100, "Mock NVIDIA A100-SXM4-40GB", 40 << 30, "8.0", topology.DGXA100()},
		{BackendDGXH100, "NVIDIA H100 80GB HBM3", 80 << 30, "9.0", topology.DGXH100()},
		{BackendDGXB200, "NVIDIA B200 180GB HBM3e", 180 << 30, "10.0", topology.DGXB200()},
	} {
		inv, err := Discover(tc.backend, "")
		if err != nil {
			t.Fatalf("%s: %v", tc.backend, err)
		}
		if !inv.Simulated || inv.DriverVersion == "" || inv.CUDAVersion == "" || len(inv.Devices) != 8 || inv.Reason != "" {
			t.Fatalf("%s: %+v", tc.backend, inv)
		}
		seen := map[string]bool{}
		for i, d := range inv.Devices {
			if d.Index != i || d.Minor != i || !strings.HasPrefix(d.UUID, "GPU-") || seen[d.UUID] || seen[d.PCIBusID] || d.PCIBusID == "" {
				t.Errorf("%s device %d: %+v", tc.backend, i, d)
			}
			seen[d.UUID], seen[d.PCIBusID] = true, true
			if d.Model != tc.model || d.ComputeCapability != tc.cc || d.MemoryBytes != tc.memory {
				t.Errorf("%s device %d: model %q, cc %q, memory %d", tc.backend, i, d.Model, d.ComputeCapability, d.MemoryBytes)
			}
			// CPU affinity: the CPUs of the GPU's NUMA node, decoded from
			// NVML's mask (node 7's CPUs 112-127 are in its second word).
			var cpus []int
			for c := d.NUMANode * SimulatedCPUsPerNode; c < (d.NUMANode+1)*SimulatedCPUsPerNode; c++ {
				cpus = append(cpus, c)
			}
			if diff := cmp.Diff(cpus, d.CPUAffinity); diff != "" {
				t.Errorf("%s device %d CPU affinity (-want +got):\n%s", tc.backend, i, diff)
			}
		}
		sameLinks(t, tc.backend, tc.preset, inv.Topology)
		// The NVLink pair behind one PCIe switch, and only that pair.
		got, err := inv.Topology.Allocate([]int{0, 1, 2, 3, 4, 5, 6, 7}, 2)
		if err != nil || !cmp.Equal(got, []int{0, 1}) {
			t.Errorf("%s: --gpus 2 = %v, %v; want [0 1]", tc.backend, got, err)
		}
	}
}

// TestDirectLinks: machines without NVSwitch, their NVLinks found from
// each link's remote PCI address, and POWER9's links to its CPUs.
func TestDirectLinks(t *testing.T) {
	for name, preset := range map[string]*topology.Topology{"dgx1": topology.DGX1Volta(), "ac922": topology.AC922()} {
		srv, err := Simulate(dgxa100.NewWithGPUs(gpus.Multiple(len(preset.Devices), gpus.A100_SXM4_40GB)...), preset, false)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := discover(srv, "test", true)
		if err != nil {
			t.Fatal(err)
		}
		sameLinks(t, name, preset, inv.Topology)
	}
}

// TestMissingMethods: a device that implements nothing beyond identity
// (a mock's unset methods panic) is still listed, with what is unknown left
// out: no NUMA node, no NVLink, PCIe across sockets.
func TestMissingMethods(t *testing.T) {
	inv, err := discover(dgxa100.New(), "bare", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Devices) != 8 || inv.Devices[0].NUMANode != -1 || inv.Topology.NVLinks[0][1] != 0 || inv.Topology.PCIe[0][1] != topology.System {
		t.Errorf("bare mock: %+v %+v", inv.Devices[0], inv.Topology)
	}
}

// TestNoDriver: on a host without libnvidia-ml, zero GPUs and the reason;
// no NVML call after the failed Init (it would abort the process).
func TestNoDriver(t *testing.T) {
	inv, err := Discover(BackendNVML, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Devices) != 0 && inv.Reason == "" {
		t.Skipf("this host has NVIDIA GPUs: %d found", len(inv.Devices))
	}
	if len(inv.Devices) != 0 || !strings.Contains(inv.Reason, "NVML could not start") {
		t.Errorf("without a driver: %+v", inv)
	}
	if _, err := Discover("mock:dgx9000", ""); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("unknown backend: %v, want api.ErrInvalid", err)
	}
}
