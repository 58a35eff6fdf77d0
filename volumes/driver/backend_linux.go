package driver

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/internal/loopdev"
)

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

func modeOr(o Options, def uint32) uint32 {
	if o.Mode != nil {
		return *o.Mode
	}
	return def
}
