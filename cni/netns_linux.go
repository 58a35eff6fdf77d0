package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/flock"
)

// isNetns reports whether path is a mounted network namespace handle.
func isNetns(path string) bool {
	var fs unix.Statfs_t
	if path == "" || unix.Statfs(path, &fs) != nil {
		return false
	}
	return fs.Type == unix.NSFS_MAGIC
}

// ensureNetnsDir makes the namespace directory a shared mount of its own
// (as iproute2 does for /run/netns), so that unmounting a handle also
// unmounts the copies other mount namespaces made of it.
func (iso *Isolator) ensureNetnsDir() error {
	dir := filepath.Join(iso.cfg.RunDir, "netns")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	l, err := flock.Acquire(filepath.Join(iso.cfg.RunDir, "netns.lock"), true)
	if err != nil {
		return err
	}
	defer l.Unlock()
	err = unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err = unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", dir, err)
		}
		err = unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", dir, err)
	}
	return nil
}

// pin creates a network namespace and bind-mounts it at path. util-linux's
// unshare does the namespace work in a child process, which also brings
// loopback up, so no thread of this process changes namespace.
func (iso *Isolator) pin(ctx context.Context, path string) error {
	if iso.unshare == "" {
		return fmt.Errorf("unshare (util-linux) is not installed: cannot create network namespaces: %w", api.ErrUnavailable)
	}
	if err := iso.ensureNetnsDir(); err != nil {
		return err
	}
	if err := unpin(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return err
	}
	_ = f.Close()
	args := []string{"--net=" + path}
	if iso.ip != "" {
		args = append(args, iso.ip, "link", "set", "lo", "up")
	} else {
		args = append(args, "true") // the loopback plugin brings lo up
	}
	if out, err := exec.CommandContext(ctx, iso.unshare, args...).CombinedOutput(); err != nil {
		_ = unpin(path)
		return fmt.Errorf("create network namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unpin unmounts and removes a namespace handle; it succeeds when there is
// none.
func unpin(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
