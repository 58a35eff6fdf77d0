//go:build linux

package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// killAndWait kills pid with SIGKILL and returns once it is gone (reaped
// or a zombie), whoever its parent is.
func killAndWait(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		t.Fatalf("kill %d: %v", pid, err)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// loseDir makes a running container an orphan of its work dir, as a lost
// or restored disk would: its monitor dies and its directory goes, while
// its process, runtime state and cgroup stay. It returns the container.
func (e *env) loseDir(ref string) api.Container {
	e.t.Helper()
	c := e.inspect(ref)
	if c.State != api.StateRunning {
		e.t.Fatalf("container %s is %s, want running", ref, c.State)
	}
	killAndWait(e.t, c.MonitorPid)
	dir := filepath.Join(e.root, "containers", c.ID)
	_ = unix.Unmount(filepath.Join(dir, "fs", "rootfs"), unix.MNT_DETACH)
	if err := os.RemoveAll(dir); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// runtimeHas reports whether the runtime under the env's run root knows id.
func (e *env) runtimeHas(id string) bool {
	out, _ := exec.Command("runc", "--root", filepath.Join(e.run, "runtime", "runc"), "state", id).CombinedOutput()
	return !strings.Contains(string(out), "does not exist")
}

// cgroupExists reports whether the container's cgroup exists in any
// hierarchy.
func cgroupExists(t *testing.T, cgroupPath string) bool {
	for _, m := range cgroupMounts(t) {
		if _, err := os.Stat(filepath.Join(m, cgroupPath)); err == nil {
			return true
		}
	}
	return false
}

// Work dirs that share a cgroup parent (every one defaults to /caisson),
// and some a run root too, never touch each other's containers: recovery
// in each, which also runs before every other command, leaves the others'
// running containers alone, and still destroys its own orphans.
func TestRecoverLeavesOtherWorkDirsAlone(t *testing.T) {
	a := newEnv(t)
	roots := map[string]*env{"a": a, "b": a.sibling(false), "c": a.sibling(true)}
	type ctr struct {
		env  *env
		name string
	}
	var all []ctr
	for r, e := range roots {
		for _, n := range []string{"1", "2"} {
			args := []string{"run", "-d", "--name", r + n, "-m", "64m", "--pids-limit", "50"}
			if n == "2" {
				// Its network namespace is pinned in the run root, which c
				// shares with a.
				args = append(args, "--network", "caisson")
			}
			e.ok(append(args, "--rootfs", e.rootfs, "sleep", "1000")...)
			all = append(all, ctr{e, r + n})
		}
	}
	pids := map[string]int{}
	for _, c := range all {
		pids[c.name] = c.env.inspect(c.name).Pid
	}
	checkRunning := func(when string, except string) {
		t.Helper()
		for _, c := range all {
			if c.name == except {
				continue
			}
			got := c.env.inspect(c.name)
			if got.State != api.StateRunning || !processAlive(pids[c.name]) {
				t.Fatalf("%s: container %s is %s (process %d alive: %v)", when, c.name, got.State, pids[c.name], processAlive(pids[c.name]))
			}
			if !cgroupExists(t, got.CgroupPath) {
				t.Fatalf("%s: container %s lost its cgroup %s", when, c.name, got.CgroupPath)
			}
			if strings.HasSuffix(c.name, "2") {
				var st unix.Statfs_t
				pin := filepath.Join(c.env.run, "cni", "netns", got.ID)
				if err := unix.Statfs(pin, &st); err != nil || st.Type != unix.NSFS_MAGIC {
					t.Fatalf("%s: container %s lost its pinned network namespace %s (%v)", when, c.name, pin, err)
				}
			}
		}
	}
	for _, r := range []string{"a", "b", "c"} {
		roots[r].ok("recover")
		roots[r].ok("ps", "-a")
		roots[r].ok("run", "--rm", "--rootfs", a.rootfs, "true")
		checkRunning("after recover in "+r, "")
	}

	// An orphan of a: its process, runtime state and cgroup are a's to
	// destroy, and nobody else's.
	lost := a.loseDir("a2")
	for _, r := range []string{"b", "c"} {
		roots[r].ok("recover")
		if !processAlive(lost.Pid) || !cgroupExists(t, lost.CgroupPath) {
			t.Fatalf("recover in %s destroyed a's orphan (process alive: %v, cgroup: %v)", r, processAlive(lost.Pid), cgroupExists(t, lost.CgroupPath))
		}
	}
	if !a.runtimeHas(lost.ID) {
		t.Fatalf("the shared run root lost a's orphan's runtime state")
	}
	a.ok("recover")
	if processAlive(lost.Pid) || cgroupExists(t, lost.CgroupPath) || a.runtimeHas(lost.ID) {
		t.Fatalf("a's own orphan survived recover: process alive %v, cgroup %v, runtime state %v",
			processAlive(lost.Pid), cgroupExists(t, lost.CgroupPath), a.runtimeHas(lost.ID))
	}
	if _, err := os.Stat(filepath.Join(a.root, "owned", lost.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphan is still in a's ownership ledger: %v", err)
	}
	checkRunning("after a destroyed its orphan", "a2")
}
