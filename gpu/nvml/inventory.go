// Package nvml discovers NVIDIA GPUs through NVML (github.com/NVIDIA/go-nvml):
// identity, memory, PCI address, compute capability, MIG mode, NUMA node
// and the link matrix of gpu/topology, from the real library or from
// go-nvml's simulated DGX machines with their topology filled in.
//
// go-nvml needs cgo, its mocks too, so this is the one package of Caisson
// that uses cgo: the discovery is in files built only with cgo, and a build
// without cgo gets stubs that say so. The Inventory type is plain Go, so a
// static caisson can read one that the cgo helper (cmd/caisson-nvml) wrote
// as JSON; they live in package gpu.
//
// A failed nvmlInit is not fatal (no driver: zero GPUs and the reason), but
// any NVML call after it would kill the process (an unresolved symbol), so
// every call is gated on a successful Init. A method a simulated device
// does not implement (go-nvml's mocks panic) counts as not supported.
package nvml

import "github.com/caisson/caisson/gpu"

// Backends that Discover accepts (see package gpu).
const (
	BackendNVML    = gpu.BackendNVML
	BackendDGXA100 = gpu.BackendDGXA100
	BackendDGXH100 = gpu.BackendDGXH100
	BackendDGXB200 = gpu.BackendDGXB200
)

// Inventory and Device are package gpu's, so that a static caisson can read
// what the cgo helper prints.
type (
	Inventory = gpu.Inventory
	Device    = gpu.Device
)
