package driver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/caisson/caisson/internal/mountinfo"
)

// holders counts the mount namespaces, other than this process's, in which
// path (a volume's mount point in this namespace) is mounted by someone:
// containers that bind-mounted the volume. A namespace that merely mirrors
// this one's mount at the same place (a systemd service's private namespace
// receiving mount propagation) does not count, and neither do processes
// whose namespace cannot be read (a sandbox's init): ok is false only when
// the process table or this namespace's mounts cannot be read at all.
func holders(path string) (n int, ok bool) {
	self, err := mountinfo.Read(0)
	if err != nil {
		return 0, false
	}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		path = r
	}
	host, found := mountinfo.Containing(self, path)
	if !found {
		return 0, false
	}
	// The volume as its filesystem sees it: a device and a path inside it.
	dev := [2]uint32{host.Major, host.Minor}
	inner := filepath.Join(host.Root, strings.TrimPrefix(path, host.MountPoint))
	ours, _ := os.Readlink("/proc/self/ns/mnt")
	seen := map[string]bool{ours: true}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ns, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt")
		if err != nil {
			continue // gone, or not ours to read
		}
		if seen[ns] {
			continue
		}
		seen[ns] = true
		ms, err := mountinfo.Read(pid)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, m := range ms {
			if [2]uint32{m.Major, m.Minor} != dev {
				continue
			}
			if m.Root != inner && !strings.HasPrefix(m.Root, strings.TrimSuffix(inner, "/")+"/") {
				continue
			}
			if m.MountPoint == path && m.Root == inner {
				continue // a mirror of our own mount
			}
			n++
			break
		}
	}
	return n, true
}
