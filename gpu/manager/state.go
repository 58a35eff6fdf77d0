package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/flock"
)

// state is state.json.
type state struct {
	// Allocations maps a GPU UUID to the container that holds it.
	Allocations map[string]string `json:"allocations"`
	// Unhealthy maps a GPU UUID to why it is out of service.
	Unhealthy map[string]Mark `json:"unhealthy"`
}

// Mark says why and since when a GPU is unhealthy.
type Mark struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// update runs f on the state under the state lock and saves it when f
// returns changed and no error.
func (m *Manager) update(f func(s *state) (changed bool, err error)) error {
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("gpu state: %w", err)
	}
	l, err := flock.Acquire(filepath.Join(m.cfg.Dir, "state.lock"), true)
	if err != nil {
		return fmt.Errorf("gpu state: %w", err)
	}
	defer l.Unlock()
	s, err := m.load()
	if err != nil {
		return err
	}
	changed, err := f(s)
	if err != nil || !changed {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(m.cfg.Dir, "state.json"), append(b, '\n'), 0o600, true)
}

// load reads state.json; a missing file is an empty state.
func (m *Manager) load() (*state, error) {
	s := &state{}
	b, err := os.ReadFile(filepath.Join(m.cfg.Dir, "state.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("gpu state: %w", err)
	default:
		if err := json.Unmarshal(b, s); err != nil {
			return nil, fmt.Errorf("gpu state %s is corrupt (move it away to start over; GPUs held by running containers would then be handed out again): %v: %w",
				filepath.Join(m.cfg.Dir, "state.json"), err, api.ErrInvalid)
		}
	}
	if s.Allocations == nil {
		s.Allocations = map[string]string{}
	}
	if s.Unhealthy == nil {
		s.Unhealthy = map[string]Mark{}
	}
	return s, nil
}

// read returns the state without changing it.
func (m *Manager) read() (*state, error) {
	var out *state
	err := m.update(func(s *state) (bool, error) { out = s; return false, nil })
	return out, err
}
