package driver

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/safefile"
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
	// Generation sets this volume apart from earlier and later ones of its
	// name, in the trash (random, given at create; empty in the records of
	// earlier versions).
	Generation string `json:"generation,omitempty"`
	// TmpfsDevs are the devices of a tmpfs volume's filesystems that may
	// still live (the plugin's mount, and one a container kept after the
	// plugin's last unmount): their mounts, in any namespace, use the
	// volume. A device is added at each mount and dropped once no namespace
	// shows it (its number may then go to anyone's filesystem); all go at a
	// reboot.
	TmpfsDevs [][2]uint32 `json:"tmpfs_devs,omitempty"`
	// TmpfsTracked says that TmpfsDevs is kept. A tmpfs record of an
	// earlier version, until its next mount, finds its filesystems by their
	// source name instead, which anyone can give a tmpfs of their own.
	TmpfsTracked bool `json:"tmpfs_tracked,omitempty"`
}

// newGeneration makes a volume's generation.
func newGeneration() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// refs is the total of the volume's reference counts.
func (v *record) refs() int {
	n := 0
	for _, c := range v.Mounts {
		n += c
	}
	return n
}

// maxStateFile bounds the state file read at start: far above what the
// limits on requests let it grow to for thousands of volumes.
const maxStateFile = 64 << 20

func loadState(path string) (*state, error) {
	st := &state{Version: stateVersion, Volumes: map[string]*record{}}
	data, err := safefile.ReadFileNoFollow(path, maxStateFile)
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

// checkRoot refuses a plugin root that others could change under the
// plugin (a symlink planted in it would send a removal elsewhere), and
// entries of the layout that are not what the plugin made: it never writes
// through, renames over or deletes them.
func checkRoot(root string) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return fmt.Errorf("plugin root: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("plugin root %s is not a directory: %w", root, api.ErrInvalid)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("plugin root %s is owned by uid %d, not by the plugin's user (%d): %w", root, st.Uid, os.Geteuid(), api.ErrInvalid)
	}
	if st.Mode&0o022 != 0 {
		return fmt.Errorf("plugin root %s is writable by group or others (mode %04o): make it 0700 or 0755: %w", root, st.Mode&0o7777, api.ErrInvalid)
	}
	for name, want := range map[string]uint32{
		"volumes": unix.S_IFDIR, "trash": unix.S_IFDIR, "state.json": unix.S_IFREG, "lock": unix.S_IFREG,
	} {
		p := filepath.Join(root, name)
		if err := unix.Lstat(p, &st); errors.Is(err, unix.ENOENT) {
			continue
		} else if err != nil {
			return fmt.Errorf("plugin root: %w", err)
		}
		if uint32(st.Mode)&unix.S_IFMT != want { // uint16 on some systems
			return fmt.Errorf("plugin root: %s is not a plain %s (a symlink, device or other file is never written through or replaced): %w",
				p, map[uint32]string{unix.S_IFDIR: "directory", unix.S_IFREG: "file"}[want], api.ErrInvalid)
		}
	}
	return nil
}
