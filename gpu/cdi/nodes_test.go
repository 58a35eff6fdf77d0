package cdi

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/internal/testutil"
)

// UUIDs of the test inventory. Minors are not the indexes on purpose.
const (
	uuid0 = "GPU-3f1d2a54-6c1e-4b8e-9a51-0c6f5a2b7d10"
	uuid1 = "GPU-8b2e4c61-0d7a-4f3b-b1c2-5e9d8a7f6c21"
	uuid2 = "GPU-c4d5e6f7-1a2b-4c3d-8e9f-a0b1c2d3e432"
	// MIG devices of uuid2: GPU instance 1 whole, GPU instance 2 as two
	// compute instances.
	mig0 = "MIG-0b1c2d3e-4f50-5617-8293-a4b5c6d7e8f9"
	mig1 = "MIG-1c2d3e4f-5061-5728-93a4-b5c6d7e8f90a"
	mig2 = "MIG-2d3e4f50-6172-5839-a4b5-c6d7e8f90a1b"
)

// testInventory is a small machine: three GPUs with minors 0, 1 and 3, the
// last one in MIG mode with three MIG devices.
func testInventory() *gpu.Inventory {
	dev := func(uuid string, index, minor int, migs ...gpu.MIGDevice) gpu.Device {
		return gpu.Device{
			GPU: api.GPU{
				UUID: uuid, Index: index, Minor: minor, Model: "NVIDIA A100-SXM4-40GB",
				MemoryBytes: 40 << 30, PCIBusID: fmt.Sprintf("00000000:%02X:00.0", 0x07+index), NUMANode: 0,
				MIG: len(migs) > 0, MIGDevices: migs,
			},
			ComputeCapability: "8.0",
		}
	}
	mig := func(uuid string, index, gi, ci int, profile string) gpu.MIGDevice {
		return gpu.MIGDevice{UUID: uuid, ParentUUID: uuid2, Index: index, GPUInstance: gi, ComputeInstance: ci, Profile: profile, MemoryBytes: 19968 << 20, Multiprocessors: 42}
	}
	return &gpu.Inventory{
		Backend:       gpu.BackendNVML,
		DriverVersion: testDriverVersion,
		CUDAVersion:   "12.4",
		Devices: []gpu.Device{dev(uuid0, 0, 0), dev(uuid1, 1, 1), dev(uuid2, 2, 3,
			mig(mig0, 0, 1, 0, "3g.20gb"), mig(mig1, 1, 2, 0, "1c.3g.20gb"), mig(mig2, 2, 2, 1, "1c.3g.20gb"))},
		Source: "nvml",
	}
}

// testCaps is the mig-minors of a host with four GPUs: GPU minor 3's
// instances start at 3 + 3×135 = 408 (gi0), gi1 is 417 (ci0 418), gi2 426
// (ci0 427, ci1 428).
func testCaps(t *testing.T) MIGMinors {
	t.Helper()
	caps, err := parseMIGMinors(SimulatedMIGMinors(4))
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

func TestNodes(t *testing.T) {
	inv := testInventory()
	perGPU, control := Nodes(inv, "/run/caisson/dev", Majors{GPU: 195, UVM: 237, Caps: 234}, testCaps(t))
	nvidia3 := Node{Path: "/run/caisson/dev/nvidia3", ContainerPath: "/dev/nvidia3", Major: 195, Minor: 3}
	capNode := func(minor int64) Node {
		return Node{Path: fmt.Sprintf("/run/caisson/dev/nvidia-caps/nvidia-cap%d", minor), ContainerPath: fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", minor), Major: 234, Minor: minor}
	}
	wantPerGPU := map[string][]Node{
		uuid0: {{Path: "/run/caisson/dev/nvidia0", ContainerPath: "/dev/nvidia0", Major: 195, Minor: 0}},
		uuid1: {{Path: "/run/caisson/dev/nvidia1", ContainerPath: "/dev/nvidia1", Major: 195, Minor: 1}},
		// GPU 2 is in MIG mode: no entry of its own; each MIG device gets
		// the GPU's node and its GPU and compute instances' access caps.
		mig0: {nvidia3, capNode(417), capNode(418)},
		mig1: {nvidia3, capNode(426), capNode(427)},
		mig2: {nvidia3, capNode(426), capNode(428)},
	}
	wantControl := []Node{
		{Path: "/run/caisson/dev/nvidiactl", ContainerPath: "/dev/nvidiactl", Major: 195, Minor: 255},
		{Path: "/run/caisson/dev/nvidia-modeset", ContainerPath: "/dev/nvidia-modeset", Major: 195, Minor: 254},
		{Path: "/run/caisson/dev/nvidia-uvm", ContainerPath: "/dev/nvidia-uvm", Major: 237, Minor: 0},
		{Path: "/run/caisson/dev/nvidia-uvm-tools", ContainerPath: "/dev/nvidia-uvm-tools", Major: 237, Minor: 1},
	}
	if diff := cmp.Diff(wantPerGPU, perGPU); diff != "" {
		t.Errorf("per GPU (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantControl, control); diff != "" {
		t.Errorf("control (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Node{capNode(1), capNode(2)}, AdminCapNodes("/run/caisson/dev", Majors{GPU: 195, Caps: 234}, testCaps(t))); diff != "" {
		t.Errorf("config and monitor caps (-want +got):\n%s", diff)
	}

	t.Run("MIG devices without caps cannot be given", func(t *testing.T) {
		noGI2 := testCaps(t)
		delete(noGI2, "gpu3/gi2/access")
		for name, c := range map[string]struct {
			m    Majors
			caps MIGMinors
			want []string
		}{
			"no nvidia-caps major": {Majors{GPU: 195}, testCaps(t), nil},
			"no mig-minors":        {Majors{GPU: 195, Caps: 234}, nil, nil},
			"GPU instance missing": {Majors{GPU: 195, Caps: 234}, noGI2, []string{mig0}},
		} {
			perGPU, _ := Nodes(inv, "/dev", c.m, c.caps)
			var got []string
			for _, u := range []string{uuid2, mig0, mig1, mig2} {
				if _, ok := perGPU[u]; ok {
					got = append(got, u)
				}
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("%s: MIG devices with nodes (-want +got):\n%s", name, diff)
			}
			if len(perGPU[uuid0]) != 1 {
				t.Errorf("%s: whole GPU 0 has nodes %v", name, perGPU[uuid0])
			}
		}
	})

	t.Run("no uvm module", func(t *testing.T) {
		_, control := Nodes(inv, "/dev", Majors{GPU: 195}, nil)
		want := []Node{
			{Path: "/dev/nvidiactl", ContainerPath: "/dev/nvidiactl", Major: 195, Minor: 255},
			{Path: "/dev/nvidia-modeset", ContainerPath: "/dev/nvidia-modeset", Major: 195, Minor: 254},
		}
		if diff := cmp.Diff(want, control); diff != "" {
			t.Errorf("control (-want +got):\n%s", diff)
		}
	})
}

func TestCreateNodesOutsideRoot(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{root, filepath.Dir(root), filepath.Join(root, "../x"), "/dev/nvidia0"} {
		err := CreateNodes(root, Node{Path: p, ContainerPath: "/dev/nvidia0", Major: 195})
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("CreateNodes(%s) = %v, want an error wrapping api.ErrInvalid", p, err)
		}
	}
}

// nodeStat is what matters of a node; statNode also returns its inode, to
// tell whether it was replaced.
type nodeStat struct {
	Char         bool
	Major, Minor uint32
	Mode         uint32
}

func statNode(t *testing.T, path string) (nodeStat, uint64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	dev := uint64(st.Rdev) //nolint:unconvert // Rdev is uint32 on some arches.
	return nodeStat{
		Char:  st.Mode&unix.S_IFMT == unix.S_IFCHR,
		Major: unix.Major(dev), Minor: unix.Minor(dev),
		Mode: uint32(st.Mode) & 0o7777, // uint16 on some systems
	}, st.Ino
}

func TestCreateNodes(t *testing.T) {
	testutil.RequiresRoot(t)
	root := filepath.Join(t.TempDir(), "dev")
	m := Majors{GPU: 195, UVM: 242, Caps: 243}
	perGPU, control := Nodes(testInventory(), root, m, testCaps(t))
	nodes := append(perGPU[uuid0], perGPU[mig0]...)
	nodes = append(nodes, control...)
	// MIG caps are in a subdirectory.
	nodes = append(nodes, AdminCapNodes(root, m, testCaps(t))...)

	if err := CreateNodes(root, nodes...); err != nil {
		t.Fatal(err)
	}
	inodes := map[string]uint64{}
	for _, n := range nodes {
		got, ino := statNode(t, n.Path)
		want := nodeStat{Char: true, Major: uint32(n.Major), Minor: uint32(n.Minor), Mode: 0o666}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", n.Path, diff)
		}
		inodes[n.Path] = ino
	}

	t.Run("idempotent", func(t *testing.T) {
		if err := CreateNodes(root, nodes...); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if _, ino := statNode(t, n.Path); ino != inodes[n.Path] {
				t.Errorf("%s was replaced (inode %d, was %d)", n.Path, ino, inodes[n.Path])
			}
		}
	})

	t.Run("wrong mode is corrected in place", func(t *testing.T) {
		p := nodes[0].Path
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := CreateNodes(root, nodes[0]); err != nil {
			t.Fatal(err)
		}
		got, ino := statNode(t, p)
		if got.Mode != 0o666 || ino != inodes[p] {
			t.Errorf("%s: mode %o inode %d, want 666 and inode %d", p, got.Mode, ino, inodes[p])
		}
	})

	t.Run("different node or file is replaced", func(t *testing.T) {
		wrongMinor := filepath.Join(root, "nvidia7")
		if err := unix.Mknod(wrongMinor, unix.S_IFCHR|0o666, int(unix.Mkdev(195, 9))); err != nil {
			t.Fatal(err)
		}
		block := filepath.Join(root, "nvidia8")
		if err := unix.Mknod(block, unix.S_IFBLK|0o666, int(unix.Mkdev(195, 8))); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(root, "nvidia9")
		if err := os.WriteFile(file, []byte("not a node"), 0o644); err != nil {
			t.Fatal(err)
		}
		want := []Node{
			{Path: wrongMinor, ContainerPath: "/dev/nvidia7", Major: 195, Minor: 7},
			{Path: block, ContainerPath: "/dev/nvidia8", Major: 195, Minor: 8},
			{Path: file, ContainerPath: "/dev/nvidia9", Major: 195, Minor: 9},
		}
		if err := CreateNodes(root, want...); err != nil {
			t.Fatal(err)
		}
		for _, n := range want {
			got, _ := statNode(t, n.Path)
			if diff := cmp.Diff(nodeStat{Char: true, Major: 195, Minor: uint32(n.Minor), Mode: 0o666}, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", n.Path, diff)
			}
		}
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if filepath.Ext(e.Name()) == ".caisson-tmp" {
				t.Errorf("temporary node %s left behind", e.Name())
			}
		}
	})

	t.Run("a directory in the way is an error naming the path", func(t *testing.T) {
		dir := filepath.Join(root, "nvidia5", "sub")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, "nvidia5")
		err := CreateNodes(root, Node{Path: p, ContainerPath: "/dev/nvidia5", Major: 195, Minor: 5})
		if err == nil {
			t.Fatal("CreateNodes over a non-empty directory succeeded")
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %s", err, p)
		}
	})
}
