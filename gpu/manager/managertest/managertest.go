// Package managertest gives tests a host with GPUs and no driver: a fake
// caisson-nvml (a shell script that prints the JSON the test chose) and a
// procfs with /proc/devices (nvidia, nvidia-caps and nvidia-uvm majors),
// the driver's MIG capabilities and a boot ID.
package managertest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/gpu/cdi"
	"github.com/caisson/caisson/gpu/topology"
)

// Host is a fake GPU host under Dir.
type Host struct {
	Dir    string
	ProcFS string
	// Helper is the fake caisson-nvml. It appends its arguments to
	// Dir/calls; inventory prints Dir/inventory.out, stats a utilisation
	// of 42 for the UUID asked, probe fails for a UUID with a file
	// Dir/fault-UUID, and watch prints Dir/events.out, then waits for
	// stdin to close. A command with a file Dir/exit-COMMAND prints
	// Dir/stderr-COMMAND on stderr and exits with that status instead.
	Helper string
}

// The MIG devices of DGXA100MIG, by GPU: GPU 0 has 1g.10gb (GPU instances
// 7 and 8), 2g.20gb (3) and 3g.40gb (2); GPU 1 has 1g.10gb (7) and GPU
// instance 1 split into three 1c.3g.40gb compute instances.
var MIGLayout = [][]struct {
	GI, CI  int
	Profile string
}{
	{{7, 0, "1g.10gb"}, {8, 0, "1g.10gb"}, {3, 0, "2g.20gb"}, {2, 0, "3g.40gb"}},
	{{7, 0, "1g.10gb"}, {1, 0, "1c.3g.40gb"}, {1, 1, "1c.3g.40gb"}, {1, 2, "1c.3g.40gb"}},
}

// MIGUUID is the UUID of MIG device j of GPU i of DGXA100MIG.
func MIGUUID(i, j int) string { return fmt.Sprintf("MIG-%08x-dddd-eeee-ffff-%012x", i, j) }

// DGXA100MIG is DGXA100 with GPUs 0 and 1 in MIG mode (see MIGLayout).
func DGXA100MIG() *gpu.Inventory {
	inv := DGXA100()
	for i, layout := range MIGLayout {
		d := &inv.Devices[i]
		d.MIG = true
		for j, m := range layout {
			d.MIGDevices = append(d.MIGDevices, gpu.MIGDevice{
				UUID: MIGUUID(i, j), ParentUUID: d.UUID, Index: j, GPUInstance: m.GI, ComputeInstance: m.CI,
				Profile: m.Profile, MemoryBytes: 10 << 30, Multiprocessors: 14,
			})
		}
	}
	return inv
}

// DGXA100 is a DGX A100 inventory (NVSwitch, NUMA 3,3,1,1,7,7,5,5) with
// fixed UUIDs.
func DGXA100() *gpu.Inventory {
	t := topology.DGXA100()
	inv := &gpu.Inventory{Backend: gpu.BackendNVML, Source: "nvml", DriverVersion: "550.54.15", CUDAVersion: "12.4", Topology: t}
	for i, d := range t.Devices {
		t.Devices[i].UUID = fmt.Sprintf("GPU-%08x-aaaa-bbbb-cccc-%012x", i, i)
		inv.Devices = append(inv.Devices, gpu.Device{GPU: api.GPU{
			UUID: t.Devices[i].UUID, Index: i, Minor: i, Model: "NVIDIA A100-SXM4-80GB", MemoryBytes: 80 << 30,
			PCIBusID: fmt.Sprintf("00000000:%02X:00.0", 0x10+i), NUMANode: d.NUMANode,
			CPUAffinity: []int{d.NUMANode * 16, d.NUMANode*16 + 1},
		}, ComputeCapability: "8.0"})
	}
	return inv
}

// New makes a fake host whose helper reports inv.
func New(t *testing.T, inv *gpu.Inventory) *Host {
	t.Helper()
	h := &Host{Dir: t.TempDir()}
	h.ProcFS = filepath.Join(h.Dir, "proc")
	write := func(path, data string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(h.ProcFS, "sys", "kernel", "random", "boot_id"), "boot-1\n", 0o644)
	write(filepath.Join(h.ProcFS, "devices"), "Character devices:\n  1 mem\n195 nvidia\n234 nvidia-caps\n237 nvidia-uvm\n\nBlock devices:\n  7 loop\n", 0o644)
	write(filepath.Join(h.ProcFS, cdi.MIGMinorsFile), string(cdi.SimulatedMIGMinors(8)), 0o444)
	b, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(h.Dir, "inventory.out"), string(b), 0o644)
	write(filepath.Join(h.Dir, "events.out"), "", 0o644)
	h.Helper = filepath.Join(h.Dir, "caisson-nvml")
	write(h.Helper, `#!/bin/sh
d=`+h.Dir+`
echo "$*" >> $d/calls
for a in "$@"; do last=$a; case $a in inventory|stats|probe|watch) cmd=$a;; esac; done
if [ -e $d/exit-$cmd ]; then cat $d/stderr-$cmd >&2; exit $(cat $d/exit-$cmd); fi
case $cmd in
inventory) cat $d/inventory.out ;;
stats) echo '{"devices":[{"uuid":"'$last'","index":0,"utilization_percent":42}]}' ;;
probe) if [ -e $d/fault-$last ]; then echo '{"uuid":"'$last'","ok":false,"reason":"GPU is lost"}'; else echo '{"uuid":"'$last'","ok":true}'; fi ;;
watch) cat $d/events.out; cat >/dev/null ;;
esac
`, 0o755)
	return h
}
