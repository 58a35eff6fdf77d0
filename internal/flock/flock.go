package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Lock is a held lock.
type Lock struct{ f *os.File }

// Acquire locks path, creating the file if needed. With block false it fails
// at once (with an error wrapping unix.EWOULDBLOCK) when someone else holds
// the lock; with block true it waits, however long that takes: a caller that
// must stay cancellable uses AcquireContext.
func Acquire(path string, block bool) (*Lock, error) {
	return acquire(context.Background(), block, path, os.O_RDWR|os.O_CREATE, unix.LOCK_EX)
}

// AcquireContext locks path, creating the file if needed, and waits for
// whoever holds it as long as ctx allows: when ctx is done first, it
// returns ctx's error and holds nothing.
func AcquireContext(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, true, path, os.O_RDWR|os.O_CREATE, unix.LOCK_EX)
}

// AcquireSharedContext takes a shared lock on path, which any number of
// holders may share but no exclusive one, creating the file if needed and
// waiting as long as ctx allows.
func AcquireSharedContext(ctx context.Context, path string) (*Lock, error) {
	return acquire(ctx, true, path, os.O_RDWR|os.O_CREATE, unix.LOCK_SH)
}

// AcquireExisting locks path only if the file exists, and only while it
// still does once locked: a lock file that its holder unlinked (removing
// what it guards) is not taken over, nor created anew in a directory being
// removed. Either case is an error wrapping fs.ErrNotExist. With block false
// it fails at once when someone else holds the lock; with block true it
// waits, however long that takes.
func AcquireExisting(path string, block bool) (*Lock, error) {
	return acquireExisting(context.Background(), block, path, os.O_RDWR)
}

// AcquireExistingContext is AcquireExisting that waits for the lock as long
// as ctx allows.
func AcquireExistingContext(ctx context.Context, path string) (*Lock, error) {
	return acquireExisting(ctx, true, path, os.O_RDWR)
}

// AcquireDir locks the directory dir itself, which needs no file in it (and
// so no free space), waiting as long as ctx allows, and only while it is
// still at dir once locked: a holder that moved or removed it leaves the
// next one an error wrapping fs.ErrNotExist, as AcquireExisting does.
func AcquireDir(ctx context.Context, dir string) (*Lock, error) {
	return acquireExisting(ctx, true, dir, os.O_RDONLY|unix.O_DIRECTORY)
}

func acquireExisting(ctx context.Context, wait bool, path string, flags int) (*Lock, error) {
	l, err := acquire(ctx, wait, path, flags, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	if !l.linkedAt(path) {
		l.Unlock()
		return nil, &os.PathError{Op: "lock", Path: path, Err: fs.ErrNotExist}
	}
	return l, nil
}

// linkedAt reports whether the locked file is still the one at path.
func (l *Lock) linkedAt(path string) bool {
	var held, linked unix.Stat_t
	if unix.Fstat(int(l.f.Fd()), &held) != nil || unix.Stat(path, &linked) != nil {
		return false
	}
	return held.Ino == linked.Ino && held.Dev == linked.Dev
}

// acquire opens path with flags and locks it (how is LOCK_EX or LOCK_SH),
// waiting when wait is set as long as ctx allows. The wait is a blocking
// flock in a goroutine of its own, so the lock passes to this waiter as
// soon as it is free; when ctx is done first, the waiter is abandoned, and
// that goroutine lets go of the lock (and the file) once it gets it.
func acquire(ctx context.Context, wait bool, path string, flags, how int) (*Lock, error) {
	f, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	err = flock(f, how|unix.LOCK_NB)
	if err == nil {
		return &Lock{f: f}, nil
	}
	if !wait || !errors.Is(err, unix.EWOULDBLOCK) {
		_ = f.Close()
		return nil, &os.PathError{Op: "lock", Path: path, Err: err}
	}
	if err := ctx.Err(); err != nil {
		_ = f.Close()
		return nil, err
	}
	locked := make(chan error, 1)
	if ctx.Done() == nil {
		locked <- flock(f, how) // ctx is never done: wait right here
	} else {
		go func() { locked <- flock(f, how) }()
	}
	select {
	case err := <-locked:
		if err != nil {
			_ = f.Close()
			return nil, &os.PathError{Op: "lock", Path: path, Err: err}
		}
		return &Lock{f: f}, nil
	case <-ctx.Done():
		go func() {
			if <-locked == nil {
				_ = flock(f, unix.LOCK_UN)
			}
			_ = f.Close()
		}()
		return nil, ctx.Err()
	}
}

// flock is flock(2) on f, retried when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Unlock releases the lock; it is safe on a nil or released lock.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = flock(l.f, unix.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}
