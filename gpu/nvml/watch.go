//go:build cgo && linux

package nvml

import (
	"context"
	"fmt"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// watchEvents are the events Watch asks every GPU for.
const watchEvents = gonvml.EventTypeXidCriticalError | gonvml.EventTypeDoubleBitEccError

// waitMs is how long one wait for events lasts, and so how long Watch may
// take to notice that ctx is done.
const waitMs = 1000

// wholeGPU is the GPU or compute instance ID of an event that is not
// narrowed to one.
const wholeGPU = 0xFFFFFFFF

// Watch reports the GPUs' XID errors and double-bit ECC errors to out until
// ctx is done, then returns nil. An event of a MIG device carries its GPU
// instance (and compute instance) ID. Every XID is reported, those an
// application causes too: which ones make a GPU unhealthy is for the
// caller to decide. A GPU that cannot be watched (events not supported, or
// registration failed) is reported once as an EventUnwatched with the
// reason. Then one EventReady says every device is registered. An error means NVML could not start or stopped answering (a GPU
// lost from the bus can do that); a caller then probes the GPUs.
//
// On a simulated machine the events are the lines appended to simDir's
// events file after Watch started (see MockWith).
func Watch(ctx context.Context, backend, simDir string, out func(gpu.Event)) error {
	lib, err := open(backend, simDir)
	if err != nil {
		return err
	}
	return watch(ctx, lib, out)
}

func watch(ctx context.Context, lib gonvml.Interface, out func(gpu.Event)) error {
	if err := start(lib); err != nil {
		return err
	}
	defer lib.Shutdown()
	set, ret := call(lib.EventSetCreate)
	if ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml: create event set: %s: %w", gonvml.ErrorString(ret), api.ErrUnavailable)
	}
	defer set.Free()
	n, ret := call(lib.DeviceGetCount)
	if ret != gonvml.SUCCESS {
		return fmt.Errorf("nvml: count devices: %s: %w", gonvml.ErrorString(ret), api.ErrUnavailable)
	}
	for i := range n {
		if uuid, reason := register(lib, set, i); reason != "" {
			out(gpu.Event{UUID: uuid, Type: gpu.EventUnwatched, Time: time.Now().UTC(), Reason: reason})
		}
	}
	// From here on no event is missed: tell the caller, who may be
	// waiting for it (a test that injects events, an agent starting).
	out(gpu.Event{Type: gpu.EventReady, Time: time.Now().UTC()})
	for ctx.Err() == nil {
		e, ret := call(func() (gonvml.EventData, gonvml.Return) { return set.Wait(waitMs) })
		switch ret {
		case gonvml.SUCCESS:
		case gonvml.ERROR_TIMEOUT:
			continue
		default:
			return fmt.Errorf("nvml: wait for events: %s: %w", gonvml.ErrorString(ret), api.ErrUnavailable)
		}
		ev := gpu.Event{Time: time.Now().UTC()}
		switch {
		case e.EventType&gonvml.EventTypeXidCriticalError != 0:
			ev.Type, ev.XID = gpu.EventXID, e.EventData
		case e.EventType&gonvml.EventTypeDoubleBitEccError != 0:
			ev.Type = gpu.EventDBE
		default:
			continue
		}
		if e.Device != nil {
			ev.UUID, _ = call(e.Device.GetUUID)
		}
		// The MIG GI/CI filter: an event of one MIG device names its
		// instances; 0xFFFFFFFF is the whole GPU.
		if e.GpuInstanceId != wholeGPU {
			gi := e.GpuInstanceId
			ev.GPUInstance = &gi
			if e.ComputeInstanceId != wholeGPU {
				ci := e.ComputeInstanceId
				ev.ComputeInstance = &ci
			}
		}
		out(ev)
	}
	return nil
}

// register asks for device i's XID and double-bit ECC events; it returns
// the device's UUID and why it could not, or "".
func register(lib gonvml.Interface, set gonvml.EventSet, i int) (uuid, reason string) {
	d, ret := call(func() (gonvml.Device, gonvml.Return) { return lib.DeviceGetHandleByIndex(i) })
	if ret != gonvml.SUCCESS {
		return "", fmt.Sprintf("device %d: %s", i, gonvml.ErrorString(ret))
	}
	uuid, _ = call(d.GetUUID)
	supported, ret := call(d.GetSupportedEventTypes)
	if ret != gonvml.SUCCESS {
		return uuid, "supported events: " + gonvml.ErrorString(ret)
	}
	want := supported & watchEvents
	if want == 0 {
		return uuid, "supports neither XID nor double-bit ECC events"
	}
	if ret := call0(func() gonvml.Return { return d.RegisterEvents(want, set) }); ret != gonvml.SUCCESS {
		return uuid, "register events: " + gonvml.ErrorString(ret)
	}
	return uuid, ""
}
