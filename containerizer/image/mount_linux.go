//go:build linux

package image

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/mountinfo"
)

// maxMountData is the size mount(2) copies of its data argument (a page).
const maxMountData = 4096

// mountOverlay mounts an overlay filesystem at target: lowers (topmost
// first) under upper, with work as overlayfs's work directory.
func mountOverlay(lowers []string, upper, work, target string) error {
	data := overlayData(lowers, upper, work)
	if len(data) >= maxMountData {
		// Too many layers for one page of options: name each lower
		// directory by an open descriptor, a much shorter path.
		short := make([]string, len(lowers))
		for i, l := range lowers {
			fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open layer %s: %w", l, err)
			}
			defer unix.Close(fd)
			short[i] = "/proc/self/fd/" + strconv.Itoa(fd)
		}
		data = overlayData(short, upper, work)
		if len(data) >= maxMountData {
			return fmt.Errorf("mount overlay at %s: %d layers are too many: %w", target, len(lowers), api.ErrInvalid)
		}
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("mount overlay at %s: the kernel has no overlayfs: %w", target, api.ErrUnavailable)
		}
		return fmt.Errorf("mount overlay at %s (%s): %w", target, data, err)
	}
	return nil
}

// overlayData formats overlayfs mount options, escaping the characters
// that separate options (",") and lower directories (":").
func overlayData(lowers []string, upper, work string) string {
	esc := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)
	ls := make([]string, len(lowers))
	for i, l := range lowers {
		ls[i] = esc.Replace(l)
	}
	return "lowerdir=" + strings.Join(ls, ":") + ",upperdir=" + esc.Replace(upper) + ",workdir=" + esc.Replace(work)
}

// unmount unmounts target, retrying a busy mount a few times before
// detaching it lazily. A path that is not a mount point is no error.
func unmount(ctx context.Context, target string) error {
	const tries = 5
	delay := 20 * time.Millisecond
	for i := 0; ; i++ {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case !errors.Is(err, unix.EBUSY):
			return fmt.Errorf("unmount %s: %w", target, err)
		}
		if i == tries-1 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("unmount %s: %w", target, ctx.Err())
		case <-time.After(delay):
		}
		delay *= 2
	}
	if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// unmountUnder unmounts everything at or below dir, deepest first, and
// checks that nothing is left, so that removing dir cannot reach into a
// mounted filesystem.
func unmountUnder(ctx context.Context, dir string) error {
	mps, err := mountinfo.Under(dir)
	if err != nil {
		return err
	}
	for _, mp := range mps {
		if err := unmount(ctx, mp); err != nil {
			return err
		}
	}
	left, err := mountinfo.Under(dir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("still mounted under %s: %s: %w", dir, strings.Join(left, ", "), api.ErrWrongState)
	}
	return nil
}
