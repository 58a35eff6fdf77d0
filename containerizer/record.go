package containerizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/flock"
	"github.com/caisson/caisson/internal/safefile"
)

// phase is where a container is, as far as recovery must tell apart. The
// reserved checkpoint already names every isolator, so recovery undoes a
// launch the same way whatever step it died at: only the states that need
// different handling are written.
type phase string

const (
	phaseReserved phase = "reserved" // launching: dir and name taken, isolators listed
	phasePrepared phase = "prepared" // launching: bundle written, monitor pid known
	phaseRunning  phase = "running"  // started; its monitor holds the exit status
	phaseExited   phase = "exited"   // Termination recorded
)

const recordVersion = 1

// record is a container's checkpoint, <root>/containers/<id>/container.json.
// Writers hold the container's lock; readers need none because every write is
// atomic (temp file, fsync, rename).
type record struct {
	Version int               `json:"version"`
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Spec    api.ContainerSpec `json:"spec"`
	Phase   phase             `json:"phase"`
	// Isolators lists, in order, every isolator Prepare was (or may have
	// been) called on; Cleanup runs over it in reverse.
	Isolators   []string         `json:"isolators,omitempty"`
	Runtime     string           `json:"runtime"`
	Pid         int              `json:"pid,omitempty"`
	MonitorPid  int              `json:"monitor_pid,omitempty"`
	MonitorID   uint64           `json:"monitor_start,omitempty"` // start time in ticks, against pid reuse
	BootID      string           `json:"boot_id,omitempty"`
	CreatedAt   time.Time        `json:"created_at"`
	StartedAt   *time.Time       `json:"started_at,omitempty"`
	Termination *api.Termination `json:"termination,omitempty"`
	// KillRequested is set before a user's kill, so the monitor reports the
	// termination as killed rather than signaled.
	KillRequested bool `json:"kill_requested,omitempty"`
	// Cleaned is set once the runtime state is deleted and every isolator
	// cleaned up after the exit.
	Cleaned     bool     `json:"cleaned,omitempty"`
	CgroupPath  string   `json:"cgroup_path,omitempty"`
	Image       string   `json:"image,omitempty"`
	ImageDigest string   `json:"image_digest,omitempty"`
	Command     []string `json:"command,omitempty"`
}

func (c *Containerizer) containerDir(id string) string {
	return filepath.Join(c.cfg.Root, "containers", id)
}

func (c *Containerizer) recordPath(id string) string {
	return filepath.Join(c.containerDir(id), "container.json")
}

func (c *Containerizer) saveRecord(r *record) error {
	if _, err := writeCheckpoint(c.recordPath(r.ID), r); err != nil {
		return fmt.Errorf("checkpoint container %s: %w", r.ID, err)
	}
	return nil
}

// saveRecordWithRoom saves a launch's checkpoint and makes sure the
// container's spare files hold room for the checkpoints that will record
// its end (see ensureSpares): a launch that cannot have that room fails.
func (c *Containerizer) saveRecordWithRoom(r *record) error {
	n, err := writeCheckpoint(c.recordPath(r.ID), r)
	if err != nil {
		return fmt.Errorf("checkpoint container %s: %w", r.ID, err)
	}
	return c.ensureSpares(r.ID, n)
}

// Limits on what the containerizer reads back of its own files, which
// damage may have replaced by anything: a checkpoint (the container's spec
// with its environment, labels, mounts and command) and the bundle's
// runtime spec (which also holds the seccomp profile). A checkpoint over
// its limit is refused when it is written, so a launch whose spec is too
// large fails instead of leaving a container it cannot read back.
const (
	maxRecordSize = 16 << 20
	maxBundleSize = 32 << 20
)

// writeCheckpoint writes r to path atomically and durably, and returns its
// size.
func writeCheckpoint(path string, r *record) (int, error) {
	data, err := encodeCheckpoint(r)
	if err != nil {
		return 0, err
	}
	return len(data), atomicfile.Write(path, data, 0o600, true)
}

// encodeCheckpoint is what a checkpoint of r holds.
func encodeCheckpoint(r *record) ([]byte, error) {
	r.Version = recordVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if len(data) > maxRecordSize {
		return nil, fmt.Errorf("the checkpoint would be %d bytes, over the limit of %d: %w", len(data), maxRecordSize, api.ErrTooLarge)
	}
	return data, nil
}

// noSpace reports whether err says the filesystem (or the quota) is full.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// loadRecord reads a container's checkpoint. A container without one gives
// an error wrapping api.ErrNotFound; a checkpoint that exists but cannot be
// used (damaged, or from a newer caisson) one wrapping api.ErrUnreadable:
// such a container is quarantined (see quarantined), never destroyed on
// the strength of what its checkpoint fails to say.
func (c *Containerizer) loadRecord(id string) (*record, error) {
	// Only a regular file is read: anything else in its place (a FIFO
	// would block the read) makes the checkpoint unreadable.
	data, err := safefile.ReadFile(c.recordPath(id), maxRecordSize)
	if errors.Is(err, fs.ErrNotExist) {
		if !c.beyondReservation(id) {
			return nil, fmt.Errorf("container %s: %w", id, api.ErrNotFound)
		}
		err = errors.New("it is missing")
	}
	if err == nil {
		var r *record
		if r, err = parseRecord(id, data); err == nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("checkpoint of container %s is unreadable: %v: %w", id, err, api.ErrUnreadable)
}

// beyondReservation reports whether a container directory holds more than
// a reservation makes before its first checkpoint (the lock file, and a
// temporary file of the checkpoint): the checkpoint is written first and
// then only replaced, and a removal moves the directory away before
// deleting anything, so such a directory without a checkpoint lost it. A
// directory that cannot be listed may hold anything.
func (c *Containerizer) beyondReservation(id string) bool {
	entries, err := os.ReadDir(c.containerDir(id))
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	for _, e := range entries {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), ".container.json.tmp-") {
			return true
		}
	}
	return false
}

// parseRecord decodes and checks a checkpoint: what the containerizer
// writes always passes, so anything else is damage.
func parseRecord(id string, data []byte) (*record, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	switch {
	case r.Version > recordVersion:
		return nil, fmt.Errorf("version %d is newer than this caisson understands", r.Version)
	case r.Version < 1:
		return nil, errors.New("no version")
	case r.ID != id:
		return nil, fmt.Errorf("it names container %q", r.ID)
	case !nameRE.MatchString(r.Name):
		return nil, fmt.Errorf("container name %q is not valid", r.Name)
	case r.Runtime == "":
		return nil, errors.New("no runtime")
	case r.CreatedAt.IsZero():
		return nil, errors.New("no creation time")
	case r.Pid < 0 || r.MonitorPid < 0:
		return nil, errors.New("negative pid")
	}
	switch r.Phase {
	case phaseReserved, phasePrepared:
	case phaseRunning:
		if r.Pid == 0 {
			return nil, errors.New("running without a pid")
		}
	case phaseExited:
		if r.Termination == nil {
			return nil, errors.New("exited without a termination")
		}
	default:
		return nil, fmt.Errorf("unknown phase %q", r.Phase)
	}
	return &r, nil
}

// fileLock is an exclusive flock, released on Unlock or when the process dies.
type fileLock = flock.Lock

// lockRoot takes the root lock, which serialises reservations (names) and
// recovery's view of which containers exist. Its holder may run the
// runtime and the isolators for a while: the wait lasts as long as ctx
// allows.
func (c *Containerizer) lockRoot(ctx context.Context) (*fileLock, error) {
	return flock.AcquireContext(ctx, filepath.Join(c.cfg.Root, "containers.lock"))
}

// lockContainer locks an existing container, waiting for its holder as
// long as ctx allows. Its lock file is made once, by the launch that
// reserves the container (reserve), and goes with its directory: a
// container being removed is never locked again, and no lock file is made
// anew in a directory being removed.
func (c *Containerizer) lockContainer(ctx context.Context, id string) (*fileLock, error) {
	return flock.AcquireExistingContext(ctx, c.lockPath(id))
}

// tryLockContainer is lockContainer without waiting: it fails at once
// when someone holds the lock.
func (c *Containerizer) tryLockContainer(id string) (*fileLock, error) {
	return flock.AcquireExisting(c.lockPath(id), false)
}

func (c *Containerizer) lockPath(id string) string { return filepath.Join(c.containerDir(id), "lock") }

// The ownership ledger, <root>/owned/<id>: an empty file per container this
// work dir made, written before anything of the container exists (its
// directory, its runtime state, its cgroup) and removed only after all of
// it is gone. Recovery destroys what the runtime and the isolators hold for
// an ID only when the ledger says the ID is this work dir's and its
// directory is gone: other work dirs may share the cgroup parent and the
// runtime dir, and what they hold there is not ours to judge.

func (c *Containerizer) ownedDir() string { return filepath.Join(c.cfg.Root, "owned") }

// claim records that this work dir owns id.
func (c *Containerizer) claim(id string) error {
	f, err := os.OpenFile(filepath.Join(c.ownedDir(), id), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("claim container %s: %w", id, err)
	}
	return f.Close()
}

// unclaim forgets id, once nothing of it is left.
func (c *Containerizer) unclaim(id string) error {
	if err := os.Remove(filepath.Join(c.ownedDir(), id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unclaim container %s: %w", id, err)
	}
	return nil
}

// claimed lists the IDs the ledger holds.
func (c *Containerizer) claimed() (map[string]bool, error) {
	entries, err := os.ReadDir(c.ownedDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e.Type().IsRegular() && idRE.MatchString(e.Name()) {
			out[e.Name()] = true
		}
	}
	return out, nil
}

// idRE matches container IDs as newID makes them.
var idRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// bootID identifies this boot of the host; a different one in a checkpoint
// means the machine rebooted since.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return string(trimNL(b))
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
