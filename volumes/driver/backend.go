package driver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/mountinfo"
)

// Layout under the plugin root:
//
//	state.json                   the volumes, their options and reference counts
//	lock                         held by the running plugin
//	volumes/NAME/data            a dir volume (its XFS project when size-limited)
//	volumes/NAME/disk.img        a loop volume's sparse image
//	volumes/NAME/mnt             where a loop, tmpfs or bind volume is mounted
//	volumes/NAME/kept.json       says the data was kept on Remove (keep=true)
//	trash/                       removed volumes' data, until it is deleted
func (d *Driver) volDir(name string) string  { return filepath.Join(d.root, "volumes", name) }
func (d *Driver) dataDir(name string) string { return filepath.Join(d.volDir(name), "data") }
func (d *Driver) image(name string) string   { return filepath.Join(d.volDir(name), "disk.img") }
func (d *Driver) mntDir(name string) string  { return filepath.Join(d.volDir(name), "mnt") }

// mountpoint is where a volume's data is seen on this host. A bind volume's
// host directory is bind-mounted under the plugin root, so that what Docker
// mounts into containers is what the plugin checked, not whatever the host
// path names by then.
func (d *Driver) mountpoint(v *record) string {
	if needsMount(v) {
		return d.mntDir(v.Name)
	}
	return d.dataDir(v.Name)
}

// needsMount reports whether the volume has a backing mount made at the
// first Mount and torn down at the last Unmount.
func needsMount(v *record) bool {
	switch v.Options.Type {
	case TypeLoop, TypeTmpfs, TypeBind:
		return true
	}
	return false
}

// tmpfsSource names a tmpfs volume's filesystem (the source field of
// mountinfo), for people, and for finding the mounts of a record of an
// earlier version that knows no devices (see record.TmpfsDevs); tag sets
// apart plugins with other roots.
func (d *Driver) tmpfsSource(v *record) string { return "caisson-" + d.tag + "-" + v.Name }

// applyOwner sets the requested owner and mode on dir, following symlinks
// (dir may be a /proc/self/fd link).
func applyOwner(dir string, o Options) error {
	if o.UID != nil || o.GID != nil {
		uid, gid := -1, -1
		if o.UID != nil {
			uid = *o.UID
		}
		if o.GID != nil {
			gid = *o.GID
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("set owner: %w", err)
		}
	}
	if o.Mode != nil {
		if err := unix.Chmod(dir, *o.Mode); err != nil {
			return fmt.Errorf("set mode: %w", err)
		}
	}
	return nil
}

// makeImage creates a loop volume's sparse image and formats it.
func makeImage(ctx context.Context, img string, o Options) error {
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create image: %w", err)
	}
	err = f.Truncate(o.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size image: %w", err)
	}
	var cmd []string
	switch o.FS {
	case "xfs":
		cmd = []string{"mkfs.xfs", "-q", "-f", img}
	default:
		// No blocks reserved for root: the volume's size is what users get.
		cmd = []string{"mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", img}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", cmd[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unmountBacking unmounts a loop, tmpfs or bind volume. A mount still busy
// in this namespace is detached lazily: the filesystem lives on until its
// last user lets go, and the loop device is freed then.
func (d *Driver) unmountBacking(v *record) error {
	return d.unmountMnt(v, true)
}

// mounted reports whether a volume's backing mount is in place.
func (d *Driver) mounted(v *record) (bool, error) {
	ms, err := mountinfo.Read(0)
	if err != nil {
		return false, err
	}
	return mountinfo.IsMountPoint(ms, d.mntDir(v.Name)), nil
}

// aliveTmpfs is the set of tmpfs devices some mount namespace shows; ok is
// false when not every namespace that matters could be read.
func (d *Driver) aliveTmpfs() (alive map[[2]uint32]bool, ok bool) {
	nss, err := d.namespaces()
	if err != nil {
		return nil, false
	}
	alive = map[[2]uint32]bool{}
	for _, ns := range nss {
		for _, m := range ns.Mounts {
			if m.FSType == "tmpfs" {
				alive[[2]uint32{m.Major, m.Minor}] = true
			}
		}
	}
	return alive, true
}

// pruneTmpfs drops from a tmpfs volume's record the devices of filesystems
// that alive (see aliveTmpfs) does not show: they are gone, and their
// numbers free for anyone's. It reports whether it dropped any.
func pruneTmpfs(v *record, alive map[[2]uint32]bool) bool {
	n := len(v.TmpfsDevs)
	v.TmpfsDevs = slices.DeleteFunc(v.TmpfsDevs, func(dev [2]uint32) bool { return !alive[dev] })
	if len(v.TmpfsDevs) == 0 {
		v.TmpfsDevs = nil
	}
	return len(v.TmpfsDevs) != n
}

// usage is the space a volume uses and may use, when known.
func (d *Driver) usage(v *record) (used, size uint64, ok bool) {
	if v.ProjectID != 0 && d.quota != nil {
		u, l, err := d.quota.Usage(v.ProjectID)
		return u, l, err == nil
	}
	if v.Options.Type == TypeLoop || v.Options.Type == TypeTmpfs {
		if m, err := d.mounted(v); err != nil || !m {
			return 0, 0, false
		}
		var st unix.Statfs_t
		if err := unix.Statfs(d.mntDir(v.Name), &st); err != nil {
			return 0, 0, false
		}
		bs := uint64(st.Bsize)
		return (st.Blocks - st.Bfree) * bs, st.Blocks * bs, true
	}
	return 0, 0, false
}

// errUnsupportedSize explains why a dir volume cannot have a size here.
func errUnsupportedSize(why error) error {
	return fmt.Errorf("size on a type=dir volume needs the plugin root on XFS mounted with prjquota (%v); the option type=loop gives a size limit on any filesystem: %w", why, api.ErrInvalid)
}
