//go:build cgo && linux

package nvml

import (
	"fmt"
	"math/bits"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/gpu/topology"
)

// Discover finds the GPUs of a backend and the MIG devices of those in MIG
// mode: BackendNVML loads libnvidia-ml, the mock backends simulate a DGX
// whose MIG layout simDir sets (see MockWith; "" for none).
func Discover(backend, simDir string) (*Inventory, error) {
	lib, err := open(backend, simDir)
	if err != nil {
		return nil, err
	}
	return discover(lib, backend, gpu.Simulated(backend))
}

// open returns the NVML of a backend, not yet initialised; simDir drives a
// simulated machine's stats, health and events (see MockWith).
func open(backend, simDir string) (gonvml.Interface, error) {
	switch backend {
	case BackendNVML:
		return gonvml.New(), nil
	case BackendDGXA100, BackendDGXH100, BackendDGXB200:
		srv, err := MockWith(backend, simDir)
		if err != nil {
			return nil, err
		}
		return srv, nil
	}
	return nil, fmt.Errorf("gpu backend %q: want %s, %s, %s or %s: %w", backend, BackendNVML, BackendDGXA100, BackendDGXH100, BackendDGXB200, api.ErrInvalid)
}

// start initialises NVML. When it fails, no other NVML call may be made:
// it would abort the process.
func start(lib gonvml.Interface) error {
	if ret := lib.Init(); ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml could not start (is the NVIDIA driver installed?): %s: %w", gonvml.ErrorString(ret), api.ErrUnavailable)
	}
	return nil
}

// call runs one NVML call; a method a mock does not implement (a panic)
// is reported as not supported.
func call[T any](f func() (T, gonvml.Return)) (v T, ret gonvml.Return) {
	defer func() {
		if recover() != nil {
			ret = gonvml.ERROR_NOT_SUPPORTED
		}
	}()
	return f()
}

// call0 is call for the NVML calls that return only a status.
func call0(f func() gonvml.Return) gonvml.Return {
	_, ret := call(func() (struct{}, gonvml.Return) { return struct{}{}, f() })
	return ret
}

// notFound reports whether a handle lookup failed because there is no such
// GPU (NVML says "invalid argument" for a malformed UUID, and go-nvml's
// mocks for any unknown one).
func notFound(ret gonvml.Return) bool {
	return ret == gonvml.ERROR_NOT_FOUND || ret == gonvml.ERROR_INVALID_ARGUMENT
}

// unsupported reports whether a call failed only because the GPU or the
// driver does not have it (old GPUs, old drivers).
func unsupported(ret gonvml.Return) bool {
	return ret == gonvml.ERROR_NOT_SUPPORTED || ret == gonvml.ERROR_FUNCTION_NOT_FOUND
}

// ptr returns a pointer to a counter's value.
func ptr[T any](v T) *T { return &v }

func discover(lib gonvml.Interface, backend string, simulated bool) (*Inventory, error) {
	inv := &Inventory{Backend: backend, Simulated: simulated, Source: "nvml", Devices: []Device{}}
	if ret := lib.Init(); ret != gonvml.SUCCESS {
		// No further call: after a failed Init one would abort the process.
		inv.Reason = "NVML could not start: " + gonvml.ErrorString(ret)
		return inv, nil
	}
	defer lib.Shutdown()
	if v, ret := call(lib.SystemGetDriverVersion); ret == gonvml.SUCCESS {
		inv.DriverVersion = v
	}
	if v, ret := call(lib.SystemGetCudaDriverVersion); ret == gonvml.SUCCESS {
		inv.CUDAVersion = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	n, ret := call(lib.DeviceGetCount)
	if ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("nvml: count devices: %s: %w", gonvml.ErrorString(ret), api.ErrUnavailable)
	}
	mig := migSupported(lib)
	handles := make([]gonvml.Device, n)
	for i := range n {
		d, ret := lib.DeviceGetHandleByIndex(i)
		if ret != gonvml.SUCCESS {
			return nil, fmt.Errorf("nvml: device %d: %s: %w", i, gonvml.ErrorString(ret), api.ErrUnavailable)
		}
		handles[i] = d
		dev, err := describe(d, i, mig)
		if err != nil {
			return nil, err
		}
		inv.Devices = append(inv.Devices, dev)
	}
	inv.Topology = links(handles, inv.Devices)
	return inv, nil
}

func describe(d gonvml.Device, i int, mig migSupport) (Device, error) {
	dev := Device{GPU: api.GPU{Index: i, NUMANode: -1}}
	var ret gonvml.Return
	if dev.UUID, ret = call(d.GetUUID); ret != gonvml.SUCCESS {
		return dev, fmt.Errorf("nvml: device %d: UUID: %s: %w", i, gonvml.ErrorString(ret), api.ErrUnavailable)
	}
	if dev.Minor, ret = call(d.GetMinorNumber); ret != gonvml.SUCCESS {
		return dev, fmt.Errorf("nvml: device %d: minor number: %s: %w", i, gonvml.ErrorString(ret), api.ErrUnavailable)
	}
	dev.Model, _ = call(d.GetName)
	if m, ret := call(d.GetMemoryInfo); ret == gonvml.SUCCESS {
		dev.MemoryBytes = int64(m.Total)
	}
	if p, ret := call(d.GetPciInfo); ret == gonvml.SUCCESS {
		dev.PCIBusID = busID(p)
	}
	if n, ret := call(d.GetNumaNodeId); ret == gonvml.SUCCESS {
		dev.NUMANode = n
	}
	// A mask of unsigned longs; 1024 asks for more than enough of them.
	if mask, ret := call(func() ([]uint, gonvml.Return) { return d.GetCpuAffinity(1024) }); ret == gonvml.SUCCESS {
		for w, bitsSet := range mask {
			for b := range bits.UintSize {
				if bitsSet&(1<<b) != 0 {
					dev.CPUAffinity = append(dev.CPUAffinity, w*bits.UintSize+b)
				}
			}
		}
	}
	cc, ret := call(func() ([2]int, gonvml.Return) {
		major, minor, ret := d.GetCudaComputeCapability()
		return [2]int{major, minor}, ret
	})
	if ret == gonvml.SUCCESS {
		dev.ComputeCapability = fmt.Sprintf("%d.%d", cc[0], cc[1])
	}
	if !mig.mode {
		return dev, nil
	}
	mode, ret := call(func() (int, gonvml.Return) {
		current, _, ret := d.GetMigMode()
		return current, ret
	})
	dev.MIG = ret == gonvml.SUCCESS && mode == gonvml.DEVICE_MIG_ENABLE
	if dev.MIG && mig.devices {
		dev.MIGDevices = migDevices(d, &dev, mig)
	}
	return dev, nil
}

// busID turns NVML's C string into "00000000:3B:00.0".
func busID(p gonvml.PciInfo) string {
	var b strings.Builder
	for _, c := range p.BusId {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

// links builds the topology: PCIe common ancestors, NVLinks between GPUs
// (counted from each GPU's links whose remote end is another GPU's PCI
// address), NVLinks to CPUs (POWER9), and NVSwitch fabrics (GPUs whose
// links go to switches and that can reach each other by NVLink get the
// smaller of their two switch link counts).
func links(handles []gonvml.Device, devs []Device) *topology.Topology {
	n := len(handles)
	t := &topology.Topology{NVLinks: make([][]int, n), PCIe: make([][]topology.Level, n)}
	byBus := map[string]int{}
	for i, d := range devs {
		t.Devices = append(t.Devices, topology.Device{Index: i, UUID: d.UUID, NUMANode: d.NUMANode})
		t.NVLinks[i] = make([]int, n)
		t.PCIe[i] = make([]topology.Level, n)
		if d.PCIBusID != "" {
			byBus[strings.ToLower(d.PCIBusID)] = i
		}
	}
	switchLinks := make([]int, n)
	for i, h := range handles {
		for l := range gonvml.NVLINK_MAX_LINKS {
			state, ret := call(func() (gonvml.EnableState, gonvml.Return) { return h.GetNvLinkState(l) })
			if ret != gonvml.SUCCESS || state != gonvml.FEATURE_ENABLED {
				continue
			}
			kind, ret := call(func() (gonvml.IntNvLinkDeviceType, gonvml.Return) { return h.GetNvLinkRemoteDeviceType(l) })
			if ret != gonvml.SUCCESS {
				kind = gonvml.NVLINK_DEVICE_TYPE_GPU
			}
			switch kind {
			case gonvml.NVLINK_DEVICE_TYPE_IBMNPU:
				t.Devices[i].CPULinks++
			case gonvml.NVLINK_DEVICE_TYPE_SWITCH:
				switchLinks[i]++
			default:
				remote, ret := call(func() (gonvml.PciInfo, gonvml.Return) { return h.GetNvLinkRemotePciInfo(l) })
				if j, ok := byBus[strings.ToLower(busID(remote))]; ret == gonvml.SUCCESS && ok && j != i {
					t.NVLinks[i][j]++
				}
			}
		}
	}
	for i := range n {
		for j := range n {
			if i == j {
				continue
			}
			level, ret := call(func() (gonvml.GpuTopologyLevel, gonvml.Return) {
				return handles[i].GetTopologyCommonAncestor(handles[j])
			})
			if ret != gonvml.SUCCESS {
				level = gonvml.TOPOLOGY_SYSTEM
			}
			t.PCIe[i][j] = topology.Level(level)
			if switchLinks[i] > 0 && switchLinks[j] > 0 {
				st, ret := call(func() (gonvml.GpuP2PStatus, gonvml.Return) {
					return handles[i].GetP2PStatus(handles[j], gonvml.P2P_CAPS_INDEX_NVLINK)
				})
				if ret == gonvml.SUCCESS && st == gonvml.P2P_STATUS_OK {
					t.NVLinks[i][j] += min(switchLinks[i], switchLinks[j])
				}
			}
		}
	}
	// Each direction was counted from its own end: keep them equal.
	for i := range n {
		for j := i + 1; j < n; j++ {
			v := min(t.NVLinks[i][j], t.NVLinks[j][i])
			t.NVLinks[i][j], t.NVLinks[j][i] = v, v
			p := max(t.PCIe[i][j], t.PCIe[j][i])
			t.PCIe[i][j], t.PCIe[j][i] = p, p
		}
	}
	return t
}
