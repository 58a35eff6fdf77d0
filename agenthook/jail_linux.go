package agenthook

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// jail gives each exec hook run a cgroup v2 of its own, below dir: the
// hook starts in it (clone3's CLONE_INTO_CGROUP, so not even its first
// fork escapes), and when the run ends everything in it is killed,
// however it detached itself (a new session, a double fork).
type jail struct{ dir string }

// newJail checks that dir is (or will be made) in a cgroup v2 hierarchy.
// The directory exists while runs use it: the first makes it, the last
// removes it.
func newJail(dir string) (*jail, error) {
	p := dir
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			if st.Type != unix.CGROUP2_SUPER_MAGIC {
				return nil, fmt.Errorf("%s is not in a cgroup v2 hierarchy", dir)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) || p == "/" {
			return nil, fmt.Errorf("statfs %s: %w", p, err)
		}
		p = filepath.Dir(p)
	}
	return &jail{dir: dir}, nil
}

// cell is one run's cgroup.
type cell struct {
	path string
	f    *os.File
}

func (j *jail) open(name string) (*cell, error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	path := filepath.Join(j.dir, cgroupName(name)+"-"+hex.EncodeToString(b))
	var err error
	// Another run's close may remove the directory between the two.
	for range 10 {
		if err = os.MkdirAll(j.dir, 0o755); err != nil {
			return nil, err
		}
		if err = os.Mkdir(path, 0o755); !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	return &cell{path: path, f: f}, nil
}

// enter has the process that attr starts begin in the cell.
func (c *cell) enter(attr *syscall.SysProcAttr) {
	attr.UseCgroupFD, attr.CgroupFD = true, int(c.f.Fd())
}

// kill kills every process in the cell: through cgroup.kill where the
// kernel has it (5.14), otherwise one by one.
func (c *cell) kill() {
	if os.WriteFile(filepath.Join(c.path, "cgroup.kill"), []byte("1"), 0) == nil {
		return
	}
	for range 100 {
		data, err := os.ReadFile(filepath.Join(c.path, "cgroup.procs"))
		if err != nil || len(strings.TrimSpace(string(data))) == 0 {
			return
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// close kills what is left, waits (briefly) for the cell to empty and
// removes it, and the jail's directory when no other run uses it.
func (c *cell) close(log *slog.Logger) {
	defer c.f.Close()
	c.kill()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(c.path)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(filepath.Dir(c.path)) // fails while another run's cell is there
			return
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			log.Warn("exec hook's cgroup left behind", "cgroup", c.path, "err", err)
			return
		}
		// The killed processes are still being torn down.
		time.Sleep(5 * time.Millisecond)
		c.kill()
	}
}

// cgroupName makes a hook's name fit for a cgroup's.
func cgroupName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
}

// CgroupDir is where exec hook runs get their cgroups, below the cgroup
// parent of caisson's containers (cgroups.Config.Parent, "/caisson"): in
// the cgroup v2 hierarchy at /sys/fs/cgroup, or in a hybrid host's at
// /sys/fs/cgroup/unified. It is empty on a host with cgroup v1 only.
func CgroupDir(parent string) string {
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return filepath.Join(root, parent, "hooks")
		}
	}
	return ""
}
