package gpu

import (
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu/topology"
)

// Backends: where the GPUs come from.
const (
	// BackendNVML loads the driver's libnvidia-ml; without it, GPUs are read
	// from /proc/driver/nvidia (no topology, health or stats).
	BackendNVML = "nvml"
	// Simulated machines: eight GPUs each, go-nvml's mock servers with the
	// links of the gpu/topology preset of the same machine, and fake device
	// nodes that Caisson makes.
	BackendDGXA100 = "mock:dgxa100"
	BackendDGXH100 = "mock:dgxh100"
	BackendDGXB200 = "mock:dgxb200"
)

// Backends lists every backend, the default first.
var Backends = []string{BackendNVML, BackendDGXA100, BackendDGXH100, BackendDGXB200}

// Simulated reports whether a backend is a simulated machine.
func Simulated(backend string) bool {
	return backend == BackendDGXA100 || backend == BackendDGXH100 || backend == BackendDGXB200
}

// Inventory is what discovery found. The cgo helper (caisson-nvml
// inventory) prints it as JSON.
type Inventory struct {
	Backend string `json:"backend"`
	// Simulated is true for the mock backends: no real GPU is behind it.
	Simulated     bool   `json:"simulated"`
	DriverVersion string `json:"driver_version,omitempty"`
	// CUDAVersion is the highest CUDA version the driver supports, "12.4".
	CUDAVersion string   `json:"cuda_version,omitempty"`
	Devices     []Device `json:"devices"`
	// Topology links the devices, in the same order.
	Topology *topology.Topology `json:"topology,omitempty"`
	// Source says how the GPUs were found: "nvml" or "procfs".
	Source string `json:"source,omitempty"`
	// Reason says why there are no devices (no driver, NVML failed), or
	// why only the fallback was used.
	Reason string `json:"reason,omitempty"`
}

// Device is one GPU. When its MIG mode is on (MIG), MIGDevices are its MIG
// devices: the GPU is then only given through them.
type Device struct {
	api.GPU
	// ComputeCapability is "8.0" for an A100.
	ComputeCapability string `json:"compute_capability,omitempty"`
}

// MIGDevice is one MIG device of a GPU (api.MIGDevice).
type MIGDevice = api.MIGDevice

// FindMIG finds the MIG device with this UUID: the index of its GPU in
// Devices and its position in that GPU's MIGDevices.
func (inv *Inventory) FindMIG(uuid string) (dev, mig int, ok bool) {
	for i, d := range inv.Devices {
		for j, m := range d.MIGDevices {
			if m.UUID == uuid {
				return i, j, true
			}
		}
	}
	return -1, -1, false
}

// SimMIGFile is the file of a simulation directory that holds the MIG
// layout of its GPUs (a MIGLayout as JSON); caisson gpu simulate --mig
// writes it, and every run of caisson-nvml applies it.
const SimMIGFile = "mig.json"

// SimEventsFile and SimFaultsFile are the files of a simulation directory
// that hold injected NVML events (one Event a line) and the GPUs whose
// probes fail ({"GPU-…": "reason"}); package nvml documents them.
const (
	SimEventsFile = "events.jsonl"
	SimFaultsFile = "faults.json"
)

// MIGLayout maps the UUID of a simulated GPU in MIG mode to the MIG
// profiles of its GPU instances, in the order they are created:
// {"GPU-…": ["1g.5gb", "1g.5gb", "2g.10gb", "3g.20gb"]}. A profile of a
// GPU instance ("3g.20gb") makes one compute instance of its size; a
// compute instance profile ("1c.3g.20gb") fills its GPU instance with as
// many compute instances of that size as it holds. A GPU not named is not
// in MIG mode.
type MIGLayout map[string][]string

// Stats is a sample of every GPU's counters (caisson-nvml stats).
type Stats struct {
	Devices []DeviceStats `json:"devices"`
}

// DeviceStats are one GPU's counters (api.GPUUsage, which caisson stats
// shows per container). A counter the device does not support is left out
// (nil).
type DeviceStats = api.GPUUsage

// HelperExitInvalid is caisson-nvml's exit status for invalid input (an
// error wrapping api.ErrInvalid: a simulation file it cannot apply), which
// caisson reports as its own invalid input.
const HelperExitInvalid = 3

// Event types that caisson-nvml watch reports.
const (
	EventXID = "xid" // an XID error; XID holds its number
	EventDBE = "dbe" // a double-bit (uncorrectable) ECC error
	// EventUnwatched says a device could not be watched (events not
	// supported); Reason says why.
	EventUnwatched = "unwatched"
	// EventReady says every device is registered: events from now on are
	// reported.
	EventReady = "ready"
)

// Event is one NVML event, one JSON line of caisson-nvml watch.
type Event struct {
	// UUID is the GPU's, also for an event in one of its MIG devices.
	UUID string `json:"uuid"`
	Type string `json:"type"`
	XID  uint64 `json:"xid,omitempty"`
	// GPUInstance and ComputeInstance narrow an event of a GPU in MIG
	// mode to the MIG devices of one GPU instance, or to one compute
	// instance of it. nil (NVML's 0xFFFFFFFF): the whole GPU.
	GPUInstance     *uint32   `json:"gpu_instance,omitempty"`
	ComputeInstance *uint32   `json:"compute_instance,omitempty"`
	Time            time.Time `json:"time"`
	// Reason explains an EventUnwatched.
	Reason string `json:"reason,omitempty"`
}

// Probe is the answer of caisson-nvml probe: whether a GPU answers NVML
// and is fit for work.
type Probe struct {
	UUID   string `json:"uuid"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}
