package userfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/caisson/caisson/api"
)

// maxHops bounds the symlinks followed, as the kernel's MAXSYMLINKS does.
const maxHops = 40

// File is an output being written: write to it, then Commit to publish it,
// or Discard to leave the path as it was. Discard after Commit does
// nothing, so that `defer f.Discard()` cleans up every early return.
type File struct {
	f    *os.File
	name string // as the user gave it
	// target is the file renamed over on Commit; "" when writing through
	// (a device, a FIFO, an open file under /proc).
	target string
	done   bool
}

// target is where a write goes.
type target struct {
	path     string      // the file to create or replace
	existing fs.FileInfo // the regular file replaced; nil when there is none
	through  bool        // write through path itself, no rename
	append   bool        // with through: at the end of the file
	// with through: what path named when it was checked; the file opened
	// must be that one.
	checked fs.FileInfo
}

// beforeOpen, when set, is called between the checks of a path written
// through and its open. Tests use it to change the path there.
var beforeOpen func(path string)

// Create opens path for writing, by what it names (see the package doc).
// perm is the mode of a file that does not exist yet, less the umask; a
// file that exists keeps its own.
func Create(path string, perm fs.FileMode) (*File, error) {
	if path == "" {
		return nil, fmt.Errorf("write: the path is empty: %w", api.ErrInvalid)
	}
	t, err := resolve(path)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if t.through {
		// O_NOCTTY: a terminal written to does not become this process's
		// controlling terminal.
		flags := os.O_WRONLY | syscall.O_NOCTTY
		if t.append {
			flags |= os.O_APPEND
		}
		if beforeOpen != nil {
			beforeOpen(path)
		}
		f, err := os.OpenFile(path, flags, 0)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		// The path is opened again by name: what it names may have been
		// replaced since it was checked (a link swapped for one to a
		// regular file, which would be written over without truncation).
		if err := sameNode(f, t.checked); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		return &File{f: f, name: path}, nil
	}
	f, err := createTemp(t.path, perm)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if t.existing != nil {
		keepOwner(f, t.existing)
		if err := f.Chmod(t.existing.Mode().Perm()); err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return &File{f: f, name: path, target: t.path}, nil
}

// Check reports whether Create would accept path, without creating or
// opening anything: a command checks its outputs before its work, and
// creates them only once it has something to write, so that a run cut
// short (Ctrl-C) leaves nothing beside them. Create checks again.
func Check(path string) error {
	if path == "" {
		return fmt.Errorf("write: the path is empty: %w", api.ErrInvalid)
	}
	t, err := resolve(path)
	if err == nil && !t.through {
		// The temporary file is made beside the target.
		var fi fs.FileInfo
		if fi, err = os.Stat(filepath.Dir(t.path)); err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s: %w", filepath.Dir(t.path), syscall.ENOTDIR)
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Write writes data to path as Create and Commit do.
func Write(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Discard()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// Name is the path as the user gave it.
func (f *File) Name() string { return f.name }

// Write writes to the temporary file, or through to the device.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.f.Write(p)
	if err != nil {
		// Name the path the user gave, not the temporary file.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return n, fmt.Errorf("write %s: %w", f.name, err)
	}
	return n, nil
}

// Commit publishes what was written: the temporary file is flushed and
// renamed over the target, or the device closed. If the target has become
// something other than a regular file since Create, nothing is renamed
// and the error wraps api.ErrInvalid.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("write %s: already committed or discarded: %w", f.name, fs.ErrClosed)
	}
	f.done = true
	if f.target == "" {
		if err := f.f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		return nil
	}
	tmp := f.f.Name()
	err := f.f.Sync()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = replaceable(f.target)
	}
	if err == nil {
		err = os.Rename(tmp, f.target)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", f.name, err)
	}
	return nil
}

// Discard leaves the path as it was before Create (what was written
// through to a device stays written). It does nothing after Commit.
func (f *File) Discard() {
	if f.done {
		return
	}
	f.done = true
	_ = f.f.Close()
	if f.target != "" {
		_ = os.Remove(f.f.Name())
	}
}

// resolve finds where a write to path goes.
func resolve(path string) (target, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing there, or a dangling symlink: create what it names.
		p, magic, err := follow(path)
		switch {
		case err != nil:
			return target{}, err
		case magic:
			return target{}, fmt.Errorf("a link under /proc to nothing: %w", fs.ErrNotExist)
		}
		return target{path: p}, nil
	}
	if err != nil {
		return target{}, err
	}
	m := fi.Mode()
	switch {
	case m.IsRegular(), m&fs.ModeCharDevice != 0, m&fs.ModeNamedPipe != 0:
	case m.IsDir():
		return target{}, fmt.Errorf("a directory: want a regular file, a character device or a FIFO: %w", api.ErrInvalid)
	case m&fs.ModeSocket != 0:
		return target{}, fmt.Errorf("a socket: want a regular file, a character device or a FIFO: %w", api.ErrInvalid)
	case m&fs.ModeDevice != 0:
		return target{}, fmt.Errorf("a block device: want a regular file, a character device or a FIFO: %w", api.ErrInvalid)
	default:
		return target{}, fmt.Errorf("of type %s: want a regular file, a character device or a FIFO: %w", m.Type(), api.ErrInvalid)
	}
	p, magic, err := follow(path)
	switch {
	case err != nil:
		return target{}, err
	case !m.IsRegular():
		return target{through: true, checked: fi}, nil
	case magic:
		return target{through: true, append: true, checked: fi}, nil
	}
	lfi, err := os.Lstat(p)
	if err != nil || !os.SameFile(fi, lfi) {
		return target{}, fmt.Errorf("its symlinks changed while they were followed: %w", api.ErrInvalid)
	}
	return target{path: p, existing: fi}, nil
}

// follow follows the symlinks at the end of path and returns the path they
// lead to (which may not exist). magic reports a link in procfs (such as
// /proc/self/fd/1 that /dev/stdout names): only the kernel can follow it,
// and the caller must open path itself.
func follow(path string) (final string, magic bool, err error) {
	p := path
	for range maxHops {
		lfi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, false, nil
		}
		if err != nil {
			return "", false, err
		}
		if lfi.Mode()&fs.ModeSymlink == 0 {
			return p, false, nil
		}
		dir := filepath.Dir(p)
		if onProcfs(dir) {
			return p, true, nil
		}
		if err := mayFollow(p, lfi, dir); err != nil {
			return "", false, err
		}
		t, err := os.Readlink(p)
		if err != nil {
			return "", false, err
		}
		if !filepath.IsAbs(t) {
			// The target is relative to the link's directory as the
			// kernel finds it, symlinks and all, not as the path spells it.
			if dir, err = filepath.EvalSymlinks(dir); err != nil {
				return "", false, err
			}
			t = filepath.Join(dir, t)
		}
		p = t
	}
	return "", false, &fs.PathError{Op: "follow", Path: path, Err: syscall.ELOOP}
}

// sameNode checks that the open file f is the node checked, and still of
// its type.
func sameNode(f *os.File, checked fs.FileInfo) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(fi, checked) || fi.Mode().Type() != checked.Mode().Type() {
		return fmt.Errorf("it changed between its checks and its open (now a %s): not written: %w", kindOf(fi.Mode()), api.ErrInvalid)
	}
	return nil
}

// kindOf names a file type for errors.
func kindOf(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	default:
		return m.Type().String()
	}
}

// replaceable checks, just before the rename, that the target is still
// nothing or a regular file.
func replaceable(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s became a %s while it was written: not replaced: %w", path, fi.Mode().Type(), api.ErrInvalid)
	}
	return nil
}

// createTemp creates a new file beside target, with perm less the umask.
func createTemp(target string, perm fs.FileMode) (*os.File, error) {
	dir, base := filepath.Split(target)
	for {
		name := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
}
