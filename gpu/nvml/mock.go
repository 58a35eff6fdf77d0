//go:build cgo && linux

package nvml

import (
	"fmt"
	"math/bits"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu/topology"
)

// Mock returns one of go-nvml's simulated DGX machines with what its mocks
// leave out filled in from the gpu/topology preset of the same machine: PCI
// addresses, NUMA nodes, PCIe common ancestors, and NVLinks to the
// NVSwitches with peer-to-peer access between every pair. It is MockWith
// with no simulation directory: healthy GPUs and no events.
func Mock(backend string) (gonvml.Interface, error) {
	return MockWith(backend, "")
}

// MockWith is Mock whose GPUs also have stats, health, events and MIG
// devices, driven by the files of simDir (see SimEventsFile, SimFaultsFile
// and SimMIGFile; "" for none). The GPUs' UUIDs are derived from the
// backend and the index, and MIG devices' from their GPU and instances, so
// that every process (each run of caisson-nvml) sees the same machine.
func MockWith(backend, simDir string) (*server.Server, error) {
	var (
		srv    *server.Server
		preset *topology.Topology
	)
	switch backend {
	case BackendDGXA100:
		srv, preset = dgxa100.New(), topology.DGXA100()
	case BackendDGXH100:
		srv, preset = dgxh100.New(), topology.DGXH100()
	case BackendDGXB200:
		srv, preset = dgxb200.New(), topology.DGXB200()
	default:
		return nil, fmt.Errorf("gpu backend %q is not a simulated machine: %w", backend, api.ErrInvalid)
	}
	for i, nd := range srv.Devices {
		if d, ok := nd.(*server.Device); ok {
			d.UUID = simUUID(backend, i)
		}
	}
	if _, err := Simulate(srv, preset, true); err != nil {
		return nil, err
	}
	faults, err := readFaults(simDir)
	if err != nil {
		return nil, err
	}
	if err := simulateHealth(srv, simDir, faults); err != nil {
		return nil, err
	}
	if err := simulateMIG(srv, simDir, faults); err != nil {
		return nil, err
	}
	return srv, nil
}

// Simulate fills a mock server's devices with the links of t. With
// switched, each GPU's NVLinks (t.NVLinks[i][j], the same for every pair)
// go to NVSwitches; otherwise they go straight to the GPUs t names, and
// t.Devices[i].CPULinks more go to the CPU (POWER9's NVLink).
func Simulate(srv *server.Server, t *topology.Topology, switched bool) (*server.Server, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if len(srv.Devices) != len(t.Devices) {
		return nil, fmt.Errorf("simulated machine has %d GPUs, its topology %d: %w", len(srv.Devices), len(t.Devices), api.ErrInvalid)
	}
	bus := func(i int) gonvml.PciInfo {
		var p gonvml.PciInfo
		s := fmt.Sprintf("00000000:%02X:00.0", 0x10+0x10*i)
		for k := range len(s) {
			p.BusId[k] = int8(s[k])
		}
		p.Bus = uint32(0x10 + 0x10*i)
		return p
	}
	// The remote end of each link slot of each GPU: -1 a switch, -2 the
	// CPU, else a GPU.
	slots := make([][]int, len(t.Devices))
	for i := range t.Devices {
		for j := range t.Devices {
			if i == j {
				continue
			}
			for range t.NVLinks[i][j] {
				if switched {
					break
				}
				slots[i] = append(slots[i], j)
			}
		}
		if switched {
			for j := range t.Devices {
				if j != i {
					for range t.NVLinks[i][j] {
						slots[i] = append(slots[i], -1)
					}
					break
				}
			}
		}
		for range t.Devices[i].CPULinks {
			slots[i] = append(slots[i], -2)
		}
	}
	for i, nd := range srv.Devices {
		d, ok := nd.(*server.Device)
		if !ok {
			return nil, fmt.Errorf("simulated GPU %d is a %T: %w", i, nd, api.ErrInvalid)
		}
		cfg := d.Config
		pci := bus(i)
		pci.PciDeviceId = cfg.PciDeviceId
		d.PciBusID = busID(pci)
		d.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) { return pci, gonvml.SUCCESS }
		numa := t.Devices[i].NUMANode
		d.GetNumaNodeIdFunc = func() (int, gonvml.Return) { return numa, gonvml.SUCCESS }
		d.GetCpuAffinityFunc = func(n int) ([]uint, gonvml.Return) { return simulatedAffinity(numa, n) }
		links := slots[i]
		d.GetNvLinkStateFunc = func(l int) (gonvml.EnableState, gonvml.Return) {
			if l < 0 || l >= gonvml.NVLINK_MAX_LINKS {
				return 0, gonvml.ERROR_INVALID_ARGUMENT
			}
			if l < len(links) {
				return gonvml.FEATURE_ENABLED, gonvml.SUCCESS
			}
			return gonvml.FEATURE_DISABLED, gonvml.SUCCESS
		}
		d.GetNvLinkRemoteDeviceTypeFunc = func(l int) (gonvml.IntNvLinkDeviceType, gonvml.Return) {
			if l < 0 || l >= len(links) {
				return 0, gonvml.ERROR_INVALID_ARGUMENT
			}
			switch links[l] {
			case -1:
				return gonvml.NVLINK_DEVICE_TYPE_SWITCH, gonvml.SUCCESS
			case -2:
				return gonvml.NVLINK_DEVICE_TYPE_IBMNPU, gonvml.SUCCESS
			}
			return gonvml.NVLINK_DEVICE_TYPE_GPU, gonvml.SUCCESS
		}
		d.GetNvLinkRemotePciInfoFunc = func(l int) (gonvml.PciInfo, gonvml.Return) {
			if l < 0 || l >= len(links) || links[l] < 0 {
				return gonvml.PciInfo{}, gonvml.ERROR_NOT_SUPPORTED
			}
			return bus(links[l]), gonvml.SUCCESS
		}
		row, pcie := t.NVLinks[i], t.PCIe[i]
		d.GetTopologyCommonAncestorFunc = func(other gonvml.Device) (gonvml.GpuTopologyLevel, gonvml.Return) {
			o, ok := other.(*server.Device)
			if !ok || o.Index < 0 || o.Index >= len(pcie) {
				return 0, gonvml.ERROR_INVALID_ARGUMENT
			}
			return gonvml.GpuTopologyLevel(pcie[o.Index]), gonvml.SUCCESS
		}
		d.GetP2PStatusFunc = func(other gonvml.Device, caps gonvml.GpuP2PCapsIndex) (gonvml.GpuP2PStatus, gonvml.Return) {
			o, ok := other.(*server.Device)
			if !ok || o.Index < 0 || o.Index >= len(row) {
				return 0, gonvml.ERROR_INVALID_ARGUMENT
			}
			if caps == gonvml.P2P_CAPS_INDEX_NVLINK && row[o.Index] == 0 {
				return gonvml.P2P_STATUS_NOT_SUPPORTED, gonvml.SUCCESS
			}
			return gonvml.P2P_STATUS_OK, gonvml.SUCCESS
		}
	}
	return srv, nil
}

// SimulatedCPUsPerNode is how many CPUs each NUMA node of a simulated
// machine has: node k holds CPUs k*16 to k*16+15.
const SimulatedCPUsPerNode = 16

// simulatedAffinity is the CPU mask, n unsigned longs as NVML fills it, of a
// simulated GPU on NUMA node numa.
func simulatedAffinity(numa, n int) ([]uint, gonvml.Return) {
	mask := make([]uint, n)
	if numa < 0 {
		return nil, gonvml.ERROR_NOT_SUPPORTED
	}
	for c := numa * SimulatedCPUsPerNode; c < (numa+1)*SimulatedCPUsPerNode; c++ {
		if w := c / bits.UintSize; w < n {
			mask[w] |= 1 << (c % bits.UintSize)
		}
	}
	return mask, gonvml.SUCCESS
}
