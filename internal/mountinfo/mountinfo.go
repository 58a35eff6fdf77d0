// Package mountinfo reads /proc/PID/mountinfo: which filesystems are mounted
// where, in a process's mount namespace.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo (proc(5)).
type Mount struct {
	ID, Parent   int
	Major, Minor uint32
	// Root is the path within the filesystem that is mounted (not "/" for a
	// bind mount of a subdirectory).
	Root       string
	MountPoint string
	Options    string
	// Optional are the optional fields: "shared:N" (peer group N),
	// "master:N" (a slave of peer group N), "propagate_from:N", "unbindable".
	Optional  []string
	FSType    string
	Source    string
	SuperOpts string
}

// Parse reads mountinfo lines. Malformed lines are an error.
func Parse(r io.Reader) ([]Mount, error) {
	var ms []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		m, err := parseLine(line)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return ms, nil
}

func parseLine(line string) (Mount, error) {
	bad := func() (Mount, error) { return Mount{}, fmt.Errorf("malformed mountinfo line %q", line) }
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return bad()
	}
	f := strings.Fields(pre)
	// After the separator come the type, the source and the super options,
	// one space apart. The source may be empty (mount -t tmpfs "" /mnt),
	// which leaves two spaces in a row, so this part is split on each space.
	g := strings.SplitN(post, " ", 3)
	if len(f) < 6 || len(g) < 2 || g[0] == "" {
		return bad()
	}
	var m Mount
	var err error
	if m.ID, err = strconv.Atoi(f[0]); err != nil {
		return bad()
	}
	if m.Parent, err = strconv.Atoi(f[1]); err != nil {
		return bad()
	}
	maj, min, ok := strings.Cut(f[2], ":")
	if !ok {
		return bad()
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return bad()
	}
	m.Major, m.Minor = uint32(ma), uint32(mi)
	m.Root = Unescape(f[3])
	m.MountPoint = Unescape(f[4])
	m.Options = f[5]
	if len(f) > 6 {
		m.Optional = f[6:]
	}
	m.FSType = g[0]
	m.Source = Unescape(g[1])
	if len(g) > 2 {
		m.SuperOpts = strings.TrimSpace(g[2])
	}
	return m, nil
}

// Read parses the mountinfo of process pid; 0 means this process.
func Read(pid int) ([]Mount, error) {
	p := "/proc/self/mountinfo"
	if pid > 0 {
		p = fmt.Sprintf("/proc/%d/mountinfo", pid)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Unescape undoes the octal escapes (\040 for a space) of mountinfo.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Containing returns the mount that holds path (absolute, already resolved):
// the last mounted of those with the longest mount point that is path or a
// parent of it, since a later mount hides an earlier one on the same point.
// ok is false when none does, and for a relative path.
func Containing(ms []Mount, path string) (Mount, bool) {
	best, found := Mount{}, false
	if !strings.HasPrefix(path, "/") {
		return best, false
	}
	for _, m := range ms {
		if m.MountPoint == path || m.MountPoint == "/" || strings.HasPrefix(path, m.MountPoint+"/") {
			if !found || len(m.MountPoint) >= len(best.MountPoint) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// PeerGroup returns N of the mount's "shared:N" field: the peer group that
// mount propagation keeps in step with it; 0 when it is not shared.
func (m Mount) PeerGroup() int {
	return m.optional("shared:")
}

// Master returns N of "master:N": the peer group this mount receives
// propagation from; 0 when none.
func (m Mount) Master() int {
	return m.optional("master:")
}

func (m Mount) optional(prefix string) int {
	for _, o := range m.Optional {
		if v, ok := strings.CutPrefix(o, prefix); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
	}
	return 0
}

// Under lists the mount points at or below dir in this process's mount
// namespace, deepest first, the order to unmount them in (a point mounted
// twice is listed twice). dir is resolved first, since mountinfo shows
// resolved paths.
func Under(dir string) ([]string, error) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	ms, err := Read(0)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, m := range ms {
		if m.MountPoint == dir || strings.HasPrefix(m.MountPoint, dir+"/") {
			found = append(found, m.MountPoint)
		}
	}
	slices.SortStableFunc(found, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return found, nil
}

// IsMountPoint reports whether something is mounted at path in ms.
func IsMountPoint(ms []Mount, path string) bool {
	for _, m := range ms {
		if m.MountPoint == path {
			return true
		}
	}
	return false
}
