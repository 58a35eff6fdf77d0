package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/loopdev"
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

// mountBacking mounts a loop, tmpfs or bind volume on its mnt dir. A loop image
// still attached to a device (its filesystem alive in some container after
// our own mount went away) is mounted from that device, so one image never
// has two filesystems alive at once.
func (d *Driver) mountBacking(v *record) error {
	mnt := d.mntDir(v.Name)
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	switch v.Options.Type {
	case TypeBind:
		return d.mountBind(v, mnt)
	case TypeTmpfs:
		opts := []string{"mode=" + strconv.FormatUint(uint64(modeOr(v.Options, 0o755)), 8)}
		if v.Options.Size > 0 {
			opts = append(opts, "size="+strconv.FormatInt(v.Options.Size, 10))
		}
		if v.Options.UID != nil {
			opts = append(opts, "uid="+strconv.Itoa(*v.Options.UID))
		}
		if v.Options.GID != nil {
			opts = append(opts, "gid="+strconv.Itoa(*v.Options.GID))
		}
		if err := unix.Mount(d.tmpfsSource(v), mnt, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, strings.Join(opts, ",")); err != nil {
			return fmt.Errorf("mount tmpfs: %w", err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(mnt, &st); err != nil {
			_ = d.unmountMnt(v, true)
			return fmt.Errorf("mount tmpfs: %w", err)
		}
		if dev := [2]uint32{unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))}; !slices.Contains(v.TmpfsDevs, dev) {
			v.TmpfsDevs = append(v.TmpfsDevs, dev)
		}
		v.TmpfsTracked = true
		return nil
	case TypeLoop:
		img := d.image(v.Name)
		devs, err := loopdev.Find(img)
		if err != nil {
			return err
		}
		if len(devs) > 0 {
			if err := unix.Mount(devs[0], mnt, v.Options.FS, 0, ""); err != nil {
				return fmt.Errorf("mount %s (already attached to %s): %w", img, devs[0], err)
			}
			return nil
		}
		dev, err := loopdev.Attach(img)
		if err != nil {
			return err
		}
		if err := unix.Mount(dev.Path(), mnt, v.Options.FS, 0, ""); err != nil {
			_ = dev.Detach()
			_ = dev.Close()
			return fmt.Errorf("mount %s on %s: %w", img, dev.Path(), err)
		}
		// The mount holds the device now; autoclear frees it at unmount.
		return dev.Close()
	}
	return nil
}

func modeOr(o Options, def uint32) uint32 {
	if o.Mode != nil {
		return *o.Mode
	}
	return def
}

// unmountBacking unmounts a loop, tmpfs or bind volume. A mount still busy
// in this namespace is detached lazily: the filesystem lives on until its
// last user lets go, and the loop device is freed then.
func (d *Driver) unmountBacking(v *record) error {
	return d.unmountMnt(v, true)
}

// unmountMnt unmounts whatever is mounted on a volume's mnt dir (a mount
// made twice, by a crash between mount and save, is unmounted twice). With
// lazy false, a mount busy in this namespace (an open file, a working
// directory) is left in place and the error wraps unix.EBUSY.
func (d *Driver) unmountMnt(v *record, lazy bool) error {
	mnt := d.mntDir(v.Name)
	for range 16 {
		err := unix.Unmount(mnt, unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EBUSY) && lazy {
			d.log.Warn("volume busy in the plugin's namespace, detaching it lazily", "volume", v.Name)
			err = unix.Unmount(mnt, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not mounted (any more)
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 16 unmounts: %w", mnt, unix.EBUSY)
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
