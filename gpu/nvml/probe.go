//go:build cgo && linux

package nvml

import (
	"fmt"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/caisson/caisson/gpu"
)

// Probe says whether the GPU with this UUID answers NVML and is fit for
// work: its handle and memory info can be read, it has no retired pages
// waiting for a reset, and no row remapping has failed (those two when the
// GPU supports them). For a MIG device ("MIG-…") its own handle and memory
// info are read, and the checks of the whole GPU are made on its GPU. A
// GPU that is gone is not an error: OK is false and Reason "not found". The
// error is for NVML itself failing (no driver).
//
// On a simulated machine a GPU named in simDir's faults file is lost, and
// the reason given there is added to Reason.
func Probe(backend, simDir, uuid string) (*gpu.Probe, error) {
	lib, err := open(backend, simDir)
	if err != nil {
		return nil, err
	}
	p, err := probe(lib, uuid)
	if err != nil || p.OK || !gpu.Simulated(backend) {
		return p, err
	}
	faults, err := readFaults(simDir)
	if err != nil {
		return nil, err
	}
	if why, ok := faults[uuid]; ok {
		p.Reason = fmt.Sprintf("%s (simulated: %s)", p.Reason, why)
	}
	return p, nil
}

// ReasonNotFound is a Probe's Reason for a GPU that NVML does not know.
const ReasonNotFound = "not found"

func probe(lib gonvml.Interface, uuid string) (*gpu.Probe, error) {
	if err := start(lib); err != nil {
		return nil, err
	}
	defer lib.Shutdown()
	p := &gpu.Probe{UUID: uuid}
	d, ret := call(func() (gonvml.Device, gonvml.Return) { return lib.DeviceGetHandleByUUID(uuid) })
	switch {
	case notFound(ret):
		p.Reason = ReasonNotFound
		return p, nil
	case ret != gonvml.SUCCESS:
		p.Reason = "handle: " + gonvml.ErrorString(ret)
		return p, nil
	}
	if _, ret := call(d.GetMemoryInfo); ret != gonvml.SUCCESS {
		p.Reason = "memory info: " + gonvml.ErrorString(ret)
		return p, nil
	}
	if call0(func() gonvml.Return { return symbol(lib, "nvmlDeviceIsMigDeviceHandle") }) == gonvml.SUCCESS {
		if mig, ret := call(d.IsMigDeviceHandle); ret == gonvml.SUCCESS && mig {
			parent, ret := call(d.GetDeviceHandleFromMigDeviceHandle)
			if ret != gonvml.SUCCESS || parent == nil {
				p.Reason = "the MIG device's GPU: " + gonvml.ErrorString(ret)
				return p, nil
			}
			d = parent
		}
	}
	pending, ret := call(d.GetRetiredPagesPendingStatus)
	switch {
	case ret == gonvml.SUCCESS && pending == gonvml.FEATURE_ENABLED:
		p.Reason = "retired pages pending: the GPU needs a reset"
		return p, nil
	case ret != gonvml.SUCCESS && !unsupported(ret):
		p.Reason = "retired pages: " + gonvml.ErrorString(ret)
		return p, nil
	}
	// Row remapping came with driver R450 (Ampere); an older driver lacks
	// the symbol, and calling it would abort.
	if call0(func() gonvml.Return { return symbol(lib, "nvmlDeviceGetRemappedRows") }) == gonvml.SUCCESS {
		failed, ret := call(func() (bool, gonvml.Return) {
			_, _, _, failed, ret := d.GetRemappedRows()
			return failed, ret
		})
		switch {
		case ret == gonvml.SUCCESS && failed:
			p.Reason = "row remapping failed: the GPU needs to be serviced"
			return p, nil
		case ret != gonvml.SUCCESS && !unsupported(ret):
			p.Reason = "remapped rows: " + gonvml.ErrorString(ret)
			return p, nil
		}
	}
	p.OK = true
	return p, nil
}

// symbol says whether the driver's library has a function.
func symbol(lib gonvml.Interface, name string) gonvml.Return {
	if lib.Extensions().LookupSymbol(name) != nil {
		return gonvml.ERROR_FUNCTION_NOT_FOUND
	}
	return gonvml.SUCCESS
}
