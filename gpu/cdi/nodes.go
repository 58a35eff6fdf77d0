package cdi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// Node is a character device node the container gets.
type Node struct {
	// Path is the node on the host, under the device root.
	Path string
	// ContainerPath is where it appears in the container, always under /dev.
	ContainerPath string
	Major, Minor  int64
}

// Minors of the control nodes on the GPU major.
const (
	ctlMinor     = 255
	modesetMinor = 254
)

// Nodes lists the device nodes of an inventory: perGPU maps the UUID of
// each GPU that is given whole to its /dev/nvidia<minor> (GPU major, the
// device's minor), and the UUID of each MIG device to its GPU's node and
// the nodes of its two access capabilities, /dev/nvidia-caps/nvidia-cap<N>
// (the Caps major and the minors that caps, the driver's mig-minors, gives
// its GPU instance and its compute instance). A GPU in MIG mode has no entry
// of its own: it is only given through its MIG devices. A MIG device whose
// capabilities are unknown (no nvidia-caps major, or mig-minors does not list
// them) has no entry either: it cannot be given.
//
// control holds the nodes every GPU container needs: /dev/nvidiactl (GPU
// major:255), /dev/nvidia-modeset (GPU major:254) and, when the nvidia-uvm
// module is loaded (m.UVM != 0), /dev/nvidia-uvm (UVM:0) and
// /dev/nvidia-uvm-tools (UVM:1). Host paths are under devRoot ("/dev" on a
// real host, a directory Caisson manages for simulated GPUs); container
// paths are under /dev. The config and monitor capabilities, which would let
// a tenant repartition or watch every instance, are never listed.
func Nodes(inv *gpu.Inventory, devRoot string, m Majors, caps MIGMinors) (perGPU map[string][]Node, control []Node) {
	perGPU = make(map[string][]Node)
	if inv != nil {
		for _, d := range inv.Devices {
			parent := node(devRoot, "nvidia"+strconv.Itoa(d.Minor), m.GPU, int64(d.Minor))
			if !d.MIG {
				perGPU[d.UUID] = []Node{parent}
				continue
			}
			for _, mig := range d.MIGDevices {
				gi, okGI := caps[GIAccess(d.Minor, mig.GPUInstance)]
				ci, okCI := caps[CIAccess(d.Minor, mig.GPUInstance, mig.ComputeInstance)]
				if m.Caps == 0 || !okGI || !okCI {
					continue
				}
				perGPU[mig.UUID] = []Node{parent, capNode(devRoot, m, gi), capNode(devRoot, m, ci)}
			}
		}
	}
	control = []Node{
		node(devRoot, "nvidiactl", m.GPU, ctlMinor),
		node(devRoot, "nvidia-modeset", m.GPU, modesetMinor),
	}
	if m.UVM != 0 {
		control = append(control,
			node(devRoot, "nvidia-uvm", m.UVM, 0),
			node(devRoot, "nvidia-uvm-tools", m.UVM, 1))
	}
	return perGPU, control
}

// AdminCapNodes are the nodes of the config and monitor capabilities that
// caps lists. No container is given them; a simulated machine makes them,
// as a real host has them.
func AdminCapNodes(devRoot string, m Majors, caps MIGMinors) []Node {
	var out []Node
	for _, c := range []string{CapConfig, CapMonitor} {
		if minor, ok := caps[c]; ok && m.Caps != 0 {
			out = append(out, capNode(devRoot, m, minor))
		}
	}
	return out
}

func capNode(devRoot string, m Majors, minor int) Node {
	return node(devRoot, capsDir+"/nvidia-cap"+strconv.Itoa(minor), m.Caps, int64(minor))
}

func node(devRoot, name string, major int, minor int64) Node {
	return Node{
		Path:          filepath.Join(devRoot, name),
		ContainerPath: "/dev/" + name,
		Major:         int64(major),
		Minor:         minor,
	}
}

// nodeMode is the permission of every NVIDIA node, as the driver's
// nvidia-modprobe makes them.
const nodeMode = 0o666

// CreateNodes makes each node, a character device of mode 0666, at its Path,
// which must lie under devRoot (parents are created 0755). It is idempotent:
// a character device with the same numbers is kept (its mode corrected);
// anything else at the path is replaced atomically. It is for the fake nodes
// of simulated GPUs and needs CAP_MKNOD. Errors name the path.
func CreateNodes(devRoot string, nodes ...Node) error {
	root := filepath.Clean(devRoot)
	for _, n := range nodes {
		p := filepath.Clean(n.Path)
		if rel, err := filepath.Rel(root, p); err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("device node %s is not under %s: %w", n.Path, devRoot, api.ErrInvalid)
		}
		if n.Major < 0 || n.Major > maxMajor || n.Minor < 0 || n.Minor > 1<<20-1 {
			return fmt.Errorf("device node %s: %d:%d is not a valid device number: %w", p, n.Major, n.Minor, api.ErrInvalid)
		}
		if err := createNode(p, uint32(n.Major), uint32(n.Minor)); err != nil {
			return err
		}
	}
	return nil
}

func createNode(path string, major, minor uint32) error {
	dev := unix.Mkdev(major, minor)
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && uint64(st.Rdev) == dev: //nolint:unconvert // Rdev is uint32 on some arches.
		if st.Mode&0o7777 != nodeMode {
			if err := os.Chmod(path, nodeMode); err != nil {
				return fmt.Errorf("device node %s: %w", path, err)
			}
		}
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("device node %s: lstat: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("device node %s: %w", path, err)
	}
	// Make the node beside its final name and rename it into place, so that
	// a node being replaced is never missing.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".caisson-tmp")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("device node %s: %w", path, err)
	}
	if err := unix.Mknod(tmp, unix.S_IFCHR|nodeMode, int(dev)); err != nil {
		return fmt.Errorf("device node %s: mknod: %w", path, err)
	}
	// mknod applies the umask.
	if err := os.Chmod(tmp, nodeMode); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("device node %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("device node %s: %w", path, err)
	}
	return nil
}
