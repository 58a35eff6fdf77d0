package manager

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/internal/atomicfile"
)

// Inject sends an NVML event from a GPU of a simulated machine: it is
// appended to the simulation's events.jsonl, which the helper's simulated
// event set reports to caisson-nvml watch as NVML would.
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
	f, err := os.OpenFile(filepath.Join(m.simDir(), "events.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SetFault makes a simulated GPU fail its probes for reason; an empty
// reason lets it pass again.
func (m *Manager) SetFault(uuid, reason string) error {
	if err := m.simulatedOnly(); err != nil {
		return err
	}
	p := filepath.Join(m.simDir(), "faults.json")
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

func (m *Manager) simulatedOnly() error {
	if !gpu.Simulated(m.cfg.Backend) {
		return fmt.Errorf("GPU %s is not simulated: events and faults can only be injected with a simulated backend: %w", m.cfg.Backend, api.ErrInvalid)
	}
	return nil
}
