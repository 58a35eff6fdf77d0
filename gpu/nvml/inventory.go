// Package nvml discovers NVIDIA GPUs through NVML (github.com/NVIDIA/go-nvml):
// identity, memory, PCI address, compute capability, MIG mode, NUMA node
// and the link matrix of gpu/topology, from the real library or from
// go-nvml's simulated DGX machines with their topology filled in.
//
// go-nvml needs cgo, its mocks too, so this is the one package of Caisson
// that uses cgo: the discovery is in files built only with cgo, and a build
// without cgo gets stubs that say so. The Inventory type is plain Go, so a
// static caisson can read one that a cgo helper wrote as JSON.
//
// A failed nvmlInit is not fatal (no driver: zero GPUs and the reason), but
// any NVML call after it would kill the process (an unresolved symbol), so
// every call is gated on a successful Init. A method a simulated device
// does not implement (go-nvml's mocks panic) counts as not supported.
package nvml

import (
	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu/topology"
)

// Backends that Discover accepts.
const (
	BackendNVML = "nvml"
	// Simulated machines: eight GPUs each, with the links of the
	// gpu/topology preset of the same machine.
	BackendDGXA100 = "mock:dgxa100"
	BackendDGXH100 = "mock:dgxh100"
	BackendDGXB200 = "mock:dgxb200"
)

// Inventory is what discovery found.
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
	// Reason says why there are no devices (no driver, NVML failed).
	Reason string `json:"reason,omitempty"`
}

// Device is one GPU.
type Device struct {
	api.GPU
	// ComputeCapability is "8.0" for an A100.
	ComputeCapability string `json:"compute_capability,omitempty"`
	// MIG is true when MIG mode is on.
	MIG bool `json:"mig,omitempty"`
}
