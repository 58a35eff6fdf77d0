package manager

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// Grant is what a container was given, in index order: whole GPUs, and
// GPUs in MIG mode whose MIGDevices are only the MIG devices granted.
type Grant struct {
	Devices []gpu.Device
	// NUMANodes are the granted GPUs' NUMA nodes, and CPUs the CPUs nearest
	// them: the container's cpuset/mems hint.
	NUMANodes []int
	CPUs      []int
}

// UUIDs are the UUIDs of the granted GPUs and MIG devices, the names of
// their CDI devices, in index order.
func (g *Grant) UUIDs() []string {
	var out []string
	for _, d := range g.Devices {
		if !d.MIG {
			out = append(out, d.UUID)
			continue
		}
		for _, mig := range d.MIGDevices {
			out = append(out, mig.UUID)
		}
	}
	return out
}

// MIG reports whether the grant holds MIG devices.
func (g *Grant) MIG() bool {
	return slices.ContainsFunc(g.Devices, func(d gpu.Device) bool { return d.MIG })
}

// slot is a GPU (mig -1) or one of its MIG devices, by position in the
// inventory.
type slot struct{ dev, mig int }

func (sl slot) uuid(inv *gpu.Inventory) string {
	if sl.mig < 0 {
		return inv.Devices[sl.dev].UUID
	}
	return inv.Devices[sl.dev].MIGDevices[sl.mig].UUID
}

// Allocate gives container id the GPUs or MIG devices req asks for and
// records it before returning, so no other caisson process and no restart
// hands them out again. A count gets the best-linked set of the free,
// healthy GPUs that are not in MIG mode (see gpu/topology's Allocate); a
// GPU in MIG mode is never given whole, only its MIG devices are, by UUID
// or by profile (packed onto GPUs whose MIG devices are already partly
// held, so that untouched GPUs stay free). A container that already holds
// GPUs gets the same ones back. Errors: a request this host can never meet
// (more GPUs or MIG devices of a profile than it has, a profile it does not
// have, a GPU in MIG mode named whole) wraps api.ErrInvalid, an unknown
// UUID api.ErrNotFound, GPUs held by others or unhealthy api.ErrUnavailable;
// each is an *api.FieldError about "gpus".
func (m *Manager) Allocate(ctx context.Context, id string, req api.GPURequest) (*Grant, error) {
	var grant *Grant
	err := m.update(func(s *state) (bool, error) {
		// The inventory is read under the state lock: a MIG layout change,
		// which holds it, cannot come between the read and the pick.
		inv, err := m.Inventory(ctx, false)
		if err != nil {
			return false, err
		}
		if len(inv.Devices) == 0 {
			why := inv.Reason
			if why == "" {
				why = "none found"
			}
			return false, gpusError(req, fmt.Errorf("this host has no GPU (%s): %w", why, api.ErrUnavailable))
		}
		if held := holdings(inv, s, id); len(held) > 0 {
			grant = m.grant(inv, held)
			return false, nil
		}
		picked, err := m.pick(inv, s, req)
		if err != nil {
			return false, gpusError(req, err)
		}
		for _, sl := range picked {
			s.Allocations[sl.uuid(inv)] = id
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

// holdings are the GPUs and MIG devices container id holds.
func holdings(inv *gpu.Inventory, s *state, id string) []slot {
	var out []slot
	for i, d := range inv.Devices {
		if s.Allocations[d.UUID] == id {
			out = append(out, slot{i, -1})
		}
		for j, mig := range d.MIGDevices {
			if s.Allocations[mig.UUID] == id {
				out = append(out, slot{i, j})
			}
		}
	}
	return out
}

func (m *Manager) grant(inv *gpu.Inventory, slots []slot) *Grant {
	slices.SortFunc(slots, func(a, b slot) int {
		if a.dev != b.dev {
			return a.dev - b.dev
		}
		return a.mig - b.mig
	})
	g := &Grant{}
	for k, sl := range slots {
		d := inv.Devices[sl.dev]
		if k > 0 && slots[k-1].dev == sl.dev {
			last := &g.Devices[len(g.Devices)-1]
			last.MIGDevices = append(last.MIGDevices, d.MIGDevices[sl.mig])
			continue
		}
		if sl.mig < 0 {
			d.MIGDevices = nil
		} else {
			d.MIGDevices = []gpu.MIGDevice{d.MIGDevices[sl.mig]}
		}
		g.Devices = append(g.Devices, d)
		if n := d.NUMANode; n >= 0 && !slices.Contains(g.NUMANodes, n) {
			g.NUMANodes = append(g.NUMANodes, n)
		}
		g.CPUs = append(g.CPUs, d.CPUAffinity...)
	}
	slices.Sort(g.NUMANodes)
	slices.Sort(g.CPUs)
	g.CPUs = slices.Compact(g.CPUs)
	return g
}

// wholeBusy says why GPU i cannot be given whole, or "".
func wholeBusy(inv *gpu.Inventory, s *state, i int) string {
	u := inv.Devices[i].UUID
	if h, ok := s.Allocations[u]; ok {
		return "held by container " + short(h)
	}
	if mk, ok := s.Unhealthy[u]; ok {
		return "unhealthy: " + mk.Reason
	}
	return ""
}

// migBusy says why MIG device j of GPU i cannot be given, or "". held is
// true when a container holds it (or its whole GPU).
func migBusy(inv *gpu.Inventory, s *state, i, j int) (why string, held bool) {
	d := inv.Devices[i]
	u := d.MIGDevices[j].UUID
	if h, ok := s.Allocations[u]; ok {
		return "held by container " + short(h), true
	}
	if h, ok := s.Allocations[d.UUID]; ok {
		return fmt.Sprintf("part of GPU %d, which container %s holds whole", d.Index, short(h)), true
	}
	if mk, ok := effectiveMark(inv, s, i, j); ok {
		return "unhealthy: " + mk.Reason, false
	}
	return "", false
}

// effectiveMark is why MIG device j of GPU i is out of service: its own
// mark, or its GPU's (an error of the whole GPU takes out every MIG device
// on it).
func effectiveMark(inv *gpu.Inventory, s *state, i, j int) (Mark, bool) {
	d := inv.Devices[i]
	if mk, ok := s.Unhealthy[d.MIGDevices[j].UUID]; ok {
		return mk, true
	}
	if mk, ok := s.Unhealthy[d.UUID]; ok {
		mk.Reason = fmt.Sprintf("GPU %d: %s", d.Index, mk.Reason)
		return mk, true
	}
	return Mark{}, false
}

// gpusError says that err is about the request, the spec's "gpus".
func gpusError(req api.GPURequest, err error) error {
	return &api.FieldError{Field: "gpus", Value: req.String(), Err: err}
}

// pick chooses the GPUs or MIG devices for req.
func (m *Manager) pick(inv *gpu.Inventory, s *state, req api.GPURequest) ([]slot, error) {
	switch {
	case len(req.UUIDs) > 0:
		return pickUUIDs(inv, s, req.UUIDs)
	case req.MIGProfile != "":
		return pickMIG(inv, s, req)
	}
	var whole, free, inMIG []int
	held, sick := 0, 0
	for i, d := range inv.Devices {
		if d.MIG {
			inMIG = append(inMIG, d.Index)
			continue
		}
		whole = append(whole, i)
		switch {
		case s.Allocations[d.UUID] != "":
			held++
		case s.Unhealthy[d.UUID].Reason != "":
			sick++
		default:
			free = append(free, i)
		}
	}
	total := len(whole)
	migNote := ""
	if len(inMIG) > 0 {
		migNote = fmt.Sprintf("; %s in MIG mode: ask for MIG devices by profile, mig-PROFILE", gpuList(inMIG))
	}
	switch {
	case req.All && total == 0:
		return nil, fmt.Errorf("every GPU of this host is in MIG mode; ask for MIG devices by profile, mig-PROFILE: %w", api.ErrInvalid)
	case req.All:
		for _, i := range whole {
			if why := wholeBusy(inv, s, i); why != "" {
				return nil, fmt.Errorf("GPU %d (%s) is %s: %w", i, inv.Devices[i].UUID, why, api.ErrUnavailable)
			}
		}
		return wholeSlots(whole), nil
	case req.Count <= 0:
		return nil, fmt.Errorf("ask for at least one GPU: %w", api.ErrInvalid)
	case req.Count > total && len(inMIG) > 0:
		return nil, fmt.Errorf("this host has %d GPUs that are not in MIG mode (%s): %w", total, strings.TrimPrefix(migNote, "; "), api.ErrInvalid)
	case req.Count > total:
		return nil, fmt.Errorf("this host has %d GPUs: %w", total, api.ErrInvalid)
	case req.Count > len(free):
		return nil, fmt.Errorf("%d of this host's %d GPUs are free and healthy (%d held by containers, %d unhealthy%s): %w",
			len(free), total, held, sick, migNote, api.ErrUnavailable)
	}
	if inv.Topology == nil {
		return wholeSlots(free[:req.Count]), nil
	}
	idx, err := inv.Topology.Allocate(free, req.Count)
	if err != nil {
		return nil, err
	}
	return wholeSlots(idx), nil
}

func wholeSlots(idx []int) []slot {
	out := make([]slot, len(idx))
	for k, i := range idx {
		out[k] = slot{i, -1}
	}
	return out
}

// gpuList is "GPU 0 is" or "GPUs 0, 3 are".
func gpuList(idx []int) string {
	if len(idx) == 1 {
		return fmt.Sprintf("GPU %d is", idx[0])
	}
	s := make([]string, len(idx))
	for k, i := range idx {
		s[k] = strconv.Itoa(i)
	}
	return "GPUs " + strings.Join(s, ", ") + " are"
}

// pickUUIDs finds each named GPU or MIG device; each must be free and
// healthy, and a GPU named whole must not be in MIG mode.
func pickUUIDs(inv *gpu.Inventory, s *state, uuids []string) ([]slot, error) {
	var out []slot
	for _, u := range uuids {
		if i := slices.IndexFunc(inv.Devices, func(d gpu.Device) bool { return d.UUID == u }); i >= 0 {
			d := inv.Devices[i]
			if d.MIG {
				return nil, fmt.Errorf("GPU %d (%s) is in MIG mode, so it is not given whole; ask for its MIG devices (mig-PROFILE, or their MIG-… UUIDs: caisson gpu ls lists them): %w",
					d.Index, u, api.ErrInvalid)
			}
			if why := wholeBusy(inv, s, i); why != "" {
				return nil, fmt.Errorf("GPU %d (%s) is %s: %w", d.Index, u, why, api.ErrUnavailable)
			}
			out = append(out, slot{i, -1})
			continue
		}
		i, j, ok := inv.FindMIG(u)
		if !ok {
			what := "GPU"
			if api.IsMIGUUID(u) {
				what = "MIG device"
			}
			return nil, fmt.Errorf("no %s %s on this host (caisson gpu ls lists them): %w", what, u, api.ErrNotFound)
		}
		if why, _ := migBusy(inv, s, i, j); why != "" {
			return nil, fmt.Errorf("MIG device %d:%d (%s) is %s: %w", inv.Devices[i].Index, inv.Devices[i].MIGDevices[j].Index, u, why, api.ErrUnavailable)
		}
		out = append(out, slot{i, j})
	}
	return out, nil
}

// pickMIG takes req.Count free, healthy MIG devices of req.MIGProfile,
// packed: first on the GPUs with the most MIG devices already held, then
// by index, so that GPUs nobody uses stay untouched.
func pickMIG(inv *gpu.Inventory, s *state, req api.GPURequest) ([]slot, error) {
	var all, free []slot
	held, sick := 0, 0
	used := map[int]int{}
	profiles := map[string]int{}
	var names []string
	for i, d := range inv.Devices {
		for j, mig := range d.MIGDevices {
			if profiles[mig.Profile] == 0 {
				names = append(names, mig.Profile)
			}
			profiles[mig.Profile]++
			why, isHeld := migBusy(inv, s, i, j)
			if isHeld {
				used[i]++
			}
			if mig.Profile != req.MIGProfile {
				continue
			}
			all = append(all, slot{i, j})
			switch {
			case isHeld:
				held++
			case why != "":
				sick++
			default:
				free = append(free, slot{i, j})
			}
		}
	}
	switch {
	case len(profiles) == 0:
		return nil, fmt.Errorf("this host has no MIG device (no GPU is in MIG mode): %w", api.ErrInvalid)
	case len(all) == 0:
		have := make([]string, len(names))
		for k, n := range names {
			have[k] = n
			if c := profiles[n]; c > 1 {
				have[k] = fmt.Sprintf("%s ×%d", n, c)
			}
		}
		return nil, fmt.Errorf("this host has no MIG device of profile %s (it has %s; caisson gpu ls lists them): %w",
			req.MIGProfile, strings.Join(have, ", "), api.ErrInvalid)
	case req.Count > len(all):
		return nil, fmt.Errorf("this host has %d MIG devices of profile %s: %w", len(all), req.MIGProfile, api.ErrInvalid)
	case req.Count > len(free):
		return nil, fmt.Errorf("%d of this host's %d %s MIG devices are free and healthy (%d held by containers, %d unhealthy): %w",
			len(free), len(all), req.MIGProfile, held, sick, api.ErrUnavailable)
	}
	slices.SortStableFunc(free, func(a, b slot) int { return used[b.dev] - used[a.dev] })
	return free[:req.Count], nil
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

// Held returns the GPUs container id holds, in index order, as a Grant
// lists them: a GPU in MIG mode with only the MIG devices it holds.
func (m *Manager) Held(ctx context.Context, id string) ([]gpu.Device, error) {
	s, err := m.read()
	if err != nil {
		return nil, err
	}
	inv, err := m.Inventory(ctx, false)
	if err != nil {
		return nil, err
	}
	return m.grant(inv, holdings(inv, s, id)).Devices, nil
}

// Status is one GPU as caisson gpu ls shows it.
type Status struct {
	gpu.Device
	// Container holds the GPU; empty when it is free.
	Container string `json:"container,omitempty"`
	Healthy   bool   `json:"healthy"`
	// Unhealthy says why, when it is not.
	Unhealthy *Mark `json:"unhealthy,omitempty"`
	// MIGDevices are the MIG devices of a GPU in MIG mode with their
	// holders and health (in JSON they replace Device's).
	MIGDevices []MIGStatus `json:"mig_devices,omitempty"`
}

// MIGStatus is one MIG device as caisson gpu ls shows it.
type MIGStatus struct {
	gpu.MIGDevice
	Container string `json:"container,omitempty"`
	Healthy   bool   `json:"healthy"`
	// Unhealthy says why, when it is not: its own error, or its GPU's.
	Unhealthy *Mark `json:"unhealthy,omitempty"`
}

// List returns every GPU with its holder and health, and those of its MIG
// devices.
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
	for i, d := range inv.Devices {
		st := Status{Device: d, Container: s.Allocations[d.UUID], Healthy: true}
		if mk, ok := s.Unhealthy[d.UUID]; ok {
			st.Healthy, st.Unhealthy = false, &mk
		}
		for j, mig := range d.MIGDevices {
			ms := MIGStatus{MIGDevice: mig, Container: s.Allocations[mig.UUID], Healthy: true}
			if mk, ok := effectiveMark(inv, s, i, j); ok {
				ms.Healthy, ms.Unhealthy = false, &mk
			}
			st.MIGDevices = append(st.MIGDevices, ms)
		}
		out = append(out, st)
	}
	return inv, out, nil
}

// MarkUnhealthy takes a GPU or MIG device out of service; it reports
// whether it was healthy before. A container holding it keeps it (it may be
// able to finish or fail on its own), but no new one gets it; a GPU's mark
// also keeps its MIG devices from being given.
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

// Stats samples the counters of the given GPUs or MIG devices (all GPUs
// when none are given).
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

// Probe asks whether a GPU or MIG device answers and is fit for work.
func (m *Manager) Probe(ctx context.Context, uuid string) (*gpu.Probe, error) {
	var p gpu.Probe
	if err := m.helper(ctx, &p, "probe", "--uuid", uuid); err != nil {
		return nil, err
	}
	return &p, nil
}
