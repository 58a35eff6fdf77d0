package manager

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/caisson/caisson/gpu"
)

// applicationXIDs are XIDs that a program's own fault causes (an illegal
// address, a kernel that stopped, a preemption cleanup...): the GPU is fine,
// so they do not make it unhealthy. The list is the one NVIDIA's device
// plugin skips: 13 graphics engine exception, 31 GPU memory page fault, 43
// GPU stopped processing, 45 preemptive cleanup, 68 video decoder
// exception, 109 context switch timeout.
var applicationXIDs = map[uint64]bool{13: true, 31: true, 43: true, 45: true, 68: true, 109: true}

// Critical says whether an event takes its GPU out of service, and why.
func Critical(ev gpu.Event) (reason string, critical bool) {
	switch ev.Type {
	case gpu.EventXID:
		if applicationXIDs[ev.XID] {
			return "", false
		}
		return fmt.Sprintf("XID %d", ev.XID), true
	case gpu.EventDBE:
		return "double-bit ECC error", true
	}
	return "", false
}

// Change is a health change (or a probe that found no change) that Watch
// reports.
type Change struct {
	// UUID is the GPU's, or the MIG device's.
	UUID string
	// Index is the GPU's, or the MIG device's GPU's.
	Index int
	// Healthy is the GPU's health after the change.
	Healthy bool
	// Reason: the event or the failed probe.
	Reason string
	// Changed is false for a probe that found an unhealthy GPU still unfit,
	// and for an event on a GPU that was already unhealthy.
	Changed bool
	// Event is what caused it; nil for a probe.
	Event *gpu.Event
}

// Watch follows the GPUs' NVML events until ctx is done: a critical event
// (Critical) marks its GPU unhealthy, and with it the GPU's MIG devices; an
// event that names a GPU instance (NVML's GI/CI filter) marks only the MIG
// devices of that instance, or of that compute instance when it names one.
// Every reprobe, each unhealthy GPU or MIG device is probed and marked
// healthy again when it answers and is fit. It probes the ones already
// marked at once, so marks from before a restart are checked. ready is
// called once the helper watches every GPU; report gets every change. It
// returns nil when ctx ends, or why the event stream broke.
func (m *Manager) Watch(ctx context.Context, reprobe time.Duration, ready func(), report func(Change)) error {
	inv, err := m.Inventory(ctx, false)
	if err != nil {
		return err
	}
	if inv.Source == "procfs" {
		return fmt.Errorf("GPU health needs NVML: %s", inv.Reason)
	}
	events, stop, err := m.events(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	if err := m.reprobe(ctx, report); err != nil {
		return err
	}
	tick := time.NewTicker(reprobe)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := m.reprobe(ctx, report); err != nil {
				return err
			}
		case ev, ok := <-events:
			if !ok {
				err := stop()
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("%s watch stopped: %v", HelperName, err)
			}
			switch ev.Type {
			case gpu.EventReady:
				if ready != nil {
					ready()
				}
				continue
			case gpu.EventUnwatched:
				m.log.Warn("GPU events not available", "gpu", ev.UUID, "reason", ev.Reason)
				continue
			}
			reason, critical := Critical(ev)
			if !critical {
				m.log.Info("GPU event caused by an application, GPU stays in service", "gpu", ev.UUID, "type", ev.Type, "xid", ev.XID)
				continue
			}
			// The inventory of now: the MIG layout may have changed since
			// the watch started.
			inv, err := m.Inventory(ctx, false)
			if err != nil {
				return err
			}
			index, targets := eventTargets(inv, ev)
			if len(targets) == 0 {
				m.log.Warn("event for a GPU or MIG instance not in the inventory", "gpu", ev.UUID, "gpu_instance", ev.GPUInstance, "compute_instance", ev.ComputeInstance, "reason", reason)
				continue
			}
			if ev.Time.IsZero() {
				ev.Time = time.Now()
			}
			for _, u := range targets {
				changed, err := m.MarkUnhealthy(u, reason, ev.Time)
				if err != nil {
					return err
				}
				e := ev
				report(Change{UUID: u, Index: index, Healthy: false, Reason: reason, Changed: changed, Event: &e})
			}
		}
	}
}

// eventTargets are what an event takes out of service: its GPU, or, when
// it names a GPU instance of a GPU in MIG mode, the MIG devices of that
// instance (of that compute instance when it names one; none when no MIG
// device has them); and the GPU's index. Instance IDs on an event of a GPU
// not in MIG mode mean nothing: the GPU is taken out.
func eventTargets(inv *gpu.Inventory, ev gpu.Event) (index int, uuids []string) {
	i := slices.IndexFunc(inv.Devices, func(d gpu.Device) bool { return d.UUID == ev.UUID })
	if i < 0 {
		return -1, nil
	}
	d := inv.Devices[i]
	if ev.GPUInstance == nil || !d.MIG {
		return d.Index, []string{d.UUID}
	}
	for _, mig := range d.MIGDevices {
		if uint32(mig.GPUInstance) == *ev.GPUInstance && (ev.ComputeInstance == nil || uint32(mig.ComputeInstance) == *ev.ComputeInstance) {
			uuids = append(uuids, mig.UUID)
		}
	}
	return d.Index, uuids
}

// reprobe probes every unhealthy GPU and MIG device of the inventory.
func (m *Manager) reprobe(ctx context.Context, report func(Change)) error {
	inv, err := m.Inventory(ctx, false)
	if err != nil {
		return err
	}
	index := map[string]int{}
	for _, d := range inv.Devices {
		index[d.UUID] = d.Index
		for _, mig := range d.MIGDevices {
			index[mig.UUID] = d.Index
		}
	}
	marks, err := m.Unhealthy()
	if err != nil {
		return err
	}
	uuids := slices.SortedFunc(maps.Keys(marks), func(a, b string) int {
		if c := index[a] - index[b]; c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, uuid := range uuids {
		i, known := index[uuid]
		if !known {
			continue
		}
		p, err := m.Probe(ctx, uuid)
		if err != nil {
			m.log.Warn("GPU probe failed", "gpu", uuid, "err", err)
			continue
		}
		if !p.OK {
			report(Change{UUID: uuid, Index: i, Healthy: false, Reason: p.Reason})
			continue
		}
		changed, err := m.MarkHealthy(uuid)
		if err != nil {
			return err
		}
		if changed {
			report(Change{UUID: uuid, Index: i, Healthy: true, Reason: "probe passed", Changed: true})
		}
	}
	return nil
}
