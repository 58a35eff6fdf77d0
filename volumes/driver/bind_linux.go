package driver

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// openNoFollow opens the directory path with O_PATH, refusing symlinks in
// any component.
func openNoFollow(path string) (int, error) {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /: %w", err)
	}
	walked := ""
	for _, c := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if c == "" {
			continue
		}
		walked += "/" + c
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		_ = unix.Close(fd)
		switch {
		case errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP):
			return -1, fmt.Errorf("bind path %s: %s is a symlink or not a directory (the path changed since the volume was created): %w", path, walked, api.ErrInvalid)
		case errors.Is(err, unix.ENOENT):
			return -1, fmt.Errorf("bind path %s: %s does not exist: %w", path, walked, api.ErrNotFound)
		case err != nil:
			return -1, fmt.Errorf("bind path %s: open %s: %w", path, walked, err)
		}
		fd = next
	}
	return fd, nil
}

// mountBind bind-mounts a bind volume's directory on mnt, through the
// descriptor the checks were made on. The mount is not recursive: mounts
// below the directory are not exposed.
func (d *Driver) mountBind(v *record, mnt string) error {
	fd, err := d.binds.open(v.Options.Path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Mount(fdPath(fd), mnt, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", v.Options.Path, err)
	}
	return nil
}
