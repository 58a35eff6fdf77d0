package driver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/mountinfo"
)

// bindPolicy says which host directories bind volumes may expose: those at
// or under an allowed directory, never the plugin root, anything inside it
// or anything that holds it (its state and every volume).
type bindPolicy struct {
	root  string   // the plugin root, resolved
	allow []string // resolved, cleaned; "/" allows any directory
}

// newBindPolicy resolves the allowed directories. Each must be an absolute
// path to an existing directory, outside the plugin root.
func newBindPolicy(root string, allow []string) (*bindPolicy, error) {
	p := &bindPolicy{root: root}
	for _, a := range allow {
		if !filepath.IsAbs(a) || strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("bind allow list: %q is not an absolute path: %w", a, api.ErrInvalid)
		}
		real, err := filepath.EvalSymlinks(a)
		if err != nil {
			return nil, fmt.Errorf("bind allow list: %q: %w: %w", a, err, api.ErrInvalid)
		}
		if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("bind allow list: %q is not a directory: %w", a, api.ErrInvalid)
		}
		if within(real, root) {
			return nil, fmt.Errorf("bind allow list: %q is inside the plugin root %s: %w", a, root, api.ErrInvalid)
		}
		p.allow = append(p.allow, real)
	}
	return p, nil
}

// within reports whether path is dir or inside it (both clean, absolute).
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// allowed reports whether the admin allows binding real.
func (p *bindPolicy) allowed(real string) bool {
	for _, a := range p.allow {
		if within(real, a) {
			return true
		}
	}
	return false
}

// check is what Create does with a bind volume's path: it must be absolute,
// an existing directory, allowed, and apart from the plugin root. It returns
// the path with symlinks resolved, which every Mount opens again without
// following any symlink.
func (p *bindPolicy) check(path string) (string, error) {
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("not an absolute path: %w", api.ErrInvalid)
	}
	if len(p.allow) == 0 {
		return "", fmt.Errorf("this volume plugin allows no bind volumes (its administrator has not named any directory they may expose): %w", api.ErrInvalid)
	}
	real, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("does not exist: %w", api.ErrInvalid)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	fd, err := p.open(real)
	if errors.Is(err, api.ErrInvalid) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	_ = unix.Close(fd)
	return real, nil
}

// open opens a bind volume's directory, O_PATH, walking from / one component
// at a time without following symlinks, so that a path changed since Create
// (a component replaced by a symlink) is refused rather than followed. The
// directory reached is checked again: allowed, and apart from the plugin
// root, by its path and by its place in its filesystem (a bind mount of the
// root elsewhere is refused too). Mount mounts it through /proc/self/fd.
func (p *bindPolicy) open(real string) (int, error) {
	if !filepath.IsAbs(real) || filepath.Clean(real) != real {
		return -1, fmt.Errorf("bind path %q is not a clean absolute path: %w", real, api.ErrInvalid)
	}
	fd, err := openNoFollow(real)
	if err != nil {
		return -1, err
	}
	if err := p.checkOpen(fd, real); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// fdPath is the magic link through which the kernel reaches fd's file.
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// checkOpen checks the directory fd, opened as path.
func (p *bindPolicy) checkOpen(fd int, path string) error {
	// Where the directory is now, as the kernel names it.
	now, err := os.Readlink(fdPath(fd))
	if err != nil {
		return fmt.Errorf("bind path %s: %w", path, err)
	}
	for _, where := range []string{path, now} {
		switch {
		case !p.allowed(where):
			return fmt.Errorf("bind path %s is not in a directory this plugin allows bind volumes from: %w", where, api.ErrInvalid)
		case within(where, p.root):
			return fmt.Errorf("bind path %s is inside the plugin root %s: %w", where, p.root, api.ErrInvalid)
		case within(p.root, where):
			return fmt.Errorf("bind path %s holds the plugin root %s (its state and every volume): %w", where, p.root, api.ErrInvalid)
		}
	}
	// The same checks by place in the filesystems, which bind mounts
	// (another name for the same directory) do not fool.
	ms, err := mountinfo.Read(0)
	if err != nil {
		return err
	}
	dir, okd := placeOf(ms, now)
	root, okr := placeOf(ms, p.root)
	if okd && okr && dir.dev == root.dev && (within(dir.inner, root.inner) || within(root.inner, dir.inner)) {
		return fmt.Errorf("bind path %s is the plugin root %s, inside it or holds it, under another name: %w", path, p.root, api.ErrInvalid)
	}
	return nil
}

// place is where a directory lies: its filesystem (a device number) and its
// path inside that filesystem, as mountinfo's root field names it.
type place struct {
	dev   [2]uint32
	inner string
}

// placeOf finds where path (absolute, resolved) lies, from the mounts ms of
// the namespace that path is named in.
func placeOf(ms []mountinfo.Mount, path string) (place, bool) {
	m, ok := mountinfo.Containing(ms, path)
	if !ok {
		return place{}, false
	}
	return place{dev: [2]uint32{m.Major, m.Minor}, inner: filepath.Join(m.Root, strings.TrimPrefix(path, m.MountPoint))}, true
}
