package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/internal/atomicfile"
)

// Inject sends an NVML event from a GPU of a simulated machine (one of its
// MIG devices when ev names its instances): it is appended to the
// simulation's events.jsonl, which the helper's simulated event set
// reports to caisson-nvml watch as NVML would.
func (m *Manager) Inject(ev gpu.Event) error {
	if err := m.simulatedOnly(); err != nil {
		return err
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.simDir(), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(m.simDir(), gpu.SimEventsFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SetFault makes a simulated GPU or MIG device fail its probes for reason;
// an empty reason lets it pass again.
func (m *Manager) SetFault(uuid, reason string) error {
	if err := m.simulatedOnly(); err != nil {
		return err
	}
	p := filepath.Join(m.simDir(), gpu.SimFaultsFile)
	faults := map[string]string{}
	if b, err := os.ReadFile(p); err == nil {
		if err := json.Unmarshal(b, &faults); err != nil {
			return fmt.Errorf("%s: %v: %w", p, err, api.ErrInvalid)
		}
	}
	if reason == "" {
		delete(faults, uuid)
	} else {
		faults[uuid] = reason
	}
	b, err := json.MarshalIndent(faults, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.simDir(), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(p, append(b, '\n'), 0o600, false)
}

// SetMIG sets the MIG layout of GPU uuid of a simulated machine: MIG mode
// on with a GPU instance of each profile, in order (a compute instance
// profile such as 1c.3g.20gb fills its GPU instance with compute instances
// of that size), or off when profiles is empty. caisson-nvml makes the
// instances at every run from the simulation's mig.json, so the change is
// written there; then the GPUs are discovered again, which refreshes the
// cached inventory, regenerates the CDI spec and makes the MIG devices'
// fake nodes. It returns the GPU as it is now.
//
// It holds the state lock throughout, so no container is given the GPU or
// one of its MIG devices meanwhile. A GPU held by a container, whole or
// any of its MIG devices, is refused with an error wrapping
// api.ErrConflict; an unknown GPU wraps api.ErrNotFound; a layout the GPU
// cannot hold (an unknown profile, more instances than fit) wraps
// api.ErrInvalid and changes nothing. Health marks of MIG devices that the
// change destroys are dropped.
func (m *Manager) SetMIG(ctx context.Context, uuid string, profiles []string) (*gpu.Device, error) {
	if err := m.simulatedOnly(); err != nil {
		return nil, err
	}
	var out *gpu.Device
	err := m.update(func(s *state) (bool, error) {
		inv, err := m.Inventory(ctx, false)
		if err != nil {
			return false, err
		}
		i := slices.IndexFunc(inv.Devices, func(d gpu.Device) bool { return d.UUID == uuid })
		if i < 0 {
			return false, fmt.Errorf("no GPU %s on this simulated machine (caisson gpu ls lists them): %w", uuid, api.ErrNotFound)
		}
		d := inv.Devices[i]
		holders := map[string]bool{}
		if h, ok := s.Allocations[d.UUID]; ok {
			holders[short(h)] = true
		}
		for _, mig := range d.MIGDevices {
			if h, ok := s.Allocations[mig.UUID]; ok {
				holders[short(h)] = true
			}
		}
		if len(holders) > 0 {
			return false, fmt.Errorf("GPU %d (%s) is held by container %s: its MIG layout cannot change until the container is removed: %w",
				d.Index, d.UUID, strings.Join(slices.Sorted(maps.Keys(holders)), ", "), api.ErrConflict)
		}
		path := filepath.Join(m.simDir(), gpu.SimMIGFile)
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
		layout := gpu.MIGLayout{}
		if len(old) > 0 {
			if err := json.Unmarshal(old, &layout); err != nil {
				return false, fmt.Errorf("%s: %v: %w", path, err, api.ErrInvalid)
			}
		}
		if len(profiles) == 0 {
			delete(layout, d.UUID)
		} else {
			layout[d.UUID] = slices.Clone(profiles)
		}
		b, err := json.MarshalIndent(layout, "", "  ")
		if err != nil {
			return false, err
		}
		if err := os.MkdirAll(m.simDir(), 0o700); err != nil {
			return false, err
		}
		if err := atomicfile.Write(path, append(b, '\n'), 0o600, false); err != nil {
			return false, err
		}
		now, err := m.Discover(ctx)
		if err != nil {
			// Put the old layout back: the inventory, spec and nodes are
			// still those of the old one.
			var rerr error
			if old == nil {
				rerr = os.Remove(path)
			} else {
				rerr = atomicfile.Write(path, old, 0o600, false)
			}
			if rerr != nil {
				return false, errors.Join(err, fmt.Errorf("restore %s: %w", path, rerr))
			}
			return false, err
		}
		j := slices.IndexFunc(now.Devices, func(g gpu.Device) bool { return g.UUID == uuid })
		if j < 0 {
			return false, fmt.Errorf("GPU %s is gone after its MIG layout changed: %w", uuid, api.ErrNotFound)
		}
		out = &now.Devices[j]
		live := map[string]bool{}
		for _, mig := range out.MIGDevices {
			live[mig.UUID] = true
		}
		changed := false
		for _, mig := range d.MIGDevices {
			if _, marked := s.Unhealthy[mig.UUID]; marked && !live[mig.UUID] {
				delete(s.Unhealthy, mig.UUID)
				changed = true
			}
		}
		return changed, nil
	})
	if err != nil {
		return nil, err
	}
	m.log.Info("simulated MIG layout changed", "gpu", out.Index, "uuid", out.UUID, "profiles", profiles, "mig_devices", len(out.MIGDevices))
	return out, nil
}

func (m *Manager) simulatedOnly() error {
	if !gpu.Simulated(m.cfg.Backend) {
		return fmt.Errorf("GPU %s is not simulated: events, faults and MIG layouts can only be set with a simulated backend: %w", m.cfg.Backend, api.ErrInvalid)
	}
	return nil
}
