//go:build linux

package safefile

import (
	"os"

	"golang.org/x/sys/unix"
)

// openNoFollow opens path itself with O_PATH and O_NOFOLLOW (a symbolic
// link is then the link, which reopen refuses), and reopens it for reading.
func openNoFollow(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h := os.NewFile(uintptr(fd), path)
	defer h.Close()
	return reopen(h)
}
