// Package nvml discovers NVIDIA GPUs through NVML (github.com/NVIDIA/go-nvml):
// identity, memory, PCI address, compute capability, MIG mode and MIG
// devices, NUMA node and the link matrix of gpu/topology, from the real
// library or from go-nvml's simulated DGX machines with their topology
// filled in.
//
// go-nvml needs cgo, its mocks too, so this is the one package of Caisson
// that uses cgo: the discovery is in files built only with cgo, and a build
// without cgo gets stubs that say so. The Inventory type is plain Go, so a
// static caisson can read one that the cgo helper (cmd/caisson-nvml) wrote
// as JSON; they live in package gpu.
//
// What it offers, each also a subcommand of caisson-nvml:
//
//	Discover  the inventory: GPUs and their topology
//	Stats     utilisation, memory, power, temperature, ECC counts
//	Probe     whether one GPU answers and is fit for work
//	Watch     XID and double-bit ECC events until the context ends
//
// A failed nvmlInit is not fatal (no driver: zero GPUs and the reason), but
// any NVML call after it would kill the process (an unresolved symbol), so
// every call is gated on a successful Init; Stats, Probe and Watch return
// an error wrapping api.ErrUnavailable then. A method a simulated device
// does not implement (go-nvml's mocks panic) counts as not supported.
//
// # Simulated machines
//
// The mock backends are go-nvml's DGX servers with fixed UUIDs (the same
// in every process), topology, idle stats and health, driven by the files
// of a simulation directory (simDir) that tests and demos write:
//
//   - SimEventsFile (events.jsonl): one gpu.Event JSON object a line
//     ({"uuid":"GPU-…","type":"xid","xid":79} or "type":"dbe"). Watch
//     reports the lines appended after it started; each "dbe" line of a GPU
//     counts as one uncorrected ECC error in its Stats. Malformed lines are
//     skipped.
//   - SimFaultsFile (faults.json): {"GPU-…": "reason"}. A GPU named there is
//     lost: NVML calls other than its identity fail with ERROR_GPU_IS_LOST,
//     so Probe finds it unfit (with the reason), Stats leaves its counters
//     out and Watch reports it unwatched. A MIG device named there (or whose
//     GPU is) fails its memory info, and so its probe. It is read when the
//     machine is simulated, at the start of each call.
//   - SimMIGFile (mig.json): a gpu.MIGLayout, {"GPU-…": ["1g.5gb",
//     "3g.20gb"]}. Each call turns MIG mode on for the GPUs named and makes
//     their GPU and compute instances through NVML, at placements found in
//     the mock's profiles; a layout the GPU cannot hold (an unknown profile,
//     eight 1g.5gb on an A100 that holds seven) fails every call with an
//     error wrapping api.ErrInvalid. go-nvml's mocks have no MIG device
//     handles: MockWith adds them, with UUIDs derived from the GPU and the
//     instances. An event line may name a MIG device's instances with
//     "gpu_instance" and "compute_instance".
//
// # MIG
//
// Discover lists the MIG devices of each GPU in MIG mode as NVML exposes
// them (GetMaxMigDeviceCount, GetMigDeviceHandleByIndex): UUID, GPU and
// compute instance IDs, memory, multiprocessors, and the profile named as
// go-nvlib names it ("1g.5gb", "1c.3g.20gb", "1g.5gb+me"). Each group of
// MIG functions is looked up in the driver's library before it is called.
package nvml

import "github.com/caisson/caisson/gpu"

// Backends that Discover accepts (see package gpu).
const (
	BackendNVML    = gpu.BackendNVML
	BackendDGXA100 = gpu.BackendDGXA100
	BackendDGXH100 = gpu.BackendDGXH100
	BackendDGXB200 = gpu.BackendDGXB200
)

// The files of a simulated machine's directory (see the package doc).
const (
	SimEventsFile = gpu.SimEventsFile
	SimFaultsFile = gpu.SimFaultsFile
	SimMIGFile    = gpu.SimMIGFile
)

// Inventory and Device are package gpu's, so that a static caisson can read
// what the cgo helper prints.
type (
	Inventory = gpu.Inventory
	Device    = gpu.Device
)
