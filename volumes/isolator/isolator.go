package isolator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/flock"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/volumes/client"
)

// Name is the isolator's name in checkpoints.
const Name = "docker/volume"

// Default limits on plugin calls, as dockerd's.
const (
	DefaultMountTimeout   = 2 * time.Minute
	DefaultUnmountTimeout = time.Minute
)

// Plugin is what the isolator needs of a volume plugin; *client.Client has
// it.
type Plugin interface {
	Create(ctx context.Context, name string, opts map[string]string) error
	Get(ctx context.Context, name string) (client.Volume, error)
	Mount(ctx context.Context, name, id string) (string, error)
	Unmount(ctx context.Context, name, id string) error
}

// Finder locates a plugin by name (client.Discovery, adapted).
type Finder func(ctx context.Context, driver string) (Plugin, error)

// Config configures the isolator.
type Config struct {
	// StateDir holds one record per volume in use (and its lock file). It
	// must survive reboots.
	StateDir       string
	Find           Finder
	MountTimeout   time.Duration
	UnmountTimeout time.Duration
	Logger         *slog.Logger
	// CrashPoint, when set, is called with a step name ("volume:recorded",
	// "volume:mounted"); crash tests kill the process there.
	CrashPoint func(step string)
}

// Isolator is the docker/volume isolator.
type Isolator struct{ cfg Config }

var (
	_ isolators.Preparer  = (*Isolator)(nil)
	_ isolators.Cleaner   = (*Isolator)(nil)
	_ isolators.Recoverer = (*Isolator)(nil)
)

// New makes the isolator.
func New(cfg Config) (*Isolator, error) {
	if cfg.StateDir == "" || cfg.Find == nil {
		return nil, fmt.Errorf("volume isolator: a state dir and a plugin finder are required: %w", api.ErrInvalid)
	}
	if cfg.MountTimeout <= 0 {
		cfg.MountTimeout = DefaultMountTimeout
	}
	if cfg.UnmountTimeout <= 0 {
		cfg.UnmountTimeout = DefaultUnmountTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("volume isolator: %w", err)
	}
	return &Isolator{cfg: cfg}, nil
}

// Name implements isolators.Isolator.
func (iso *Isolator) Name() string { return Name }

func (iso *Isolator) crash(step string) {
	if iso.cfg.CrashPoint != nil {
		iso.cfg.CrashPoint(step)
	}
}

// holder is one use of a volume: a container and where it sees it.
type holder struct {
	Container string `json:"container"`
	Target    string `json:"target"`
}

// record is what the isolator knows of one volume in use.
type record struct {
	Driver string `json:"driver"`
	Name   string `json:"name"`
	// MountID is the ID given to the plugin's Mount, and to its Unmount.
	MountID string `json:"mount_id"`
	// Mountpoint is the host path the plugin returned; empty while the
	// Mount is pending (or never answered).
	Mountpoint string   `json:"mountpoint,omitempty"`
	Holders    []holder `json:"holders"`
}

// key names a volume's record and lock files.
func key(driver, name string) string {
	sum := sha256.Sum256([]byte(driver + "\x00" + name))
	return hex.EncodeToString(sum[:12])
}

// MountID is the stable ID a container's use of a volume at target is
// mounted with.
func MountID(containerID, target string) string {
	sum := sha256.Sum256([]byte("caisson\x00" + containerID + "\x00" + target))
	return hex.EncodeToString(sum[:])
}

func (iso *Isolator) recordPath(k string) string { return filepath.Join(iso.cfg.StateDir, k+".json") }

// lock locks a volume's record. Its holder may be waiting for the volume's
// plugin: the wait lasts as long as ctx allows.
func (iso *Isolator) lock(ctx context.Context, k string) (*flock.Lock, error) {
	l, err := flock.AcquireContext(ctx, filepath.Join(iso.cfg.StateDir, k+".lock"))
	if err != nil {
		return nil, fmt.Errorf("lock volume record: %w", err)
	}
	return l, nil
}

func (iso *Isolator) load(k string) (*record, error) {
	data, err := os.ReadFile(iso.recordPath(k))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r := &record{}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("volume record %s is corrupt: %w", iso.recordPath(k), err)
	}
	return r, nil
}

func (iso *Isolator) save(k string, r *record) error {
	if len(r.Holders) == 0 && r.Mountpoint == "" {
		err := os.Remove(iso.recordPath(k))
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(iso.recordPath(k), data, 0o600, true)
}

// validate checks a container's volume requests.
func validate(vs []api.VolumeMount) error {
	targets := map[string]bool{}
	for _, v := range vs {
		if v.Driver == "" || strings.ContainsRune(v.Driver, 0) {
			return fmt.Errorf("volume %q: a volume driver is required: %w", v.Name, api.ErrInvalid)
		}
		// Plugins other than ours accept other names (netshare's
		// "host/share"); the name is only ever hashed here.
		if v.Name == "" || strings.ContainsRune(v.Name, 0) {
			return fmt.Errorf("volume name %q: want a non-empty name without NUL: %w", v.Name, api.ErrInvalid)
		}
		t := path.Clean(v.Target)
		if !path.IsAbs(v.Target) || t == "/" {
			return fmt.Errorf("volume %s/%s: target %q must be an absolute path other than /: %w", v.Driver, v.Name, v.Target, api.ErrInvalid)
		}
		if targets[t] {
			return fmt.Errorf("volume target %s is used twice: %w", t, api.ErrInvalid)
		}
		targets[t] = true
	}
	return nil
}

// Prepare mounts each requested volume (creating it if missing) and hands
// the runtime a bind mount of it. When one fails, those already mounted for
// this container are released.
func (iso *Isolator) Prepare(ctx context.Context, req *isolators.PrepareRequest, resp *isolators.PrepareResponse) error {
	vs := req.Spec.Volumes
	if len(vs) == 0 {
		return nil
	}
	if err := validate(vs); err != nil {
		return &api.FieldError{Field: "volumes", Err: err}
	}
	for i, v := range vs {
		mp, err := iso.acquire(ctx, req.ContainerID, v)
		if err != nil {
			for _, done := range vs[:i] {
				if rerr := iso.release(context.WithoutCancel(ctx), req.ContainerID, done.Driver, done.Name); rerr != nil {
					iso.cfg.Logger.Error("release after a failed mount", "volume", done.Driver+"/"+done.Name, "err", rerr)
				}
			}
			return err
		}
		opts := []string{"rbind", "rprivate", "rw"}
		if v.ReadOnly {
			opts[2] = "ro"
		}
		resp.Mounts = append(resp.Mounts, specs.Mount{Destination: path.Clean(v.Target), Type: "bind", Source: mp, Options: opts})
	}
	return nil
}

// acquire adds a user to a volume, mounting it through its plugin when it is
// the first, and returns the host path.
func (iso *Isolator) acquire(ctx context.Context, cid string, v api.VolumeMount) (string, error) {
	log := iso.cfg.Logger.With("container", cid, "volume", v.Driver+"/"+v.Name)
	k := key(v.Driver, v.Name)
	l, err := iso.lock(ctx, k)
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	r, err := iso.load(k)
	if err != nil {
		return "", err
	}
	h := holder{Container: cid, Target: path.Clean(v.Target)}
	if r != nil && r.Mountpoint != "" && len(r.Holders) > 0 {
		if !slices.Contains(r.Holders, h) {
			r.Holders = append(r.Holders, h)
		}
		if err := iso.save(k, r); err != nil {
			return "", err
		}
		log.Debug("volume already mounted; one more user", "users", len(r.Holders))
		return r.Mountpoint, nil
	}
	p, err := iso.cfg.Find(ctx, v.Driver)
	if err != nil {
		return "", fmt.Errorf("volume driver %q: %w", v.Driver, err)
	}
	if r != nil && r.Mountpoint != "" {
		// Nobody uses it, but its Unmount failed before: the mount point
		// may be gone. Pay that Unmount, then mount afresh.
		uctx, cancel := context.WithTimeout(ctx, iso.cfg.UnmountTimeout)
		err := p.Unmount(uctx, v.Name, r.MountID)
		cancel()
		if err != nil {
			return "", fmt.Errorf("volume %s/%s: an earlier unmount is still owed and failed again: %w", v.Driver, v.Name, err)
		}
		r = nil
	}
	cctx, cancel := context.WithTimeout(ctx, iso.cfg.MountTimeout)
	_, err = p.Get(cctx, v.Name)
	cancel()
	if errors.Is(err, api.ErrNotFound) {
		cctx, cancel := context.WithTimeout(ctx, iso.cfg.MountTimeout)
		err = p.Create(cctx, v.Name, v.Options)
		cancel()
		if err != nil {
			return "", fmt.Errorf("create volume %s/%s: %w", v.Driver, v.Name, err)
		}
		log.Info("volume created", "options", v.Options)
	} else if err != nil {
		return "", fmt.Errorf("volume %s/%s: %w", v.Driver, v.Name, err)
	}
	// A pending record (a Mount that never answered before a crash) keeps
	// its ID, so the plugin sees the same ID again.
	if r == nil {
		r = &record{Driver: v.Driver, Name: v.Name, MountID: MountID(cid, h.Target)}
	}
	if !slices.Contains(r.Holders, h) {
		r.Holders = append(r.Holders, h)
	}
	if err := iso.save(k, r); err != nil {
		return "", err
	}
	iso.crash("volume:recorded")
	mctx, cancel := context.WithTimeout(ctx, iso.cfg.MountTimeout)
	defer cancel()
	mp, err := p.Mount(mctx, v.Name, r.MountID)
	if err != nil {
		// A failed Mount may still have counted (moby#22564): undo it.
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), iso.cfg.UnmountTimeout)
		if uerr := p.Unmount(uctx, v.Name, r.MountID); uerr != nil {
			log.Warn("unmount after a failed mount", "err", uerr)
		}
		ucancel()
		r.Holders = slices.DeleteFunc(r.Holders, func(x holder) bool { return x == h })
		if serr := iso.save(k, r); serr != nil {
			log.Error("forget a failed mount", "err", serr)
		}
		return "", fmt.Errorf("mount volume %s/%s: %w", v.Driver, v.Name, err)
	}
	if !filepath.IsAbs(mp) {
		return "", fmt.Errorf("volume %s/%s: plugin returned mount point %q, not an absolute path: %w", v.Driver, v.Name, mp, api.ErrInvalid)
	}
	r.Mountpoint = mp
	if err := iso.save(k, r); err != nil {
		return "", err
	}
	iso.crash("volume:mounted")
	log.Info("volume mounted", "mountpoint", mp, "id", r.MountID)
	return mp, nil
}

// release drops every use of one volume by a container, unmounting it when
// nobody is left.
func (iso *Isolator) release(ctx context.Context, cid, driver, name string) error {
	return iso.sweepOne(ctx, key(driver, name), false, func(h holder) bool { return h.Container == cid })
}

// settle saves a record, unmounting the volume first when it has no users
// left. A failed Unmount keeps the record (with no users), so Recover tries
// again.
func (iso *Isolator) settle(ctx context.Context, k string, r *record) error {
	if len(r.Holders) > 0 {
		return iso.save(k, r)
	}
	uctx, cancel := context.WithTimeout(ctx, iso.cfg.UnmountTimeout)
	defer cancel()
	p, err := iso.cfg.Find(uctx, r.Driver)
	if err == nil {
		err = p.Unmount(uctx, r.Name, r.MountID)
	}
	if err != nil {
		if serr := iso.save(k, r); serr != nil {
			iso.cfg.Logger.Error("save volume record", "err", serr)
		}
		return fmt.Errorf("unmount volume %s/%s: %w", r.Driver, r.Name, err)
	}
	iso.cfg.Logger.Info("volume unmounted: no user left", "volume", r.Driver+"/"+r.Name, "id", r.MountID)
	r.Mountpoint = ""
	return iso.save(k, r)
}

// records lists the keys of every record.
func (iso *Isolator) records() ([]string, error) {
	entries, err := os.ReadDir(iso.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range entries {
		if k, ok := strings.CutSuffix(e.Name(), ".json"); ok && !strings.HasPrefix(k, ".") {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Cleanup releases every volume the container uses. It is idempotent, and
// touches only the records that name the container: a volume whose plugin
// is gone does not hold up other containers' cleanup.
func (iso *Isolator) Cleanup(ctx context.Context, req *isolators.CleanupRequest) error {
	return iso.sweep(ctx, false, func(h holder) bool { return h.Container == req.ContainerID })
}

// Recover drops the uses of containers that are gone and unmounts volumes
// nobody uses any more, also those whose Unmount failed before.
func (iso *Isolator) Recover(ctx context.Context, req *isolators.RecoverRequest) error {
	live := map[string]bool{}
	for _, c := range req.Containers {
		live[c.ID] = true
	}
	return iso.sweep(ctx, true, func(h holder) bool { return !live[h.Container] })
}

// sweep removes the holders drop selects from every record and unmounts the
// volumes left with none; with owed, also volumes whose Unmount is owed.
func (iso *Isolator) sweep(ctx context.Context, owed bool, drop func(holder) bool) error {
	keys, err := iso.records()
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		// A first look without the lock, so Cleanup does not wait behind
		// a Mount of a volume this container never used.
		if r, err := iso.load(k); err != nil || r == nil || !(slices.ContainsFunc(r.Holders, drop) || owed && len(r.Holders) == 0) {
			continue
		}
		if err := iso.sweepOne(ctx, k, owed, drop); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (iso *Isolator) sweepOne(ctx context.Context, k string, owed bool, drop func(holder) bool) error {
	l, err := iso.lock(ctx, k)
	if err != nil {
		return err
	}
	defer l.Unlock()
	r, err := iso.load(k)
	if err != nil || r == nil {
		return err
	}
	n := len(r.Holders)
	r.Holders = slices.DeleteFunc(r.Holders, drop)
	if len(r.Holders) == n && (n > 0 || !owed) {
		return nil
	}
	return iso.settle(ctx, k, r)
}
