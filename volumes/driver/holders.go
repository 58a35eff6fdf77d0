package driver

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/caisson/caisson/internal/mountinfo"
)

// holders counts the mount namespaces, other than this process's, in which
// path (a volume's mount point in this namespace) is bind-mounted: the
// containers using the volume. Mounts that only follow ours through mount
// propagation (a systemd service's private namespace, the host's view of a
// managed plugin's propagated mount, a container that bound a parent with
// rslave) do not count: they are at our mount point, or in our mount's peer
// group or its slaves. The processes this one descends from are not looked
// at (their namespaces are where this plugin was started, not containers).
// ok is false when the answer may be too low: some other process's
// namespace could not be read.
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
	group := host.PeerGroup()
	ours, _ := os.Readlink("/proc/self/ns/mnt")
	seen := map[string]bool{ours: true}
	skip := ancestors()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	ok = true
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		ns, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt")
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, os.ErrProcessDone) {
				ok = false // not ours to read (no CAP_SYS_PTRACE)
			}
			continue
		}
		if seen[ns] {
			continue
		}
		ms, err := mountinfo.Read(pid)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				ok = false
			}
			continue // gone: another process may show this namespace
		}
		seen[ns] = true
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
			if group != 0 && (m.PeerGroup() == group || m.Master() == group) {
				continue // propagated from our mount, not bound by a container
			}
			n++
			break
		}
	}
	return n, ok
}

// ancestors returns the PIDs this process descends from.
func ancestors() map[int]bool {
	out := map[int]bool{}
	pid := os.Getpid()
	for i := 0; i < 1000 && pid > 1; i++ {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			break
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			break
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			break
		}
		out[ppid] = true
		pid = ppid
	}
	return out
}
