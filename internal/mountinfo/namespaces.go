package mountinfo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Namespace is one mount namespace and the processes found in it.
type Namespace struct {
	// ID is the namespace's identity, as /proc/PID/ns/mnt names it
	// ("mnt:[4026531841]").
	ID string
	// PIDs are the processes in it, in increasing order.
	PIDs []int
	// Mounts are its mounts, read from the first of PIDs that could be read.
	Mounts []Mount
	// Self is set for the namespace of the calling process.
	Self bool
}

// Unreadable is a process whose mount namespace could not be read: its
// mounts are unknown.
type Unreadable struct {
	PID int
	Err error
}

// procDir is the proc filesystem; tests point it elsewhere.
var procDir = "/proc"

// Namespaces reads the mounts of every mount namespace that some process on
// the host is in, each once. Processes that exit while they are read are
// left out; those whose namespace cannot be read (no CAP_SYS_PTRACE, or
// hidden by the pid namespace) are returned in unreadable: the mounts they
// see may be missing. A mount namespace that no process is in (kept alive by
// a bind mount of its nsfs file or an open descriptor) is not seen.
func Namespaces() (nss []Namespace, unreadable []Unreadable, err error) {
	self, err := os.Readlink(procDir + "/self/ns/mnt")
	if err != nil {
		return nil, nil, fmt.Errorf("read own mount namespace: %w", err)
	}
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil, nil, fmt.Errorf("list processes: %w", err)
	}
	index := map[string]int{}
	failed := map[string][]Unreadable{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := procDir + "/" + e.Name()
		ns, err := os.Readlink(dir + "/ns/mnt")
		if err != nil {
			if !gone(err) {
				unreadable = append(unreadable, Unreadable{PID: pid, Err: err})
			}
			continue
		}
		if i, ok := index[ns]; ok {
			nss[i].PIDs = append(nss[i].PIDs, pid)
			continue
		}
		ms, err := readFile(dir + "/mountinfo")
		if err != nil {
			if !gone(err) {
				failed[ns] = append(failed[ns], Unreadable{PID: pid, Err: err})
			}
			continue
		}
		index[ns] = len(nss)
		nss = append(nss, Namespace{ID: ns, PIDs: []int{pid}, Mounts: ms, Self: ns == self})
	}
	// A namespace read through another of its processes is known.
	for ns, us := range failed {
		if _, ok := index[ns]; !ok {
			unreadable = append(unreadable, us...)
		}
	}
	slices.SortFunc(unreadable, func(a, b Unreadable) int { return a.PID - b.PID })
	return nss, unreadable, nil
}

// gone reports whether err says the process exited while it was read: its
// /proc directory is gone (ENOENT, ESRCH), or it has no namespaces left, as
// a zombie (EINVAL from mountinfo).
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.EINVAL)
}

func readFile(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// ByID indexes mounts by their mount ID.
func ByID(ms []Mount) map[int]Mount {
	out := make(map[int]Mount, len(ms))
	for _, m := range ms {
		out[m.ID] = m
	}
	return out
}

// Copies recognises, in any mount namespace, the copies of some mounts of
// the calling process's namespace ("ours") that the kernel made on its own:
// by mount propagation (the parent mount there is a peer or a slave, even
// indirectly, of our mount's parent) or by cloning our namespace (the same
// mount at the same path, on a parent that is the same mount as ours at the
// same path too: a container that mounts the filesystem at our mount
// point's path, which is relative to its own root, puts it on its own root
// filesystem). Anything else that shows the same filesystem was mounted
// there on purpose.
type Copies struct {
	ours   []placed
	reach  map[int]bool // peer groups that receive our parents' propagation
	selfID map[int]bool // our mounts' IDs
}

// placed is one of our mounts and the mount it sits on.
type placed struct {
	m, parent Mount
	hasParent bool
}

// NewCopies prepares to recognise copies of ours, mounts of self (the
// calling process's namespace), among the mounts of nss.
func NewCopies(self, ours []Mount, nss []Namespace) *Copies {
	c := &Copies{reach: map[int]bool{}, selfID: map[int]bool{}}
	byID := ByID(self)
	for _, o := range ours {
		p, ok := byID[o.Parent]
		c.ours = append(c.ours, placed{m: o, parent: p, hasParent: ok})
		c.selfID[o.ID] = true
		if g := p.PeerGroup(); ok && g != 0 {
			c.reach[g] = true
		}
	}
	// A slave that is shared passes on what it receives to its own peer
	// group: follow the chains to a fixed point.
	for changed := len(c.reach) > 0; changed; {
		changed = false
		for _, ns := range nss {
			for _, m := range ns.Mounts {
				if g := m.PeerGroup(); g != 0 && !c.reach[g] && c.reach[m.Master()] {
					c.reach[g] = true
					changed = true
				}
			}
		}
	}
	return c
}

// Of reports whether m, a mount of a namespace whose mounts byID indexes,
// is one of ours or a copy of one; self says the namespace is the caller's.
func (c *Copies) Of(m Mount, byID map[int]Mount, self bool) bool {
	if self && c.selfID[m.ID] {
		return true
	}
	for _, o := range c.ours {
		if o.m.Major != m.Major || o.m.Minor != m.Minor || o.m.Root != m.Root {
			continue
		}
		p, ok := byID[m.Parent]
		if !self && o.m.MountPoint == m.MountPoint && ok && o.hasParent && sameMount(p, o.parent) {
			return true // a namespace cloned from ours (or from one with it)
		}
		if !ok || !o.hasParent || p.Major != o.parent.Major || p.Minor != o.parent.Minor {
			continue
		}
		if !c.reach[p.PeerGroup()] && !c.reach[p.Master()] {
			continue
		}
		if placeIn(m, p) == placeIn(o.m, o.parent) {
			return true
		}
	}
	return false
}

// sameMount reports whether a and b, of two namespaces, show the same part
// of the same filesystem at the same path.
func sameMount(a, b Mount) bool {
	return a.Major == b.Major && a.Minor == b.Minor && a.Root == b.Root && a.MountPoint == b.MountPoint
}

// placeIn is where m sits in its parent's filesystem.
func placeIn(m, parent Mount) string {
	rel := strings.TrimPrefix(m.MountPoint, parent.MountPoint)
	return filepath.Join(parent.Root, rel)
}
