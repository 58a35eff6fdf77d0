package manager

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
	UUID  string
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
// (Critical) marks its GPU unhealthy; every reprobe, each unhealthy GPU is
// probed and marked healthy again when it answers and is fit. It probes the
// GPUs already marked at once, so marks from before a restart are checked.
// ready is called once the helper watches every GPU; report gets every
// change. It returns nil when ctx ends, or why the event stream broke.
func (m *Manager) Watch(ctx context.Context, reprobe time.Duration, ready func(), report func(Change)) error {
	inv, err := m.Inventory(ctx, false)
	if err != nil {
		return err
	}
	if inv.Source == "procfs" {
		return fmt.Errorf("GPU health needs NVML: %s", inv.Reason)
	}
	index := map[string]int{}
	for _, d := range inv.Devices {
		index[d.UUID] = d.Index
	}
	events, stop, err := m.events(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	if err := m.reprobe(ctx, index, report); err != nil {
		return err
	}
	tick := time.NewTicker(reprobe)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := m.reprobe(ctx, index, report); err != nil {
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
			i, ok := index[ev.UUID]
			if !ok {
				m.log.Warn("event for a GPU not in the inventory", "gpu", ev.UUID, "reason", reason)
				continue
			}
			if ev.Time.IsZero() {
				ev.Time = time.Now()
			}
			changed, err := m.MarkUnhealthy(ev.UUID, reason, ev.Time)
			if err != nil {
				return err
			}
			e := ev
			report(Change{UUID: ev.UUID, Index: i, Healthy: false, Reason: reason, Changed: changed, Event: &e})
		}
	}
}

// reprobe probes every unhealthy GPU.
func (m *Manager) reprobe(ctx context.Context, index map[string]int, report func(Change)) error {
	marks, err := m.Unhealthy()
	if err != nil {
		return err
	}
	uuids := slices.SortedFunc(maps.Keys(marks), func(a, b string) int { return index[a] - index[b] })
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
