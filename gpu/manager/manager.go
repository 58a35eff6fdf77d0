package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	cdispecs "tags.cncf.io/container-device-interface/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/gpu/cdi"
	"github.com/caisson/caisson/gpu/procfs"
	"github.com/caisson/caisson/gpu/topology"
	"github.com/caisson/caisson/internal/atomicfile"
)

// Config says where the GPUs come from and where the state lives.
type Config struct {
	// Backend is gpu.BackendNVML (the default) or a simulated machine.
	Backend string
	// Dir holds the state (the work dir's gpu/).
	Dir string
	// Helper is caisson-nvml's path; empty: next to caisson, then PATH.
	Helper string
	// HelperTimeout bounds each helper call but watch (default 30s).
	HelperTimeout time.Duration
	// ProcFS and SysFS are where /proc and /sys are (default /proc, /sys).
	ProcFS, SysFS string
	// DriverRoot is where the driver's libraries and binaries are ("/").
	DriverRoot string
	// DevRoot is where the GPUs' device nodes are: /dev, or for a
	// simulated machine its own directory of fake nodes (the default
	// when empty).
	DevRoot string
	// CDIBase is a spec made by nvidia-ctk cdi generate whose mounts and
	// hooks replace the generated ones; empty: generate them.
	CDIBase string
	Logger  *slog.Logger
}

// Manager is the GPU state of one host.
type Manager struct {
	cfg Config
	log *slog.Logger
}

// New checks the configuration; it touches nothing.
func New(cfg Config) (*Manager, error) {
	if cfg.Backend == "" {
		cfg.Backend = gpu.BackendNVML
	}
	if !slices.Contains(gpu.Backends, cfg.Backend) {
		return nil, fmt.Errorf("gpu backend %q: want one of %s: %w", cfg.Backend, strings.Join(gpu.Backends, ", "), api.ErrInvalid)
	}
	if cfg.Dir == "" {
		return nil, fmt.Errorf("gpu manager needs a state dir: %w", api.ErrInvalid)
	}
	if cfg.HelperTimeout == 0 {
		cfg.HelperTimeout = 30 * time.Second
	}
	if cfg.ProcFS == "" {
		cfg.ProcFS = "/proc"
	}
	if cfg.SysFS == "" {
		cfg.SysFS = "/sys"
	}
	if cfg.DriverRoot == "" {
		cfg.DriverRoot = "/"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: cfg.Logger}, nil
}

func (m *Manager) simDir() string { return filepath.Join(m.cfg.Dir, "sim") }

// CDIDir is where the generated CDI spec is.
func (m *Manager) CDIDir() string { return filepath.Join(m.cfg.Dir, "cdi") }

// DevRoot is where the GPUs' device nodes are on this host: /dev, or the
// simulation's directory of fake nodes.
func (m *Manager) DevRoot() string {
	if m.cfg.DevRoot != "" {
		return m.cfg.DevRoot
	}
	if gpu.Simulated(m.cfg.Backend) {
		return filepath.Join(m.simDir(), "dev")
	}
	return "/dev"
}

// Majors are the device majors of the GPU, UVM and caps nodes.
func (m *Manager) Majors() (cdi.Majors, error) {
	p := filepath.Join(m.cfg.ProcFS, "devices")
	if gpu.Simulated(m.cfg.Backend) {
		return cdi.SimulatedMajors(p)
	}
	return cdi.ReadMajors(p)
}

// cached is inventory.json.
type cached struct {
	BootID    string         `json:"boot_id"`
	Inventory *gpu.Inventory `json:"inventory"`
}

func (m *Manager) bootID() string {
	b, _ := os.ReadFile(filepath.Join(m.cfg.ProcFS, "sys", "kernel", "random", "boot_id"))
	return strings.TrimSpace(string(b))
}

// Inventory returns this host's GPUs: from inventory.json when it was made
// by this backend since the last boot, else discovered afresh (see
// Discover). With refresh it always discovers.
func (m *Manager) Inventory(ctx context.Context, refresh bool) (*gpu.Inventory, error) {
	if !refresh {
		var c cached
		b, err := os.ReadFile(filepath.Join(m.cfg.Dir, "inventory.json"))
		if err == nil && json.Unmarshal(b, &c) == nil && c.Inventory != nil &&
			c.Inventory.Backend == m.cfg.Backend && c.BootID == m.bootID() {
			return c.Inventory, nil
		}
	}
	return m.Discover(ctx)
}

// Discover finds the GPUs through the helper (or /proc/driver/nvidia),
// makes the fake device nodes of a simulated machine, writes the CDI spec
// and saves the inventory.
func (m *Manager) Discover(ctx context.Context) (*gpu.Inventory, error) {
	inv := &gpu.Inventory{}
	err := m.helper(ctx, inv, "inventory")
	switch {
	case err != nil && gpu.Simulated(m.cfg.Backend):
		return nil, err
	case err != nil:
		inv, err = m.fallback(fmt.Sprintf("NVML helper unusable (%v)", err))
	case len(inv.Devices) == 0 && inv.Reason != "":
		inv, err = m.fallback(inv.Reason)
	}
	if err != nil {
		return nil, err
	}
	if err := m.install(ctx, inv); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(cached{BootID: m.bootID(), Inventory: inv}, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(m.cfg.Dir, "inventory.json"), append(b, '\n'), 0o600, false); err != nil {
		return nil, err
	}
	return inv, nil
}

// fallback reads the GPUs the kernel driver lists, when NVML cannot. No
// driver is no GPUs; a driver file that cannot be read is an error.
func (m *Manager) fallback(why string) (*gpu.Inventory, error) {
	inv := &gpu.Inventory{Backend: m.cfg.Backend, Source: "procfs", Devices: []gpu.Device{}}
	d, err := procfs.Read(m.cfg.ProcFS, m.cfg.SysFS)
	if errors.Is(err, api.ErrNotFound) {
		inv.Reason = why + "; " + err.Error()
		return inv, nil
	}
	if err != nil {
		return nil, err
	}
	inv.DriverVersion = d.Version
	for _, g := range d.GPUs {
		inv.Devices = append(inv.Devices, gpu.Device{GPU: g})
	}
	if len(inv.Devices) == 0 {
		inv.Reason = why + "; the NVIDIA kernel driver lists no GPU"
		return inv, nil
	}
	inv.Reason = why + "; GPUs read from " + filepath.Join(m.cfg.ProcFS, "driver", "nvidia") + " (no links, health or stats)"
	inv.Topology = flatTopology(inv.Devices)
	return inv, nil
}

// flatTopology links GPUs by NUMA node only, for the fallback that knows no
// more.
func flatTopology(devs []gpu.Device) *topology.Topology {
	n := len(devs)
	t := &topology.Topology{NVLinks: make([][]int, n), PCIe: make([][]topology.Level, n)}
	for i, d := range devs {
		t.Devices = append(t.Devices, topology.Device{Index: i, UUID: d.UUID, NUMANode: d.NUMANode})
		t.NVLinks[i] = make([]int, n)
		t.PCIe[i] = make([]topology.Level, n)
		for j, e := range devs {
			switch {
			case i == j:
			case d.NUMANode >= 0 && d.NUMANode == e.NUMANode:
				t.PCIe[i][j] = topology.Node
			default:
				t.PCIe[i][j] = topology.System
			}
		}
	}
	return t
}

// MIGMinors are the minors of the MIG capabilities: the driver's
// /proc/driver/nvidia-caps/mig-minors, or the simulation's own file of
// that form (written at discovery). None when the file does not exist.
func (m *Manager) MIGMinors() (cdi.MIGMinors, error) {
	if gpu.Simulated(m.cfg.Backend) {
		return cdi.ReadMIGMinors(filepath.Join(m.simDir(), simMIGMinors))
	}
	return cdi.ReadMIGMinors(filepath.Join(m.cfg.ProcFS, cdi.MIGMinorsFile))
}

// simMIGMinors is the simulation's mig-minors file.
const simMIGMinors = "mig-minors"

// removeSpec removes the CDI spec: there is nothing to give.
func (m *Manager) removeSpec() error {
	if err := os.Remove(filepath.Join(m.CDIDir(), cdi.SpecFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// install makes the fake nodes of a simulated machine (with its mig-minors
// file) and writes the CDI spec of the inventory.
func (m *Manager) install(ctx context.Context, inv *gpu.Inventory) error {
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return err
	}
	if len(inv.Devices) == 0 {
		return m.removeSpec()
	}
	majors, err := m.Majors()
	if err != nil {
		return err
	}
	if gpu.Simulated(m.cfg.Backend) {
		gpus := 0
		for _, d := range inv.Devices {
			gpus = max(gpus, d.Minor+1)
		}
		if err := os.MkdirAll(m.simDir(), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(m.simDir(), simMIGMinors), cdi.SimulatedMIGMinors(gpus), 0o644, false); err != nil {
			return fmt.Errorf("simulated MIG capabilities: %w", err)
		}
	}
	caps, err := m.MIGMinors()
	if err != nil {
		return err
	}
	perGPU, control := cdi.Nodes(inv, m.DevRoot(), majors, caps)
	for _, d := range inv.Devices {
		for _, mig := range d.MIGDevices {
			if _, ok := perGPU[mig.UUID]; !ok {
				m.log.Warn("MIG device cannot be given: its capabilities are unknown (no nvidia-caps major in /proc/devices, or no line in mig-minors)",
					"gpu", d.Index, "mig", mig.UUID, "gpu_instance", mig.GPUInstance, "compute_instance", mig.ComputeInstance)
			}
		}
	}
	if gpu.Simulated(m.cfg.Backend) {
		nodes := slices.Clone(control)
		nodes = append(nodes, cdi.AdminCapNodes(m.DevRoot(), majors, caps)...)
		for _, d := range inv.Devices {
			nodes = append(nodes, perGPU[d.UUID]...)
			for _, mig := range d.MIGDevices {
				nodes = append(nodes, perGPU[mig.UUID]...)
			}
		}
		if err := cdi.CreateNodes(m.DevRoot(), nodes...); err != nil {
			return fmt.Errorf("simulated GPUs: %w", err)
		}
	}
	if len(perGPU) == 0 {
		// Only GPUs in MIG mode, none of whose MIG devices can be given.
		return m.removeSpec()
	}
	// Without a driver version (a /proc/driver/nvidia that does not say)
	// the driver's files cannot be told apart: mount none.
	files := cdi.Files{Root: m.cfg.DriverRoot}
	if inv.DriverVersion != "" {
		if files, err = cdi.DriverFiles(m.cfg.DriverRoot, inv.DriverVersion, runtime.GOARCH); err != nil {
			return err
		}
	}
	var base *cdispecs.Spec
	if m.cfg.CDIBase != "" {
		if base, err = cdi.LoadBase(ctx, m.cfg.CDIBase); err != nil {
			return err
		}
	}
	spec, err := cdi.Generate(inv, m.DevRoot(), majors, caps, files, base)
	if err != nil {
		return err
	}
	return cdi.Write(m.CDIDir(), spec)
}
