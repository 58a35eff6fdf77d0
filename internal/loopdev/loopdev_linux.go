package loopdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

const (
	loopControl = "/dev/loop-control"
	loopMajor   = 7
	// attachTries bounds the retries when another process binds the free
	// device that LOOP_CTL_GET_FREE gave us before we do.
	attachTries = 32
)

// attachMu serialises attaches within this process, so that two goroutines
// never race for the same free device; other processes are handled by
// retrying (see retryable).
var attachMu sync.Mutex

// Attach attaches file (opened read-write) to a free loop device with
// LO_FLAGS_AUTOCLEAR and returns the Device. Its Close releases our
// descriptor; after that the kernel frees the device as soon as nothing else
// holds it, so a mount made from it keeps it alive until unmount. A missing
// file gives an error wrapping api.ErrNotFound; a host without loop support
// one wrapping api.ErrUnavailable.
func Attach(file string) (*Device, error) {
	return attach(file, configure)
}

// attach is Attach with bind, the way to bind a file to a loop device.
func attach(file string, bind bindFunc) (*Device, error) {
	backing, err := unix.Open(file, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("loop backing file %s does not exist: %w", file, api.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open loop backing file %s: %w", file, err)
	}
	// The kernel takes its own reference to the file when the device is bound.
	defer unix.Close(backing)
	name := file
	if abs, err := filepath.Abs(file); err == nil {
		name = abs
	}

	attachMu.Lock()
	defer attachMu.Unlock()
	ctl, err := unix.Open(loopControl, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("open %s: %w", loopControl, api.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", loopControl, err)
	}
	defer unix.Close(ctl)

	var last error
	for range attachTries {
		n, err := unix.IoctlRetInt(ctl, unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("find a free loop device: %w", err)
		}
		d, err := open(n, backing, name, bind)
		if retryable(err) {
			last = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("attach %s: %w", file, err)
		}
		return d, nil
	}
	return nil, fmt.Errorf("attach %s: every free loop device was taken by others %d times: %w", file, attachTries, last)
}

// retryable reports whether err means the free device was taken before us
// (EBUSY: another process bound it) or is going away (ENXIO: another process
// is clearing or removing it): another free device is asked for.
func retryable(err error) bool {
	return errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENXIO)
}

// bindFunc binds the file backing to the loop device fd with info.
type bindFunc func(fd, backing int, info *unix.LoopInfo64) error

// open binds backing to /dev/loopN, creating the node when it is missing,
// and returns the Device holding it.
func open(n, backing int, name string, bind bindFunc) (*Device, error) {
	path := "/dev/loop" + strconv.Itoa(n)
	if err := ensureNode(path, n); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var info unix.LoopInfo64
	info.Flags = unix.LO_FLAGS_AUTOCLEAR
	// File_name is informational (LOOP_GET_STATUS64, losetup); the kernel
	// keeps LO_NAME_SIZE-1 bytes and a terminating NUL.
	copy(info.File_name[:len(info.File_name)-1], name)
	if err := bind(fd, backing, &info); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Device{path: path, fd: fd}, nil
}

// configure binds with LOOP_CONFIGURE where the kernel has it (5.8 and
// later), in one step, and with setFD elsewhere.
func configure(fd, backing int, info *unix.LoopInfo64) error {
	cfg := unix.LoopConfig{Fd: uint32(backing), Info: *info}
	err := unix.IoctlLoopConfigure(fd, &cfg)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
		// Before 5.8 LOOP_CONFIGURE is unknown. EINVAL can also mean a
		// bad argument, which LOOP_SET_FD then reports again.
		return setFD(fd, backing, info)
	}
	if err != nil {
		return fmt.Errorf("LOOP_CONFIGURE: %w", err)
	}
	return nil
}

// setFD binds with LOOP_SET_FD, then sets the flags and name with
// LOOP_SET_STATUS64, unbinding again when that fails.
func setFD(fd, backing int, info *unix.LoopInfo64) error {
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_FD, backing); err != nil {
		return fmt.Errorf("LOOP_SET_FD: %w", err)
	}
	if err := unix.IoctlLoopSetStatus64(fd, info); err != nil {
		_ = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
		return fmt.Errorf("LOOP_SET_STATUS64: %w", err)
	}
	return nil
}

// ensureNode creates the block device node path for loop device n when it is
// missing, as in containers and minimal systems whose /dev was populated
// before the device existed. The device number comes from sysfs, since with
// the loop module's max_part the minor is not n.
func ensureNode(path string, n int) error {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	major, minor := uint32(loopMajor), uint32(n)
	if b, err := os.ReadFile(fmt.Sprintf("/sys/block/loop%d/dev", n)); err == nil {
		if ma, mi, ok := parseDevNum(string(b)); ok {
			major, minor = ma, mi
		}
	}
	err := unix.Mknod(path, unix.S_IFBLK|0o660, int(unix.Mkdev(major, minor)))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create loop device node %s: %w", path, err)
	}
	return nil
}

// parseDevNum parses "MAJOR:MINOR\n" as found in /sys/block/*/dev.
func parseDevNum(s string) (major, minor uint32, ok bool) {
	ma, mi, found := strings.Cut(strings.TrimSpace(s), ":")
	if !found {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(ma, 10, 32)
	b, err2 := strconv.ParseUint(mi, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(a), uint32(b), true
}

// Close releases our descriptor. The device stays bound while anything else
// holds it (a mount made from it) and is freed by the kernel when the last
// holder lets go; with nothing else holding it, Close frees it at once.
// Close is idempotent.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	if err != nil {
		return fmt.Errorf("close %s: %w", d.path, err)
	}
	return nil
}

// Detach unbinds the device with LOOP_CLR_FD and releases our descriptor: the
// failure path, before anything is mounted from the device. When something
// still holds the device the kernel only marks it for autoclear (which it
// already is). Detach after Detach does nothing; Detach after Close is an
// error wrapping api.ErrWrongState, since the device may already belong to
// someone else.
func (d *Device) Detach() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		if d.detached {
			return nil
		}
		return fmt.Errorf("detach %s: device already closed: %w", d.path, api.ErrWrongState)
	}
	clrErr := unix.IoctlSetInt(d.fd, unix.LOOP_CLR_FD, 0)
	closeErr := unix.Close(d.fd)
	d.fd = -1
	d.detached = true
	// ENXIO: the device was not bound any more.
	if clrErr != nil && !errors.Is(clrErr, unix.ENXIO) {
		return fmt.Errorf("detach %s: %w", d.path, clrErr)
	}
	if closeErr != nil {
		return fmt.Errorf("close %s: %w", d.path, closeErr)
	}
	return nil
}

// Find returns the loop devices ("/dev/loop7") currently backed by file, read
// from /sys/block/loop*/loop/backing_file, for reconciliation after a crash.
// A file deleted while attached is matched too.
func Find(file string) ([]string, error) {
	bound, err := FindBound(file)
	if err != nil {
		return nil, err
	}
	var devs []string
	for _, b := range bound {
		devs = append(devs, b.Path)
	}
	return devs, nil
}

// FindBound is Find with each device's number, which mountinfo shows for
// the filesystems mounted from it.
func FindBound(file string) ([]Bound, error) {
	want, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("find loop devices of %s: %w", file, err)
	}
	if resolved, err := filepath.EvalSymlinks(want); err == nil {
		want = resolved
	}
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, fmt.Errorf("find loop devices of %s: %w", file, err)
	}
	var devs []Bound
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // detached since the glob
		}
		if err != nil {
			return nil, fmt.Errorf("find loop devices of %s: %w", file, err)
		}
		backing := strings.TrimSuffix(string(b), "\n")
		if backing != want && backing != want+" (deleted)" {
			continue
		}
		sys := filepath.Dir(filepath.Dir(f))
		num, err := os.ReadFile(filepath.Join(sys, "dev"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("find loop devices of %s: %w", file, err)
		}
		major, minor, ok := parseDevNum(string(num))
		if !ok {
			return nil, fmt.Errorf("find loop devices of %s: %s: bad device number %q", file, sys, num)
		}
		devs = append(devs, Bound{Path: "/dev/" + filepath.Base(sys), Major: major, Minor: minor})
	}
	return devs, nil
}
