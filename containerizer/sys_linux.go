package containerizer

import (
	"errors"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes this process the parent of its orphaned
// descendants, such as a container's init once the runtime has exited.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// waitGone waits until the process pid, started at start (clock ticks), has
// exited, for at most timeout (forever when negative). It works for
// processes that are not our children.
func waitGone(pid int, start uint64, timeout time.Duration) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone
	}
	defer unix.Close(fd)
	if procStartTime(pid) != start {
		return // the pid was reused: ours is gone
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return
			}
			ms = int(left.Milliseconds()) + 1
		}
		if _, err := unix.Poll(fds, ms); !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// dirLock is an exclusive flock on a directory itself, which needs no file
// in it (and so no free space).
type dirLock struct{ fd int }

// lockDir locks directory dir, waiting for whoever holds it, and only
// while it is still at dir once locked: a holder that moved or removed it
// leaves the next one an error wrapping fs.ErrNotExist.
func lockDir(dir string) (*dirLock, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "lock", Path: dir, Err: err}
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "lock", Path: dir, Err: err}
	}
	var held, now unix.Stat_t
	if unix.Fstat(fd, &held) != nil || unix.Stat(dir, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		unix.Close(fd)
		return nil, &os.PathError{Op: "lock", Path: dir, Err: fs.ErrNotExist}
	}
	return &dirLock{fd: fd}, nil
}

// Unlock releases the lock; it is safe on a nil lock.
func (l *dirLock) Unlock() {
	if l != nil && l.fd >= 0 {
		unix.Close(l.fd)
		l.fd = -1
	}
}
