package manager

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// Grant is what a container was given.
type Grant struct {
	Devices []gpu.Device
	// NUMANodes are the granted GPUs' NUMA nodes, and CPUs the CPUs nearest
	// them: the container's cpuset/mems hint.
	NUMANodes []int
	CPUs      []int
}

// UUIDs are the granted GPUs' UUIDs, in index order.
func (g *Grant) UUIDs() []string {
	out := make([]string, len(g.Devices))
	for i, d := range g.Devices {
		out[i] = d.UUID
	}
	return out
}

// Allocate gives container id the GPUs req asks for and records it before
// returning, so no other caisson process and no restart hands them out
// again. A count gets the best-linked set of the free, healthy GPUs (see
// gpu/topology's Allocate). A container that already holds GPUs gets the
// same ones back. Errors: a request this host can never meet wraps
// api.ErrInvalid, an unknown UUID api.ErrNotFound, GPUs held by others or
// unhealthy api.ErrUnavailable.
func (m *Manager) Allocate(ctx context.Context, id string, req api.GPURequest) (*Grant, error) {
	inv, err := m.Inventory(ctx, false)
	if err != nil {
		return nil, err
	}
	if len(inv.Devices) == 0 {
		why := inv.Reason
		if why == "" {
			why = "none found"
		}
		return nil, fmt.Errorf("--gpus %s: this host has no GPU (%s): %w", req, why, api.ErrUnavailable)
	}
	var grant *Grant
	err = m.update(func(s *state) (bool, error) {
		var held []int
		for i, d := range inv.Devices {
			if s.Allocations[d.UUID] == id {
				held = append(held, i)
			}
		}
		if len(held) > 0 {
			grant = m.grant(inv, held)
			return false, nil
		}
		picked, err := m.pick(inv, s, req)
		if err != nil {
			return false, err
		}
		for _, i := range picked {
			s.Allocations[inv.Devices[i].UUID] = id
		}
		grant = m.grant(inv, picked)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	m.log.Info("gpus allocated", "container", id, "gpus", grant.UUIDs())
	return grant, nil
}

func (m *Manager) grant(inv *gpu.Inventory, idx []int) *Grant {
	g := &Grant{}
	for _, i := range idx {
		g.Devices = append(g.Devices, inv.Devices[i])
		if n := inv.Devices[i].NUMANode; n >= 0 && !slices.Contains(g.NUMANodes, n) {
			g.NUMANodes = append(g.NUMANodes, n)
		}
		g.CPUs = append(g.CPUs, inv.Devices[i].CPUAffinity...)
	}
	slices.Sort(g.NUMANodes)
	slices.Sort(g.CPUs)
	g.CPUs = slices.Compact(g.CPUs)
	return g
}

// pick chooses the GPUs for req.
func (m *Manager) pick(inv *gpu.Inventory, s *state, req api.GPURequest) ([]int, error) {
	total := len(inv.Devices)
	busy := func(i int) string {
		u := inv.Devices[i].UUID
		if h, ok := s.Allocations[u]; ok {
			return "held by container " + short(h)
		}
		if mk, ok := s.Unhealthy[u]; ok {
			return "unhealthy: " + mk.Reason
		}
		return ""
	}
	var free []int
	held, sick := 0, 0
	for i, d := range inv.Devices {
		switch {
		case s.Allocations[d.UUID] != "":
			held++
		case s.Unhealthy[d.UUID].Reason != "":
			sick++
		default:
			free = append(free, i)
		}
	}
	switch {
	case len(req.UUIDs) > 0:
		var out []int
		for _, u := range req.UUIDs {
			i := slices.IndexFunc(inv.Devices, func(d gpu.Device) bool { return d.UUID == u })
			if i < 0 {
				return nil, fmt.Errorf("--gpus: no GPU %s on this host (caisson gpu ls lists them): %w", u, api.ErrNotFound)
			}
			if why := busy(i); why != "" {
				return nil, fmt.Errorf("--gpus: GPU %d (%s) is %s: %w", i, u, why, api.ErrUnavailable)
			}
			out = append(out, i)
		}
		slices.Sort(out)
		return out, nil
	case req.All:
		for i := range inv.Devices {
			if why := busy(i); why != "" {
				return nil, fmt.Errorf("--gpus all: GPU %d (%s) is %s: %w", i, inv.Devices[i].UUID, why, api.ErrUnavailable)
			}
		}
		all := make([]int, total)
		for i := range all {
			all[i] = i
		}
		return all, nil
	case req.Count > total:
		return nil, fmt.Errorf("--gpus %d: this host has %d GPUs: %w", req.Count, total, api.ErrInvalid)
	case req.Count > len(free):
		return nil, fmt.Errorf("--gpus %d: %d of this host's %d GPUs are free and healthy (%d held by containers, %d unhealthy): %w",
			req.Count, len(free), total, held, sick, api.ErrUnavailable)
	case req.Count <= 0:
		return nil, fmt.Errorf("--gpus %d: ask for at least one GPU: %w", req.Count, api.ErrInvalid)
	}
	if inv.Topology == nil {
		return free[:req.Count], nil
	}
	return inv.Topology.Allocate(free, req.Count)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Release frees every GPU container id holds. Unknown IDs are not an error.
// Every container's cleanup calls it, so a container that holds nothing is
// let go after a look at the state without the lock (the state is replaced
// by rename, so an unlocked read sees a whole one).
func (m *Manager) Release(id string) error {
	if s, err := m.load(); err == nil && !slices.Contains(slices.Collect(maps.Values(s.Allocations)), id) {
		return nil
	}
	var freed []string
	err := m.update(func(s *state) (bool, error) {
		for u, h := range s.Allocations {
			if h == id {
				delete(s.Allocations, u)
				freed = append(freed, u)
			}
		}
		return len(freed) > 0, nil
	})
	if err == nil && len(freed) > 0 {
		slices.Sort(freed)
		m.log.Info("gpus released", "container", id, "gpus", freed)
	}
	return err
}

// Reconcile frees the GPUs of every container that keep does not list:
// containers that are gone (crashed launches, removed while caisson was
// down).
func (m *Manager) Reconcile(keep func(id string) bool) error {
	return m.update(func(s *state) (bool, error) {
		changed := false
		for u, h := range s.Allocations {
			if !keep(h) {
				m.log.Info("gpu of a container that is gone released", "container", h, "gpu", u)
				delete(s.Allocations, u)
				changed = true
			}
		}
		return changed, nil
	})
}

// Held returns the GPUs container id holds, in index order.
func (m *Manager) Held(ctx context.Context, id string) ([]gpu.Device, error) {
	s, err := m.read()
	if err != nil {
		return nil, err
	}
	inv, err := m.Inventory(ctx, false)
	if err != nil {
		return nil, err
	}
	var out []gpu.Device
	for _, d := range inv.Devices {
		if s.Allocations[d.UUID] == id {
			out = append(out, d)
		}
	}
	return out, nil
}

// Status is one GPU as caisson gpu ls shows it.
type Status struct {
	gpu.Device
	// Container holds the GPU; empty when it is free.
	Container string `json:"container,omitempty"`
	Healthy   bool   `json:"healthy"`
	// Unhealthy says why, when it is not.
	Unhealthy *Mark `json:"unhealthy,omitempty"`
}

// List returns every GPU with its holder and health.
func (m *Manager) List(ctx context.Context, refresh bool) (*gpu.Inventory, []Status, error) {
	inv, err := m.Inventory(ctx, refresh)
	if err != nil {
		return nil, nil, err
	}
	s, err := m.read()
	if err != nil {
		return nil, nil, err
	}
	out := []Status{}
	for _, d := range inv.Devices {
		st := Status{Device: d, Container: s.Allocations[d.UUID], Healthy: true}
		if mk, ok := s.Unhealthy[d.UUID]; ok {
			st.Healthy, st.Unhealthy = false, &mk
		}
		out = append(out, st)
	}
	return inv, out, nil
}

// MarkUnhealthy takes a GPU out of service; it reports whether it was
// healthy before. A container holding it keeps it (it may be able to finish
// or fail on its own), but no new one gets it.
func (m *Manager) MarkUnhealthy(uuid, reason string, now time.Time) (bool, error) {
	changed := false
	err := m.update(func(s *state) (bool, error) {
		if _, ok := s.Unhealthy[uuid]; ok {
			return false, nil
		}
		s.Unhealthy[uuid] = Mark{Reason: reason, Since: now.UTC()}
		changed = true
		return true, nil
	})
	return changed, err
}

// MarkHealthy puts a GPU back in service; it reports whether it was
// unhealthy.
func (m *Manager) MarkHealthy(uuid string) (bool, error) {
	changed := false
	err := m.update(func(s *state) (bool, error) {
		if _, ok := s.Unhealthy[uuid]; !ok {
			return false, nil
		}
		delete(s.Unhealthy, uuid)
		changed = true
		return true, nil
	})
	return changed, err
}

// Unhealthy returns the GPUs out of service and why.
func (m *Manager) Unhealthy() (map[string]Mark, error) {
	s, err := m.read()
	if err != nil {
		return nil, err
	}
	return s.Unhealthy, nil
}

// Stats samples the counters of the given GPUs (all when none are given).
// GPUs read from /proc/driver/nvidia have none: the result is empty.
func (m *Manager) Stats(ctx context.Context, uuids ...string) ([]gpu.DeviceStats, error) {
	inv, err := m.Inventory(ctx, false)
	if err != nil || inv.Source == "procfs" || len(inv.Devices) == 0 {
		return nil, err
	}
	args := []string{"stats"}
	for _, u := range uuids {
		args = append(args, "--uuid", u)
	}
	var s gpu.Stats
	if err := m.helper(ctx, &s, args...); err != nil {
		return nil, err
	}
	return s.Devices, nil
}

// Probe asks whether a GPU answers and is fit for work.
func (m *Manager) Probe(ctx context.Context, uuid string) (*gpu.Probe, error) {
	var p gpu.Probe
	if err := m.helper(ctx, &p, "probe", "--uuid", uuid); err != nil {
		return nil, err
	}
	return &p, nil
}
