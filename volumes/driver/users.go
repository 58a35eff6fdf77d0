package driver

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/loopdev"
	"github.com/caisson/caisson/internal/mountinfo"
)

// target is a volume's data, as the host's mount tables show it.
type target struct {
	// devs are the filesystems that hold the data; inner is the data's top
	// inside them ("/": the whole filesystem). A mount of one of devs whose
	// root is inner or below it shows the data.
	devs  map[[2]uint32]bool
	inner string
	// source, when set, is a tmpfs's source: for a record of an earlier
	// version, which knows no devices, its mounts show the data.
	source string
	// fsType, when set, is the type a mount of one of devs must have (a
	// tmpfs device number may have gone to another filesystem).
	fsType string
	// ours are the plugin's own mounts of the data (and the mount a dir or
	// bind volume lies on, when the directory is a mount point), in its own
	// namespace: they, and the copies mount propagation makes of them, are
	// no use of the data.
	ours []mountinfo.Mount
	// loops are the loop devices attached to the data's image.
	loops []loopdev.Bound
	// paths are where the data is seen in the plugin's namespace: a process
	// there with a file or its working directory under one uses it.
	paths []string
}

// target describes v's data now.
func (d *Driver) target(v *record) (target, error) {
	ms, err := mountinfo.Read(0)
	if err != nil {
		return target{}, err
	}
	t := target{devs: map[[2]uint32]bool{}, inner: "/", paths: []string{d.mountpoint(v)}}
	mnt := d.mntDir(v.Name)
	if needsMount(v) {
		for _, m := range ms {
			if m.MountPoint == mnt {
				t.ours = append(t.ours, m)
				t.devs[[2]uint32{m.Major, m.Minor}] = true
			}
		}
	}
	switch v.Options.Type {
	case TypeLoop:
		if t.loops, err = loopdev.FindBound(d.image(v.Name)); err != nil {
			return target{}, err
		}
		for _, l := range t.loops {
			t.devs[[2]uint32{l.Major, l.Minor}] = true
		}
	case TypeTmpfs:
		for _, dev := range v.TmpfsDevs {
			t.devs[dev] = true
		}
		if !v.TmpfsTracked {
			t.source = d.tmpfsSource(v)
		}
		t.fsType = "tmpfs"
	case TypeBind:
		// The directory the plugin mounted, or, with its mount gone, the
		// one its path names.
		if n := len(t.ours); n > 0 {
			t.inner = t.ours[n-1].Root
		} else if pl, ok := placeOf(ms, v.Options.Path); ok {
			t.devs[pl.dev] = true
			t.inner = pl.inner
		}
		t.addMountRoot(ms, v.Options.Path)
	default:
		dir, err := d.dirTarget(ms, d.dataDir(v.Name))
		if err != nil {
			return target{}, err
		}
		dir.paths = t.paths
		return dir, nil
	}
	return t, nil
}

// dirTarget describes a directory's data: everything below dir, on the
// filesystem that holds it.
func (d *Driver) dirTarget(ms []mountinfo.Mount, dir string) (target, error) {
	pl, ok := placeOf(ms, dir)
	if !ok {
		return target{}, fmt.Errorf("no mount holds %s", dir)
	}
	t := target{devs: map[[2]uint32]bool{pl.dev: true}, inner: pl.inner, paths: []string{dir}}
	t.addMountRoot(ms, dir)
	return t, nil
}

// addMountRoot counts as ours the mount of dir itself, when dir is a mount
// point: the filesystem mounted there is where the data lies, not a use.
func (t *target) addMountRoot(ms []mountinfo.Mount, dir string) {
	if m, ok := mountinfo.Containing(ms, dir); ok && m.MountPoint == dir {
		t.ours = append(t.ours, m)
	}
}

// uses lists what has t's data in use, in words: mounts of it in any mount
// namespace a process is in, other than the plugin's own and their copies;
// loop devices attached to its image that no such namespace mounts (a
// process holds them open, or a namespace no process is in mounts them);
// with files, processes of the plugin's namespace with a file or working
// directory in it. An error, wrapping api.ErrUnavailable when some
// process's mounts could not be read, means the answer is unknown.
func (d *Driver) uses(t target, files bool) ([]string, error) {
	if len(t.devs) == 0 && t.source == "" && !files {
		return nil, nil
	}
	nss, err := d.namespaces()
	if err != nil {
		return nil, err
	}
	var self mountinfo.Namespace
	for _, ns := range nss {
		if ns.Self {
			self = ns
		}
	}
	copies := mountinfo.NewCopies(self.Mounts, t.ours, nss)
	mounted := map[[2]uint32]bool{}
	var out []string
	for _, ns := range nss {
		byID := mountinfo.ByID(ns.Mounts)
		for _, m := range ns.Mounts {
			dev := [2]uint32{m.Major, m.Minor}
			byDev := t.devs[dev] && (t.fsType == "" || m.FSType == t.fsType)
			bySource := t.source != "" && m.FSType == "tmpfs" && m.Source == t.source
			if !byDev && !bySource {
				continue
			}
			if !within(strings.TrimSuffix(m.Root, "//deleted"), t.inner) {
				continue
			}
			mounted[dev] = true
			if copies.Of(m, byID, ns.Self) {
				continue
			}
			out = append(out, fmt.Sprintf("mounted at %s in the mount namespace of process %d", m.MountPoint, ns.PIDs[0]))
		}
	}
	for _, l := range t.loops {
		if !mounted[[2]uint32{l.Major, l.Minor}] {
			out = append(out, fmt.Sprintf("loop device %s is attached to its image, mounted in no namespace a process is in (a process holds it open, or a pinned namespace mounts it)", l.Path))
		}
	}
	if files {
		out = append(out, openUnder(self.PIDs, t.paths)...)
	}
	return out, nil
}

// namespaces reads the mounts of every mount namespace a process is in. An
// error, wrapping api.ErrUnavailable when some process's mounts could not
// be read, means some are unknown.
func (d *Driver) namespaces() ([]mountinfo.Namespace, error) {
	nss, unreadable, err := mountinfo.Namespaces()
	if err != nil {
		return nil, err
	}
	// The processes this one descends from started it: they are no
	// container, and may hide their namespace from it (a sandbox's init).
	// A plugin that is not root cannot read other users' processes at
	// all: it skips them (their uses are not seen) rather than refuse
	// every removal.
	skip := ancestors()
	euid := os.Geteuid()
	unreadable = slices.DeleteFunc(unreadable, func(u mountinfo.Unreadable) bool {
		return skip[u.PID] || (euid != 0 && ownerOf(u.PID) != euid)
	})
	if len(unreadable) > 0 {
		u := unreadable[0]
		return nil, fmt.Errorf("the mounts of %d process(es) cannot be read (process %d: %v): %w", len(unreadable), u.PID, u.Err, api.ErrUnavailable)
	}
	return nss, nil
}

// ownerOf is the uid that owns process pid; -1 when unknown.
func ownerOf(pid int) int {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid), &st); err != nil {
		return -1
	}
	return int(st.Uid)
}

// openUnder lists the processes among pids with their working directory,
// root or an open file at or under one of paths.
func openUnder(pids []int, paths []string) []string {
	var out []string
	under := func(p string) bool {
		p = strings.TrimSuffix(p, " (deleted)")
		for _, dir := range paths {
			if within(p, dir) {
				return true
			}
		}
		return false
	}
	for _, pid := range pids {
		dir := "/proc/" + strconv.Itoa(pid)
		links := []string{dir + "/cwd", dir + "/root"}
		if fds, err := os.ReadDir(dir + "/fd"); err == nil {
			for _, fd := range fds {
				links = append(links, dir+"/fd/"+fd.Name())
			}
		}
		for _, l := range links {
			if p, err := os.Readlink(l); err == nil && strings.HasPrefix(p, "/") && under(p) {
				out = append(out, fmt.Sprintf("process %d has %s open", pid, p))
				break
			}
		}
	}
	return out
}

// inUse is the error for data that something uses; what names the data.
func inUse(what string, uses []string) error {
	const shown = 3
	more := ""
	if len(uses) > shown {
		more = fmt.Sprintf(" (and %d more)", len(uses)-shown)
		uses = uses[:shown]
	}
	return fmt.Errorf("%s is in use: %s%s: %w", what, strings.Join(uses, "; "), more, api.ErrConflict)
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
