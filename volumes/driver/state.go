package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/caisson/caisson/internal/atomicfile"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// state is everything the driver knows, written atomically to
// <root>/state.json after every change.
type state struct {
	Version int `json:"version"`
	// BootID is the kernel boot the reference counts belong to: after a
	// reboot nothing is mounted and every count is stale.
	BootID  string             `json:"boot_id"`
	Volumes map[string]*record `json:"volumes"`
	// NextProject is the next XFS project ID to hand out.
	NextProject uint32 `json:"next_project,omitempty"`
}

// record is one volume's record.
type record struct {
	Name    string  `json:"name"`
	Options Options `json:"options"`
	// Raw are the -o options as given, to tell a repeated Create from a
	// conflicting one.
	Raw       map[string]string `json:"raw_options,omitempty"`
	CreatedAt string            `json:"created_at"`
	// ProjectID is the XFS project of a size-limited dir volume.
	ProjectID uint32 `json:"project_id,omitempty"`
	// Mounts counts Mount calls per mount ID not yet matched by Unmount.
	Mounts map[string]int `json:"mounts,omitempty"`
}

// refs is the total of the volume's reference counts.
func (v *record) refs() int {
	n := 0
	for _, c := range v.Mounts {
		n += c
	}
	return n
}

func loadState(path string) (*state, error) {
	st := &state{Version: stateVersion, Volumes: map[string]*record{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s has version %d, this plugin reads %d", path, st.Version, stateVersion)
	}
	if st.Volumes == nil {
		st.Volumes = map[string]*record{}
	}
	return st, nil
}

func (st *state) save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o600, true)
}
