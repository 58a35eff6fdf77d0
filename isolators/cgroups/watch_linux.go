package cgroups

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/isolators"
)

// awaitKillFor bounds how long Watch polls for the kill that follows a v1
// OOM notification: the kernel notifies before the OOM killer has run.
const awaitKillFor = 2 * time.Second

func (i *Isolator) watch(ctx context.Context, p string, specLimit int64) (*isolators.Limitation, error) {
	if !i.exists(p) {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, notFound(p)
	}
	limit := func() int64 {
		if l := i.memoryLimit(p); l > 0 {
			return l
		}
		return specLimit
	}
	if ctx.Err() != nil {
		return i.lastCheck(p, limit)
	}
	// Register before the first read of the counter, so that an OOM is
	// either counted by that read or signalled after it.
	events, err := i.oomEvents(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if !i.exists(p) {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, notFound(p)
		}
		// No memory controller in this cgroup: there is no limit to hit.
		<-ctx.Done()
		return nil, nil
	}
	// Close interrupts the blocking Read below when ctx is done; Watch
	// returns only after that callback has finished.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = events.Close()
		close(closed)
	})
	defer func() {
		if stop() {
			_ = events.Close()
		} else {
			<-closed
		}
	}()
	buf := make([]byte, 4096)
	signalled := false
	for {
		kills, under, err := i.readOOM(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The cgroup is gone: nothing can be hit any more.
			<-ctx.Done()
			return nil, nil
		case err != nil:
			return nil, err
		case kills > 0:
			return oomLimitation(limit()), nil
		case under || (signalled && i.host.Mode == V1):
			// v1 signals an OOM before the OOM killer has run, and may
			// already show under_oom 0 by then: give the killer time.
			if i.awaitKill(ctx, p, !signalled) {
				return oomLimitation(limit()), nil
			}
			if ctx.Err() != nil {
				return i.lastCheck(p, limit)
			}
		}
		if _, err := events.Read(buf); err != nil {
			if ctx.Err() != nil {
				return i.lastCheck(p, limit)
			}
			return nil, fmt.Errorf("wait for oom events of cgroup %s: %w", p, err)
		}
		signalled = true
	}
}

// lastCheck is Watch's check once ctx is done.
func (i *Isolator) lastCheck(p string, limit func() int64) (*isolators.Limitation, error) {
	kills, _, err := i.readOOM(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	case kills > 0:
		return oomLimitation(limit()), nil
	}
	return nil, nil
}

// awaitKill polls the kill counter after a v1 OOM notification, or while
// the cgroup is under OOM, and reports whether the OOM killer killed a
// process. It gives up after awaitKillFor, when ctx is done, or, with
// whileUnder, as soon as the cgroup is no longer under OOM.
func (i *Isolator) awaitKill(ctx context.Context, p string, whileUnder bool) bool {
	delay := time.Millisecond
	for waited := time.Duration(0); waited < awaitKillFor; waited += delay {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		kills, under, err := i.readOOM(p)
		if err != nil || kills > 0 || (whileUnder && !under) {
			return kills > 0
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
	return false
}

// oomEvents returns a file that becomes readable when something happens to
// the cgroup's OOM state: on v1 an eventfd registered on memory.oom_control
// through cgroup.event_control, on v2 an inotify watch on memory.events. Its
// descriptor is non-blocking, so Close interrupts a blocked Read. The error
// wraps fs.ErrNotExist when the cgroup has no memory controller.
func (i *Isolator) oomEvents(p string) (*os.File, error) {
	dir := i.dir("memory", p)
	if i.host.Mode == V2 {
		file := filepath.Join(dir, "memory.events")
		if _, err := os.Stat(file); err != nil {
			return nil, err
		}
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("inotify: %w", err)
		}
		if _, err := unix.InotifyAddWatch(fd, file, unix.IN_MODIFY); err != nil {
			_ = unix.Close(fd)
			return nil, &fs.PathError{Op: "inotify_add_watch", Path: file, Err: err}
		}
		return os.NewFile(uintptr(fd), "inotify:"+file), nil
	}
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	reg := strconv.Itoa(efd) + " " + strconv.FormatUint(uint64(ctl.Fd()), 10)
	if err := writeExisting(filepath.Join(dir, "cgroup.event_control"), reg); err != nil {
		_ = unix.Close(efd)
		return nil, fmt.Errorf("register oom event: %w", err)
	}
	return os.NewFile(uintptr(efd), "eventfd:"+dir), nil
}

func writeExisting(file, value string) error {
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
