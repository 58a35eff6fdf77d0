package procfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// fixture writes a /proc and /sys tree (the kernel's PCI names hold colons,
// which module files may not, so the trees are made here).
func fixture(t *testing.T, files map[string]string) (proc, sys string) {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "proc"), filepath.Join(dir, "sys")
}

func information(model, uuid, bus string, minor string) string {
	return "Model: \t\t " + model + "\nIRQ:   \t\t 0\nGPU UUID: \t " + uuid + "\nVideo BIOS: \t 92.00.36.00.02\nBus Type: \t PCIe\n" +
		"DMA Size: \t 47 bits\nDMA Mask: \t 0x7fffffffffff\nBus Location: \t " + bus + "\nDevice Minor: \t " + minor + "\nGPU Excluded:\t No\n"
}

func TestRead(t *testing.T) {
	const model = "NVIDIA A100-SXM4-80GB"
	files := map[string]string{
		"proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.2.0\n",
	}
	for _, g := range []struct{ bus, minor, uuid, numa string }{
		{"0000:b7:00.0", "3", "GPU-2a7c8b1e-4f5d-4c3e-9a1b-3c2d1e0f9a8b", "1"},
		{"0000:07:00.0", "0", "GPU-9f0e1d2c-3b4a-5c6d-7e8f-9a0b1c2d3e4f", "0"},
		{"0000:0f:00.0", "1", "GPU-11111111-2222-3333-4444-555555555555", "0"},
	} {
		files["proc/driver/nvidia/gpus/"+g.bus+"/information"] = information(model, g.uuid, g.bus, g.minor)
		files["sys/bus/pci/devices/"+g.bus+"/numa_node"] = g.numa + "\n"
	}
	// The kernel's local_cpulist: the CPUs nearest the device.
	files["sys/bus/pci/devices/0000:b7:00.0/local_cpulist"] = "16-31,48-63\n"
	proc, sys := fixture(t, files)
	d, err := Read(proc, sys)
	if err != nil {
		t.Fatal(err)
	}
	want := &Driver{Version: "550.54.15", GPUs: []api.GPU{
		{UUID: "GPU-9f0e1d2c-3b4a-5c6d-7e8f-9a0b1c2d3e4f", Index: 0, Minor: 0, Model: "NVIDIA A100-SXM4-80GB", PCIBusID: "0000:07:00.0", NUMANode: 0},
		{UUID: "GPU-11111111-2222-3333-4444-555555555555", Index: 1, Minor: 1, Model: "NVIDIA A100-SXM4-80GB", PCIBusID: "0000:0f:00.0", NUMANode: 0},
		{UUID: "GPU-2a7c8b1e-4f5d-4c3e-9a1b-3c2d1e0f9a8b", Index: 2, Minor: 3, Model: "NVIDIA A100-SXM4-80GB", PCIBusID: "0000:b7:00.0", NUMANode: 1,
			CPUAffinity: []int{16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63}},
	}}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	if gs, err := (Source{proc, sys}).GPUs(context.Background()); err != nil || len(gs) != 3 {
		t.Errorf("Source.GPUs = %v, %v", gs, err)
	}
	proc, sys = fixture(t, map[string]string{"proc/cpuinfo": ""})
	if _, err := Read(proc, sys); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("no driver: %v, want api.ErrNotFound", err)
	}
	if gs, err := (Source{proc, sys}).GPUs(context.Background()); err != nil || gs == nil || len(gs) != 0 {
		t.Errorf("Source.GPUs without a driver = %#v, %v; want an empty list", gs, err)
	}
	proc, sys = fixture(t, map[string]string{"proc/driver/nvidia/version": ""})
	if d, err := Read(proc, sys); err != nil || len(d.GPUs) != 0 || d.GPUs == nil {
		t.Errorf("driver without GPUs: %+v, %v", d, err)
	}
	proc, sys = fixture(t, map[string]string{"proc/driver/nvidia/gpus/0000:01:00.0/information": information("NVIDIA H100", "GPU-x", "0000:01:00.0", "lots")})
	if _, err := Read(proc, sys); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("malformed information file: %v, want api.ErrInvalid", err)
	}
}
