//go:build linux

package containerizer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// awaitFifo reads the byte a fake init writes to its exec.fifo once it
// runs, or fails when the init, pid, is gone first (killed before its
// start).
func awaitFifo(fifo string, pid int) error {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("init %d is gone: %w", pid, api.ErrWrongState)
	}
	defer unix.Close(pidfd)
	fd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(pidfd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			n, err := unix.Read(fd, make([]byte, 1))
			if n == 1 {
				return nil
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				return err
			}
		}
		if fds[1].Revents != 0 {
			return fmt.Errorf("init %d is gone: %w", pid, api.ErrWrongState)
		}
	}
}

// fakeProcesses lists the live processes that have an argument under dir.
func fakeProcesses(dir string) []fakeProcess {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []fakeProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if strings.HasPrefix(arg, dir+"/") {
				if start := procStartTime(pid); start != 0 {
					out = append(out, fakeProcess{pid: pid, start: start})
				}
				break
			}
		}
	}
	return out
}
