package driver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/flock"
	"github.com/caisson/caisson/internal/safefile"
	"github.com/caisson/caisson/internal/xfsquota"
)

// Config configures a Driver.
type Config struct {
	// Root holds the state file and the volumes' data. It must survive
	// reboots.
	Root string
	// BindAllow lists the host directories that bind volumes may be (each
	// one, or a directory under it); "/" allows any, as Docker's local
	// driver does. Empty: no bind volumes. The plugin root, what is inside
	// it and what holds it are refused whatever the list says.
	BindAllow []string
	Logger    *slog.Logger
	// Now is the clock for creation times (tests); time.Now by default.
	Now func() time.Time
}

// Driver is the Docker volume driver. It implements volume.Driver and is
// safe for concurrent use: one mutex orders every operation, so a state file
// write always follows the change it records.
type Driver struct {
	root  string
	log   *slog.Logger
	now   func() time.Time
	lock  *flock.Lock
	quota *xfsquota.Control
	// quotaErr says why dir volumes cannot have a size.
	quotaErr error
	binds    *bindPolicy
	// tag tells this plugin's tmpfs mounts from those of plugins with
	// other roots.
	tag string

	mu     sync.Mutex
	st     *state
	closed bool
	// deleting are the trash entries a pass of emptyTrash is deleting.
	deleting map[string]bool
	// testHook, when set, is called at named steps; an error it returns at
	// "save" makes the save fail (tests).
	testHook func(step string) error
}

var _ volume.Driver = (*Driver)(nil)

// projectBase is the first XFS project ID the driver hands out.
const projectBase = 100000

// New opens the driver's root, loads its state and reconciles it with the
// host: after a reboot every count is dropped; a backing mount missing while
// counted is mounted again, one present while uncounted is torn down.
func New(cfg Config) (*Driver, error) {
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("plugin root %q must be an absolute path: %w", cfg.Root, api.ErrInvalid)
	}
	d := &Driver{root: filepath.Clean(cfg.Root), log: cfg.Logger, now: cfg.Now, deleting: map[string]bool{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		return nil, fmt.Errorf("plugin root: %w", err)
	}
	// Mount points are compared with mountinfo, which shows resolved paths.
	real, err := filepath.EvalSymlinks(d.root)
	if err != nil {
		return nil, fmt.Errorf("plugin root: %w", err)
	}
	d.root = real
	if err := checkRoot(d.root); err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(d.root, "volumes"), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("plugin root: %w", err)
	}
	sum := sha256.Sum256([]byte(d.root))
	d.tag = hex.EncodeToString(sum[:4])
	if d.binds, err = newBindPolicy(d.root, cfg.BindAllow); err != nil {
		return nil, err
	}
	lock, err := flock.Acquire(filepath.Join(d.root, "lock"), false)
	if err != nil {
		return nil, fmt.Errorf("plugin root %s is in use by another volume plugin: %w", d.root, err)
	}
	d.lock = lock
	if d.quota, d.quotaErr = xfsquota.Open(filepath.Join(d.root, "volumes")); d.quotaErr != nil {
		d.log.Info("dir volumes cannot have a size here", "reason", d.quotaErr)
	}
	if d.st, err = loadState(d.statePath()); err != nil {
		lock.Unlock()
		return nil, err
	}
	d.restoreTrash()
	if err := d.reconcile(); err != nil {
		lock.Unlock()
		return nil, err
	}
	d.emptyTrash()
	return d, nil
}

func (d *Driver) statePath() string { return filepath.Join(d.root, "state.json") }

// Close waits for operations in flight and releases the root. Mounts stay:
// a restarted plugin picks them up.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.lock.Unlock()
	return nil
}

// begin takes the driver's lock; it fails once the driver is closed.
func (d *Driver) begin() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("the volume plugin is shutting down: %w", api.ErrUnavailable)
	}
	return nil
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

func (d *Driver) reconcile() error {
	boot := bootID()
	changed := false
	if d.st.BootID != boot {
		for _, v := range d.st.Volumes {
			if len(v.Mounts) > 0 {
				d.log.Info("machine rebooted: dropping stale mount references", "volume", v.Name, "refs", v.refs())
				v.Mounts = nil
			}
			v.TmpfsDevs = nil // every tmpfs died with the boot
		}
		d.st.BootID = boot
		changed = true
	}
	var alive map[[2]uint32]bool // tmpfs devices in use, read once
	for _, name := range slices.Sorted(maps.Keys(d.st.Volumes)) {
		v := d.st.Volumes[name]
		if !needsMount(v) {
			continue
		}
		if len(v.TmpfsDevs) > 0 {
			if alive == nil {
				alive, _ = d.aliveTmpfs()
			}
			if alive != nil && pruneTmpfs(v, alive) {
				changed = true
			}
		}
		m, err := d.mounted(v)
		if err != nil {
			return err
		}
		switch refs := v.refs(); {
		case refs > 0 && !m:
			d.log.Warn("volume counted as mounted but not mounted: mounting it again", "volume", name, "refs", refs)
			if err := d.mountBacking(v); err != nil {
				d.log.Error("remount failed; its references are dropped", "volume", name, "err", err)
				v.Mounts = nil
			}
			changed = true // the references, or a tmpfs's device
		case refs == 0 && m:
			d.log.Info("volume mounted with no references: unmounting it", "volume", name)
			if err := d.unmountBacking(v); err != nil {
				d.log.Error("unmount of an unused volume", "volume", name, "err", err)
			}
			changed = d.forgetTmpfs(v) || changed
		}
	}
	if changed {
		return d.st.save(d.statePath())
	}
	return nil
}

// at calls the test hook at a step.
func (d *Driver) at(step string) error {
	if d.testHook == nil {
		return nil
	}
	return d.testHook(step)
}

// save writes the state; on failure the caller undoes its change.
func (d *Driver) save() error {
	err := d.at("save")
	if err == nil {
		err = d.st.save(d.statePath())
	}
	if err != nil {
		return fmt.Errorf("save plugin state: %w", err)
	}
	return nil
}

// open checks a request's volume name, takes the driver's lock and looks the
// volume up; the caller unlocks d.mu when it succeeds.
func (d *Driver) open(name string) (*record, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := d.begin(); err != nil {
		return nil, err
	}
	v, err := d.lookup(name)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	return v, nil
}

// lookup returns a volume or an error Docker shows as "no such volume".
func (d *Driver) lookup(name string) (*record, error) {
	v, ok := d.st.Volumes[name]
	if !ok {
		return nil, fmt.Errorf("no such volume: %q: %w", name, api.ErrNotFound)
	}
	return v, nil
}

// Create makes a volume. Creating an existing volume again succeeds when the
// options are the same (or none are given), as Docker expects.
func (d *Driver) Create(req *volume.CreateRequest) error {
	if err := checkName(req.Name); err != nil {
		return err
	}
	if err := checkOptions(req.Options); err != nil {
		return err
	}
	if err := d.begin(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	if v, ok := d.st.Volumes[req.Name]; ok {
		if len(req.Options) == 0 || maps.Equal(req.Options, v.Raw) {
			return nil
		}
		return fmt.Errorf("volume %q already exists with other options (%s): %w", req.Name, fmtOpts(v.Raw), api.ErrAlreadyExists)
	}
	o, err := parseOptions(req.Options, d.binds)
	if err != nil {
		return err
	}
	if o.Type == TypeDir && o.Size > 0 && d.quota == nil {
		return errUnsupportedSize(d.quotaErr)
	}
	v := &record{Name: req.Name, Options: o, Raw: maps.Clone(req.Options), CreatedAt: d.now().UTC().Format(time.RFC3339), Generation: newGeneration(),
		TmpfsTracked: o.Type == TypeTmpfs}
	kept, err := d.keptData(v)
	if err != nil {
		return err
	}
	if err := d.build(v, kept); err != nil {
		if !kept {
			d.discard(v)
		}
		return fmt.Errorf("create volume %q: %w", req.Name, err)
	}
	d.st.Volumes[v.Name] = v
	if err := d.save(); err != nil {
		delete(d.st.Volumes, v.Name)
		if !kept {
			d.discard(v)
		}
		return err
	}
	if kept {
		_ = os.Remove(d.keptMarker(v.Name))
	}
	d.log.Info("volume created", "volume", v.Name, "type", o.Type, "size", o.Size, "reused kept data", kept)
	return nil
}

// keptMarker is the file that says a volume's data was kept on Remove, and
// what kind of volume it belonged to.
func (d *Driver) keptMarker(name string) string { return filepath.Join(d.volDir(name), "kept.json") }

// keptData reports whether a new volume takes over the data an earlier one
// of its name kept (keep=true). Kept data of another type, filesystem or
// image size is refused; anything else found there is the debris of a
// Create that crashed, and is removed.
func (d *Driver) keptData(v *record) (bool, error) {
	if v.Options.Type == TypeBind {
		return false, nil
	}
	if _, err := os.Lstat(d.volDir(v.Name)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	data, err := safefile.ReadFileNoFollow(d.keptMarker(v.Name), 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		d.log.Warn("removing the debris of an unfinished create", "volume", v.Name)
		if err := d.deleteTree(d.volDir(v.Name)); err != nil {
			return false, fmt.Errorf("volume %q: debris of an earlier volume: %w", v.Name, err)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var k record
	if err := json.Unmarshal(data, &k); err != nil {
		return false, fmt.Errorf("kept data of volume %q: %s is corrupt: %w", v.Name, d.keptMarker(v.Name), err)
	}
	ko, o := k.Options, v.Options
	if ko.Type != o.Type || ko.FS != o.FS || (o.Type == TypeLoop && ko.Size != o.Size) {
		return false, fmt.Errorf("volume %q has data kept from an earlier volume (type=%s, fs=%s, size=%s): create it with the same type, fs and size, or delete %s first: %w",
			v.Name, ko.Type, ko.FS, api.FormatSize(uint64(ko.Size)), d.volDir(v.Name), api.ErrConflict)
	}
	v.ProjectID = k.ProjectID
	return true, nil
}

// build makes a volume's storage; with kept, over the data an earlier volume
// of its name kept, which is not formatted again.
func (d *Driver) build(v *record, kept bool) error {
	o := v.Options
	switch o.Type {
	case TypeBind:
		if o.UID == nil && o.GID == nil && o.Mode == nil {
			return nil
		}
		fd, err := d.binds.open(o.Path)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return applyOwner(fdPath(fd), o)
	case TypeTmpfs:
		return os.MkdirAll(d.mntDir(v.Name), 0o755)
	case TypeLoop:
		if err := os.MkdirAll(d.volDir(v.Name), 0o700); err != nil {
			return err
		}
		if !kept {
			if err := makeImage(context.Background(), d.image(v.Name), o); err != nil {
				return err
			}
		}
		if o.UID == nil && o.GID == nil && o.Mode == nil {
			return nil
		}
		if err := d.mountBacking(v); err != nil {
			return err
		}
		err := applyOwner(d.mntDir(v.Name), o)
		if uerr := d.unmountBacking(v); err == nil {
			err = uerr
		}
		return err
	default:
		data := d.dataDir(v.Name)
		if err := os.MkdirAll(data, 0o755); err != nil {
			return err
		}
		if o.Size > 0 {
			if v.ProjectID == 0 {
				v.ProjectID = d.nextProject()
			}
			if err := d.quota.SetLimit(data, v.ProjectID, uint64(o.Size)); err != nil {
				return err
			}
		}
		return applyOwner(data, o)
	}
}

// nextProject hands out XFS project IDs, never the same twice: files of a
// kept volume still carry theirs.
func (d *Driver) nextProject() uint32 {
	if d.st.NextProject < projectBase {
		d.st.NextProject = projectBase
	}
	id := d.st.NextProject
	d.st.NextProject++
	return id
}

// clearQuota lifts a removed volume's XFS project quota.
func (d *Driver) clearQuota(v *record) {
	if v.ProjectID != 0 && d.quota != nil {
		if err := d.quota.Clear(v.ProjectID); err != nil {
			d.log.Error("remove volume: clear quota", "volume", v.Name, "err", err)
		}
	}
}

// discard removes what a failed Create made. Errors are logged: what is
// left is named in the log.
func (d *Driver) discard(v *record) {
	if needsMount(v) {
		if err := d.unmountBacking(v); err != nil {
			d.log.Error("undo create: unmount", "volume", v.Name, "err", err)
			return
		}
	}
	d.clearQuota(v)
	if v.Options.Type == TypeBind {
		d.removeMntDir(v)
		return
	}
	if err := d.deleteTree(d.volDir(v.Name)); err != nil {
		d.log.Error("undo create: remove volume data", "volume", v.Name, "err", err)
	}
}

// Remove deletes a volume (its data too, unless keep=true or bind). It is
// refused while anything uses the volume's data, whatever the reference
// counts say: a container that mounts it in any mount namespace (a loop
// device's filesystem, a tmpfs, a dir volume's directory, the plugin's bind
// mount), a loop device still attached to its image, a process of the
// plugin's namespace with a file open in it. Stale counts (a daemon that
// died without Unmount) never block it; an Unmount sent by mistake never
// lets it delete data in use.
func (d *Driver) Remove(req *volume.RemoveRequest) error {
	v, err := d.open(req.Name)
	if err != nil {
		return err
	}
	err = d.remove(v)
	d.mu.Unlock()
	if err == nil {
		d.at("remove:unlocked")
		d.emptyTrash()
	}
	return err
}

func (d *Driver) remove(v *record) error {
	t, err := d.target(v)
	if err != nil {
		return fmt.Errorf("remove volume %q: %w", v.Name, err)
	}
	uses, err := d.uses(t, true)
	if err != nil {
		return fmt.Errorf("remove volume %q: cannot tell whether it is in use: %w", v.Name, err)
	}
	if len(uses) > 0 {
		return inUse(fmt.Sprintf("volume %q", v.Name), uses)
	}
	if refs := v.refs(); refs > 0 {
		d.log.Warn("removing a volume with stale references (its users died without Unmount)", "volume", v.Name, "refs", refs)
	}
	if needsMount(v) {
		// Not lazily: a mount still busy here has a user.
		if err := d.unmountMnt(v, false); errors.Is(err, unix.EBUSY) {
			return inUse(fmt.Sprintf("volume %q", v.Name), []string{"busy in the plugin's mount namespace (an open file or a working directory)"})
		} else if err != nil {
			return fmt.Errorf("remove volume %q: %w", v.Name, err)
		}
	}
	keep := v.Options.Keep || v.Options.Type == TypeBind
	var trash string
	switch {
	case v.Options.Type == TypeBind:
	case keep:
		marker, err := json.Marshal(record{Name: v.Name, Options: v.Options, ProjectID: v.ProjectID, CreatedAt: v.CreatedAt})
		if err == nil {
			err = atomicfile.Write(d.keptMarker(v.Name), marker, 0o600, true)
		}
		if err != nil {
			return fmt.Errorf("remove volume %q: mark its data kept: %w", v.Name, err)
		}
	default:
		if trash, err = d.toTrash(v); err != nil {
			return fmt.Errorf("remove volume %q: %w", v.Name, err)
		}
	}
	delete(d.st.Volumes, v.Name)
	if err := d.save(); err != nil {
		d.st.Volumes[v.Name] = v
		if trash != "" {
			if err := d.fromTrash(v.Name, trash); err != nil {
				d.log.Error("undo remove: the volume's data stays in the trash until the next start", "volume", v.Name, "err", err)
			}
		}
		return err
	}
	d.clearQuota(v)
	if v.Options.Type == TypeBind {
		d.removeMntDir(v)
	}
	d.log.Info("volume removed", "volume", v.Name, "kept data", keep)
	return nil
}

// Mount counts a mount ID and returns the volume's path, mounting its
// backing filesystem on first use. A repeated Mount of an ID still counted
// is a second use while the first holder lives (docker cp on a running
// container) and counts again; when nobody has the volume mounted any more,
// the old count is stale (the daemon died without Unmount) and is replaced.
func (d *Driver) Mount(req *volume.MountRequest) (*volume.MountResponse, error) {
	if err := checkID(req.ID); err != nil {
		return nil, err
	}
	v, err := d.open(req.Name)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if v.Mounts[req.ID] == 0 && len(v.Mounts) >= maxMountIDs {
		return nil, fmt.Errorf("volume %q already counts %d mount IDs, the most it keeps: %w", v.Name, len(v.Mounts), api.ErrConflict)
	}
	mp := d.mountpoint(v)
	old, oldDevs, oldTracked := maps.Clone(v.Mounts), slices.Clone(v.TmpfsDevs), v.TmpfsTracked
	if needsMount(v) {
		m, err := d.mounted(v)
		if err != nil {
			return nil, err
		}
		switch {
		case !m:
			d.forgetTmpfs(v) // saved with the count below
			err = d.mountBacking(v)
		case v.Options.Type == TypeBind:
			// Mounted for an earlier user: the directory must still be
			// allowed, and reached without a symlink, for this one.
			var fd int
			if fd, err = d.binds.open(v.Options.Path); err == nil {
				_ = unix.Close(fd)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("mount volume %q: %w", v.Name, err)
		}
	} else if _, err := os.Stat(mp); err != nil {
		return nil, fmt.Errorf("volume %q: its directory is gone: %w", v.Name, err)
	}
	if v.Mounts == nil {
		v.Mounts = map[string]int{}
	}
	if c := v.Mounts[req.ID]; c > 0 {
		if d.unused(v) {
			d.log.Info("mount ID counted but nobody has the volume mounted: its holder died, count reset", "volume", v.Name, "id", req.ID, "stale", c)
			v.Mounts[req.ID] = 0
		}
	}
	v.Mounts[req.ID]++
	if err := d.save(); err != nil {
		v.Mounts, v.TmpfsDevs, v.TmpfsTracked = old, oldDevs, oldTracked
		if v.refs() == 0 && needsMount(v) {
			_ = d.unmountBacking(v)
		}
		return nil, err
	}
	d.log.Debug("mount", "volume", v.Name, "id", req.ID, "refs", v.refs())
	return &volume.MountResponse{Mountpoint: mp}, nil
}

// Unmount drops one count of a mount ID; the backing filesystem is unmounted
// when no count is left. Unknown volumes and IDs are no error.
func (d *Driver) Unmount(req *volume.UnmountRequest) error {
	if err := checkName(req.Name); err != nil {
		return err
	}
	if err := checkID(req.ID); err != nil {
		return err
	}
	if err := d.begin(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	v, ok := d.st.Volumes[req.Name]
	if !ok || v.Mounts[req.ID] == 0 {
		d.log.Debug("unmount of an unknown volume or mount ID", "volume", req.Name, "id", req.ID)
		return nil
	}
	old := maps.Clone(v.Mounts)
	if v.Mounts[req.ID]--; v.Mounts[req.ID] == 0 {
		delete(v.Mounts, req.ID)
	}
	// The count is saved first: a crash before the teardown leaves a mount
	// nobody counts, which the next start removes.
	if err := d.save(); err != nil {
		v.Mounts = old
		return err
	}
	if v.refs() == 0 && needsMount(v) {
		if err := d.unmountBacking(v); err != nil {
			d.log.Error("unmount with no user left; the next start or Mount retries", "volume", v.Name, "err", err)
		}
		if d.forgetTmpfs(v) {
			if err := d.save(); err != nil {
				d.log.Error("forget the devices of a tmpfs volume's gone filesystems", "volume", v.Name, "err", err)
			}
		}
	}
	d.log.Debug("unmount", "volume", v.Name, "id", req.ID, "refs", v.refs())
	return nil
}

// forgetTmpfs drops from a tmpfs volume's record the devices of its
// filesystems that no namespace shows any more; it reports whether it
// dropped any.
func (d *Driver) forgetTmpfs(v *record) bool {
	if len(v.TmpfsDevs) == 0 {
		return false
	}
	alive, ok := d.aliveTmpfs()
	return ok && pruneTmpfs(v, alive)
}

// unused reports whether nothing but the plugin itself is known to use v's
// data; false when that cannot be told.
func (d *Driver) unused(v *record) bool {
	t, err := d.target(v)
	if err != nil {
		return false
	}
	uses, err := d.uses(t, false)
	return err == nil && len(uses) == 0
}

// Path returns a volume's mount point.
func (d *Driver) Path(req *volume.PathRequest) (*volume.PathResponse, error) {
	v, err := d.open(req.Name)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	return &volume.PathResponse{Mountpoint: d.mountpoint(v)}, nil
}

// Get describes a volume; Status carries its type, options, size and use.
func (d *Driver) Get(req *volume.GetRequest) (*volume.GetResponse, error) {
	v, err := d.open(req.Name)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	return &volume.GetResponse{Volume: d.describe(v)}, nil
}

// List describes every volume, in name order.
func (d *Driver) List() (*volume.ListResponse, error) {
	if err := d.begin(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	resp := &volume.ListResponse{Volumes: []*volume.Volume{}}
	for _, name := range slices.Sorted(maps.Keys(d.st.Volumes)) {
		v := d.st.Volumes[name]
		resp.Volumes = append(resp.Volumes, &volume.Volume{Name: v.Name, Mountpoint: d.mountpoint(v), CreatedAt: v.CreatedAt})
	}
	return resp, nil
}

func (d *Driver) describe(v *record) *volume.Volume {
	st := map[string]any{"type": v.Options.Type, "refs": v.refs()}
	if v.Options.Size > 0 {
		st["size"] = api.FormatSize(uint64(v.Options.Size))
	}
	if v.Options.Keep {
		st["keep"] = true
	}
	if v.Options.FS != "" {
		st["fs"] = v.Options.FS
	}
	if used, _, ok := d.usage(v); ok {
		st["used_bytes"] = used
	}
	return &volume.Volume{Name: v.Name, Mountpoint: d.mountpoint(v), CreatedAt: v.CreatedAt, Status: st}
}

// Capabilities: volumes live on this host.
func (d *Driver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}

func fmtOpts(o map[string]string) string {
	if len(o) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(o)) {
		parts = append(parts, k+"="+o[k])
	}
	return strings.Join(parts, ",")
}
