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
)

// testInventory is a small machine: three GPUs with minors 0, 1 and 3, the
// last one in MIG mode.
func testInventory() *gpu.Inventory {
	dev := func(uuid string, index, minor int, mig bool) gpu.Device {
		return gpu.Device{
			GPU: api.GPU{
				UUID: uuid, Index: index, Minor: minor, Model: "NVIDIA A100-SXM4-40GB",
				MemoryBytes: 40 << 30, PCIBusID: fmt.Sprintf("00000000:%02X:00.0", 0x07+index), NUMANode: 0,
			},
			ComputeCapability: "8.0",
			MIG:               mig,
		}
	}
	return &gpu.Inventory{
		Backend:       gpu.BackendNVML,
		DriverVersion: testDriverVersion,
		CUDAVersion:   "12.4",
		Devices:       []gpu.Device{dev(uuid0, 0, 0, false), dev(uuid1, 1, 1, false), dev(uuid2, 2, 3, true)},
		Source:        "nvml",
	}
}

func TestNodes(t *testing.T) {
	inv := testInventory()
	perGPU, control := Nodes(inv, "/run/caisson/dev", Majors{GPU: 195, UVM: 237, Caps: 234})
	wantPerGPU := map[string][]Node{
		uuid0: {{Path: "/run/caisson/dev/nvidia0", ContainerPath: "/dev/nvidia0", Major: 195, Minor: 0}},
		uuid1: {{Path: "/run/caisson/dev/nvidia1", ContainerPath: "/dev/nvidia1", Major: 195, Minor: 1}},
		// MIG mode on, but no MIG caps: the inventory has no MIG devices.
		uuid2: {{Path: "/run/caisson/dev/nvidia3", ContainerPath: "/dev/nvidia3", Major: 195, Minor: 3}},
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

	t.Run("no uvm module", func(t *testing.T) {
		_, control := Nodes(inv, "/dev", Majors{GPU: 195})
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
		Mode: st.Mode & 0o7777,
	}, st.Ino
}

func TestCreateNodes(t *testing.T) {
	testutil.RequiresRoot(t)
	root := filepath.Join(t.TempDir(), "dev")
	perGPU, control := Nodes(testInventory(), root, Majors{GPU: 195, UVM: 242})
	nodes := append(perGPU[uuid0], perGPU[uuid2]...)
	nodes = append(nodes, control...)
	// A node in a subdirectory, as MIG caps would be.
	nodes = append(nodes, Node{Path: filepath.Join(root, "nvidia-caps", "nvidia-cap1"), ContainerPath: "/dev/nvidia-caps/nvidia-cap1", Major: 241, Minor: 1})

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
