//go:build cgo && linux

package nvml

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// What a simulated GPU reports while it is healthy.
const (
	simPowerMilliwatts = 60000
	simTemperature     = 35
	// simEvents are the event types a simulated GPU supports.
	simEvents = gonvml.EventTypeXidCriticalError | gonvml.EventTypeDoubleBitEccError | gonvml.EventTypeSingleBitEccError
	// simPoll is how often a waiting event set looks at the events file.
	simPoll = 100 * time.Millisecond
)

// simUUID is the UUID of GPU i of a simulated machine: the same in every
// process, unlike go-nvml's random ones.
func simUUID(backend string, i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "caisson/%s/%d", backend, i))
	return fmt.Sprintf("GPU-%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// readFaults reads simDir's faults file: UUID → reason. No directory or no
// file means no faults.
func readFaults(simDir string) (map[string]string, error) {
	if simDir == "" {
		return nil, nil
	}
	path := filepath.Join(simDir, SimFaultsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("simulated faults: %w", err)
	}
	faults := map[string]string{}
	if err := json.Unmarshal(b, &faults); err != nil {
		return nil, fmt.Errorf("simulated faults %s: want an object of GPU UUID to reason: %w: %w", path, err, api.ErrInvalid)
	}
	return faults, nil
}

// simLines calls f with each well-formed event line of the events file
// from offset on, and returns the offset after the last complete line. A
// missing file has no events; a malformed line is skipped.
func simLines(path string, offset int64, f func(gpu.Event)) int64 {
	file, err := os.Open(path)
	if err != nil {
		return offset
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return offset
	}
	if info.Size() < offset {
		// Truncated or replaced: start again.
		offset = 0
	}
	if info.Size() == offset {
		return offset
	}
	r := bufio.NewReader(io.NewSectionReader(file, offset, info.Size()-offset))
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			// No newline yet: the writer has not finished the line.
			return offset
		}
		offset += int64(len(line))
		var e gpu.Event
		if line = bytes.TrimSpace(line); len(line) > 0 && json.Unmarshal(line, &e) == nil {
			f(e)
		}
	}
}

// countDBE counts the double-bit ECC events of a GPU in the events file.
func countDBE(path, uuid string) uint64 {
	var n uint64
	simLines(path, 0, func(e gpu.Event) {
		if e.UUID == uuid && e.Type == gpu.EventDBE {
			n++
		}
	})
	return n
}

// simulateHealth gives a simulated machine's GPUs stats, health and
// events:
//   - stats: idle (no utilisation, no memory used, 60 W, 35 °C), no corrected
//     ECC errors, and an uncorrected one per "dbe" line of the events file;
//   - a GPU that the faults file names is lost: everything but its identity
//     fails with ERROR_GPU_IS_LOST;
//   - events: the event set reads the lines appended to the events file
//     after it was created.
func simulateHealth(srv *server.Server, simDir string, faults map[string]string) error {
	events := ""
	if simDir != "" {
		events = filepath.Join(simDir, SimEventsFile)
	}
	byUUID := map[string]*server.Device{}
	for i, nd := range srv.Devices {
		d, ok := nd.(*server.Device)
		if !ok {
			return fmt.Errorf("simulated GPU %d is a %T: %w", i, nd, api.ErrInvalid)
		}
		byUUID[d.UUID] = d
		uuid := d.UUID
		_, lost := faults[uuid]
		memory := gonvml.Memory{Total: d.MemoryInfo.Total, Free: d.MemoryInfo.Total}
		d.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
			if lost {
				return gonvml.Memory{}, gonvml.ERROR_GPU_IS_LOST
			}
			return memory, gonvml.SUCCESS
		}
		d.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) {
			if lost {
				return gonvml.Utilization{}, gonvml.ERROR_GPU_IS_LOST
			}
			return gonvml.Utilization{}, gonvml.SUCCESS
		}
		d.GetPowerUsageFunc = func() (uint32, gonvml.Return) {
			if lost {
				return 0, gonvml.ERROR_GPU_IS_LOST
			}
			return simPowerMilliwatts, gonvml.SUCCESS
		}
		d.GetTemperatureFunc = func(sensor gonvml.TemperatureSensors) (uint32, gonvml.Return) {
			switch {
			case lost:
				return 0, gonvml.ERROR_GPU_IS_LOST
			case sensor != gonvml.TEMPERATURE_GPU:
				return 0, gonvml.ERROR_INVALID_ARGUMENT
			}
			return simTemperature, gonvml.SUCCESS
		}
		d.GetTotalEccErrorsFunc = func(kind gonvml.MemoryErrorType, counter gonvml.EccCounterType) (uint64, gonvml.Return) {
			switch {
			case lost:
				return 0, gonvml.ERROR_GPU_IS_LOST
			case kind == gonvml.MEMORY_ERROR_TYPE_UNCORRECTED && events != "":
				return countDBE(events, uuid), gonvml.SUCCESS
			}
			return 0, gonvml.SUCCESS
		}
		d.GetRetiredPagesPendingStatusFunc = func() (gonvml.EnableState, gonvml.Return) {
			if lost {
				return 0, gonvml.ERROR_GPU_IS_LOST
			}
			return gonvml.FEATURE_DISABLED, gonvml.SUCCESS
		}
		d.GetRemappedRowsFunc = func() (int, int, bool, bool, gonvml.Return) {
			if lost {
				return 0, 0, false, false, gonvml.ERROR_GPU_IS_LOST
			}
			return 0, 0, false, false, gonvml.SUCCESS
		}
		d.GetSupportedEventTypesFunc = func() (uint64, gonvml.Return) {
			if lost {
				return 0, gonvml.ERROR_GPU_IS_LOST
			}
			return simEvents, gonvml.SUCCESS
		}
		d.RegisterEventsFunc = func(types uint64, set gonvml.EventSet) gonvml.Return {
			s, ok := set.(*simEventSet)
			switch {
			case lost:
				return gonvml.ERROR_GPU_IS_LOST
			case !ok:
				return gonvml.ERROR_INVALID_ARGUMENT
			case types&^simEvents != 0:
				return gonvml.ERROR_NOT_SUPPORTED
			}
			s.register(uuid, types)
			return gonvml.SUCCESS
		}
	}
	srv.EventSetCreateFunc = func() (gonvml.EventSet, gonvml.Return) {
		return newSimEventSet(events, byUUID), gonvml.SUCCESS
	}
	return nil
}

// simEventSet is an event set of a simulated machine: its events are the
// lines appended to the events file after it was created, for the GPUs and
// event types registered with it.
type simEventSet struct {
	mock.EventSet
	path    string
	devices map[string]*server.Device

	mu         sync.Mutex
	registered map[string]uint64
	offset     int64
	pending    []gonvml.EventData
	freed      bool
}

var _ gonvml.EventSet = (*simEventSet)(nil)

func newSimEventSet(path string, devices map[string]*server.Device) *simEventSet {
	s := &simEventSet{path: path, devices: devices, registered: map[string]uint64{}}
	if path != "" {
		if info, err := os.Stat(path); err == nil {
			s.offset = info.Size()
		}
	}
	s.WaitFunc = s.wait
	s.FreeFunc = func() gonvml.Return {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.freed = true
		return gonvml.SUCCESS
	}
	return s
}

func (s *simEventSet) register(uuid string, types uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registered[uuid] |= types
}

// wait returns the next event, looking at the file every simPoll until
// timeoutMs has passed.
func (s *simEventSet) wait(timeoutMs uint32) (gonvml.EventData, gonvml.Return) {
	deadline := time.Now().Add(time.Duration(timeoutMs) * time.Millisecond)
	for {
		e, ret := s.next()
		if ret != gonvml.ERROR_TIMEOUT {
			return e, ret
		}
		left := time.Until(deadline)
		if left <= 0 {
			return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
		}
		time.Sleep(min(left, simPoll))
	}
}

func (s *simEventSet) next() (gonvml.EventData, gonvml.Return) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.freed {
		return gonvml.EventData{}, gonvml.ERROR_UNINITIALIZED
	}
	if len(s.pending) == 0 && s.path != "" {
		s.offset = simLines(s.path, s.offset, func(e gpu.Event) {
			d, ok := s.devices[e.UUID]
			if !ok {
				return
			}
			data := gonvml.EventData{Device: d, GpuInstanceId: wholeGPU, ComputeInstanceId: wholeGPU}
			if e.GPUInstance != nil {
				data.GpuInstanceId = *e.GPUInstance
			}
			if e.ComputeInstance != nil {
				data.ComputeInstanceId = *e.ComputeInstance
			}
			switch e.Type {
			case gpu.EventXID:
				data.EventType, data.EventData = gonvml.EventTypeXidCriticalError, e.XID
			case gpu.EventDBE:
				data.EventType = gonvml.EventTypeDoubleBitEccError
			default:
				return
			}
			if s.registered[e.UUID]&data.EventType != 0 {
				s.pending = append(s.pending, data)
			}
		})
	}
	if len(s.pending) == 0 {
		return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
	}
	e := s.pending[0]
	s.pending = s.pending[1:]
	return e, gonvml.SUCCESS
}
