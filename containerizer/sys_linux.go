package containerizer

import (
	"errors"
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
