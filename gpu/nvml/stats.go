//go:build cgo && linux

package nvml

import (
	"fmt"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// Stats samples the counters of the GPUs with the given UUIDs, or of every
// GPU when there are none. A UUID that no GPU has is an error wrapping
// api.ErrNotFound; a counter a GPU does not support is left nil. simDir
// drives a simulated machine (see MockWith).
func Stats(backend, simDir string, uuids []string) (*gpu.Stats, error) {
	lib, err := open(backend, simDir)
	if err != nil {
		return nil, err
	}
	return stats(lib, uuids)
}

func stats(lib gonvml.Interface, uuids []string) (*gpu.Stats, error) {
	if err := start(lib); err != nil {
		return nil, err
	}
	defer lib.Shutdown()
	st := &gpu.Stats{Devices: []gpu.DeviceStats{}}
	if len(uuids) == 0 {
		n, ret := call(lib.DeviceGetCount)
		if ret != gonvml.SUCCESS {
			return nil, fmt.Errorf("nvml: count devices: %s: %w", gonvml.ErrorString(ret), api.ErrUnavailable)
		}
		for i := range n {
			d, ret := call(func() (gonvml.Device, gonvml.Return) { return lib.DeviceGetHandleByIndex(i) })
			if ret != gonvml.SUCCESS {
				return nil, fmt.Errorf("nvml: device %d: %s: %w", i, gonvml.ErrorString(ret), api.ErrUnavailable)
			}
			uuid, ret := call(d.GetUUID)
			if ret != gonvml.SUCCESS {
				return nil, fmt.Errorf("nvml: device %d: UUID: %s: %w", i, gonvml.ErrorString(ret), api.ErrUnavailable)
			}
			st.Devices = append(st.Devices, sample(d, uuid, i))
		}
		return st, nil
	}
	for _, uuid := range uuids {
		d, ret := call(func() (gonvml.Device, gonvml.Return) { return lib.DeviceGetHandleByUUID(uuid) })
		switch {
		case notFound(ret):
			return nil, fmt.Errorf("gpu %s: %w", uuid, api.ErrNotFound)
		case ret != gonvml.SUCCESS:
			return nil, fmt.Errorf("nvml: gpu %s: %s: %w", uuid, gonvml.ErrorString(ret), api.ErrUnavailable)
		}
		i, ret := call(d.GetIndex)
		if ret != gonvml.SUCCESS {
			i = -1
		}
		st.Devices = append(st.Devices, sample(d, uuid, i))
	}
	return st, nil
}

// sample reads one GPU's counters; those that fail are left out.
func sample(d gonvml.Device, uuid string, index int) gpu.DeviceStats {
	s := gpu.DeviceStats{UUID: uuid, Index: index}
	if u, ret := call(d.GetUtilizationRates); ret == gonvml.SUCCESS {
		s.UtilizationPercent, s.MemoryUtilizationPercent = ptr(u.Gpu), ptr(u.Memory)
	}
	if m, ret := call(d.GetMemoryInfo); ret == gonvml.SUCCESS {
		s.MemoryUsedBytes, s.MemoryTotalBytes = ptr(m.Used), ptr(m.Total)
	}
	if p, ret := call(d.GetPowerUsage); ret == gonvml.SUCCESS {
		s.PowerMilliwatts = ptr(p)
	}
	t, ret := call(func() (uint32, gonvml.Return) {
		// Not GetTemperatureV: older drivers may lack it, and
		// calling a missing symbol aborts.
		return d.GetTemperature(gonvml.TEMPERATURE_GPU)
	})
	if ret == gonvml.SUCCESS {
		s.TemperatureCelsius = ptr(t)
	}
	for kind, counter := range map[gonvml.MemoryErrorType]**uint64{
		gonvml.MEMORY_ERROR_TYPE_CORRECTED:   &s.ECCCorrected,
		gonvml.MEMORY_ERROR_TYPE_UNCORRECTED: &s.ECCUncorrected,
	} {
		n, ret := call(func() (uint64, gonvml.Return) { return d.GetTotalEccErrors(kind, gonvml.VOLATILE_ECC) })
		if ret == gonvml.SUCCESS {
			*counter = ptr(n)
		}
	}
	return s
}
