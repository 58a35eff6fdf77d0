//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/flock"
	"github.com/caisson/caisson/internal/testutil"
)

// killAndWait kills pid with SIGKILL and returns once it is gone.
func killAndWait(t testing.TB, pid int) {
	t.Helper()
	waitGone(t, pid, func(fd int) error { return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) })
}

// waitGone returns once pid has exited (reaped or a zombie), whoever its
// parent is, after calling signal, when given, on its pidfd.
func waitGone(t testing.TB, pid int, signal func(fd int) error) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	if signal != nil {
		if err := signal(fd); err != nil && !errors.Is(err, unix.ESRCH) {
			t.Fatalf("signal %d: %v", pid, err)
		}
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

// start starts cmd and returns a channel closed once it has exited and been
// reaped, and its Wait error, to read once it is closed. Should the test end
// first, its cleanup kills and reaps it.
func start(t *testing.T, cmd *exec.Cmd) (exited <-chan struct{}, err *error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return done, &waitErr
}

// waitExited waits for a command start started to exit, and fails the test
// (saying what the command ignored) when that takes a minute.
func waitExited(t *testing.T, exited <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("%s for a minute", what)
	}
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
			if n == "2" && !noCNI() {
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
			if strings.HasSuffix(c.name, "2") && !noCNI() {
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

// psAll returns what ps -a --format json lists, by ID.
func (e *env) psAll() map[string]api.Container {
	e.t.Helper()
	var cs []api.Container
	if err := json.Unmarshal([]byte(e.ok("ps", "-a", "--format", "json")), &cs); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]api.Container{}
	for _, c := range cs {
		out[c.ID] = c
	}
	return out
}

// A damaged checkpoint never costs a container its life or its data: one
// whose container.json cannot be read is quarantined (listed as
// unreadable, left alone by every command's recovery and by recover, which
// says what to do), until a user removes it with force. A damaged bundle
// spec only loses what the isolators would read from it. The other files
// of the container's directory may be missing or replaced by FIFOs,
// directories or links: no command blocks on them, and the container goes
// on (a missing or broken lock file is made anew).
func TestCorruptCheckpointQuarantines(t *testing.T) {
	e := newEnv(t)
	rewrite := func(change func([]byte) []byte) func(*testing.T, string) {
		return func(t *testing.T, p string) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, change(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	replace := func(old, new string) func(*testing.T, string) {
		return rewrite(func(b []byte) []byte { return []byte(strings.Replace(string(b), old, new, 1)) })
	}
	remove := func(t *testing.T, p string) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	// by removes what is at p (if anything) and makes something else there.
	by := func(make func(p string) error) func(*testing.T, string) {
		return func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if err := make(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	fifo := by(func(p string) error { return unix.Mkfifo(p, 0o600) })
	dir := by(func(p string) error { return os.Mkdir(p, 0o700) })
	link := by(func(p string) error { return os.Symlink("/dev/null", p) })
	for i, tc := range []struct {
		name   string
		file   string
		damage func(t *testing.T, path string)
		// quarantined says the container must be listed as unreadable;
		// otherwise it must be listed as running.
		quarantined bool
		// exitFirst lets the container exit while damaged: its monitor
		// frees what it held and keeps its files.
		exitFirst bool
	}{
		{"truncated", "container.json", rewrite(func(b []byte) []byte { return b[:len(b)/2] }), true, true},
		{"empty", "container.json", rewrite(func([]byte) []byte { return nil }), true, false},
		{"garbage", "container.json", rewrite(func([]byte) []byte { return []byte("\x00\xffgarbage") }), true, false},
		{"wrong type", "container.json", rewrite(func([]byte) []byte { return []byte(`["running"]`) }), true, false},
		{"unknown phase", "container.json", replace(`"phase": "running"`, `"phase": "paused"`), true, false},
		{"newer version", "container.json", replace(`"version": 1`, `"version": 99`), true, false},
		{"missing", "container.json", remove, true, true},
		{"a FIFO", "container.json", fifo, true, false},
		{"a directory", "container.json", dir, true, true},
		{"bundle truncated", "bundle/config.json", rewrite(func(b []byte) []byte { return b[:len(b)/2] }), false, false},
		{"bundle wrong type", "bundle/config.json", rewrite(func([]byte) []byte { return []byte(`"spec"`) }), false, false},
		{"bundle empty", "bundle/config.json", rewrite(func([]byte) []byte { return nil }), false, true},
		{"bundle a FIFO", "bundle/config.json", fifo, false, true},
		{"lock missing", "lock", remove, false, true},
		{"lock a FIFO", "lock", fifo, false, true},
		{"lock a directory", "lock", dir, false, false},
		{"lock a link", "lock", link, false, false},
		{"update intent a FIFO", "update.json", fifo, false, false},
		{"log a FIFO", "container.log", fifo, false, false},
		{"spare missing", "spare", remove, false, true},
		{"spare a FIFO", "spare", fifo, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("victim%d", i)
			e.ok("run", "-d", "--name", name, "-m", "64m", "--rootfs", e.rootfs, "sh", "-c", "echo data > /kept; echo ready; exec sleep 1000")
			e.waitForLine(name, "ready")
			c := e.inspect(name)
			dir := filepath.Join(e.root, "containers", c.ID)
			tc.damage(t, filepath.Join(dir, tc.file))
			// run runs caisson, failing the test if it opens a FIFO of the
			// container's directory for reading (which would block it).
			run := func(args ...string) (r result) {
				t.Helper()
				testutil.NeverOpened(t, dir, func() { r = e.caisson(args...) })
				return r
			}
			ok := func(args ...string) string {
				t.Helper()
				r := run(args...)
				if r.code != 0 {
					t.Fatalf("caisson %s: %s", strings.Join(args, " "), r)
				}
				return r.stdout
			}
			wantState := api.StateRunning
			if tc.quarantined {
				wantState = api.StateUnreadable
			}
			check := func(when string, alive bool) {
				t.Helper()
				var cs []api.Container
				if err := json.Unmarshal([]byte(ok("ps", "-a", "--format", "json")), &cs); err != nil {
					t.Fatal(err)
				}
				var got *api.Container
				for i := range cs {
					if cs[i].ID == c.ID {
						got = &cs[i]
					}
				}
				if got == nil || got.State != wantState || got.Name != name {
					t.Fatalf("%s: ps -a lists %+v, want %s named %s", when, got, wantState, name)
				}
				if processAlive(c.Pid) != alive {
					t.Fatalf("%s: the container's process alive = %v, want %v", when, processAlive(c.Pid), alive)
				}
				if _, err := os.Stat(filepath.Join(dir, "fs", "upper", "kept")); err != nil {
					t.Fatalf("%s: the container's data is gone: %v", when, err)
				}
				run("logs", name) // may fail, never block
			}
			check("after the damage", true)
			r := run("recover")
			if tc.quarantined && (r.code != 125 || !strings.Contains(r.stderr, "rm -f")) {
				t.Fatalf("recover with a quarantined container: %s; want exit 125 and what to do", r)
			} else if !tc.quarantined && r.code != 0 {
				t.Fatalf("recover: %s", r)
			}
			ok("run", "--rm", "--rootfs", e.rootfs, "true") // a launch and its recovery pass
			check("after recover and a launch", true)
			var got []api.Container
			if err := json.Unmarshal([]byte(ok("inspect", name)), &got); err != nil || len(got) != 1 {
				t.Fatalf("inspect: %v (%d containers)", err, len(got))
			}
			if got[0].State != wantState || (tc.quarantined && got[0].Message == "") {
				t.Fatalf("inspect: state %s, message %q; want %s and, when unreadable, why", got[0].State, got[0].Message, wantState)
			}
			if tc.quarantined {
				if r := run("rm", name); r.code != 125 {
					t.Fatalf("rm without force of a quarantined container: %s; want exit 125", r)
				}
				check("after rm without force", true)
			}
			if tc.exitFirst {
				ok("kill", name)
				waitGone(t, c.MonitorPid, nil)
				if !tc.quarantined {
					wantState = api.StateExited
				}
				check("after it exited", false)
				if e.runtimeHas(c.ID) || cgroupExists(t, c.CgroupPath) {
					t.Fatalf("after it exited, its runtime state (%v) or cgroup (%v) is left", e.runtimeHas(c.ID), cgroupExists(t, c.CgroupPath))
				}
			}
			ok("rm", "-f", name)
			if processAlive(c.Pid) {
				t.Fatalf("rm -f left the container's process running")
			}
			if left := e.leftovers(); len(left) > 0 {
				t.Fatalf("rm -f left:\n  %s", strings.Join(left, "\n  "))
			}
		})
	}
}

// A removal that dies half way, with the container's directory in the
// trash or gone but still in the ownership ledger, is finished by the next
// command's recovery.
func TestCrashDuringRemoval(t *testing.T) {
	e := newEnv(t)
	for _, step := range []string{"trashed", "removed"} {
		t.Run(step, func(t *testing.T) {
			e.ok("run", "-d", "--name", "gone", "-m", "64m", "--rootfs", e.rootfs, "sleep", "1000")
			cmd := e.cmd("rm", "-f", "gone")
			cmd.Env = append(cmd.Env, "CAISSON_TEST_CRASH_AT="+step)
			if err := cmd.Run(); err == nil {
				t.Fatalf("the removal did not crash at %s", step)
			}
			if len(e.leftovers()) == 0 {
				t.Fatalf("the crash at %s left nothing to recover: the fault injection did not work", step)
			}
			e.ok("ps", "-a") // the next start recovers
			if left := e.leftovers(); len(left) > 0 {
				t.Fatalf("after a crash at %s and a restart, left behind:\n  %s", step, strings.Join(left, "\n  "))
			}
			if r := e.caisson("inspect", "gone"); r.code == 0 {
				t.Fatalf("inspect of a removed container: %s", r)
			}
		})
	}
}

// fullStateEnv is an env whose work dir is a small tmpfs of its own, and
// fill fills it up.
func fullStateEnv(t *testing.T) (e *env, fill func(*testing.T), free func(*testing.T)) {
	t.Helper()
	testutil.RequiresRoot(t)
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=16m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs for the work dir: %v", err)
	}
	// Registered before the env's own teardown, so it runs after.
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the work dir's tmpfs: %v", err)
		}
	})
	e = newEnv(t)
	e.root = filepath.Join(mnt, "lib")
	filler := filepath.Join(mnt, "filler")
	fill = func(t *testing.T) {
		t.Helper()
		testutil.Fill(t, filler)
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil || st.Bavail != 0 {
			t.Fatalf("the work dir is not full: %d blocks free (%v)", st.Bavail, err)
		}
	}
	free = func(t *testing.T) {
		t.Helper()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
	return e, fill, free
}

// With the work dir's filesystem full, containers can still be stopped
// and removed, their exit codes are kept, an update is refused whole, a
// launch fails leaving nothing, and everything that only reads works.
func TestFullStateDir(t *testing.T) {
	e, fill, free := fullStateEnv(t)
	for _, n := range []string{"killed", "removed", "lost"} {
		e.ok("run", "-d", "--name", n, "--rootfs", e.rootfs, "sleep", "1000")
	}
	e.ok("run", "-d", "--name", "updated", "--cpus", "0.5", "-m", "64m", "--rootfs", e.rootfs, "sleep", "1000")
	e.ok("run", "-d", "--name", "exits", "--rootfs", e.rootfs, "sh", "-c", `trap "exit 5" TERM; echo ready; while :; do sleep 1; done`)
	e.waitForLine("exits", "ready")
	// A spec of several hundred KiB (environment variables as large as
	// one argument may be): its checkpoint is larger than 64 KiB.
	big := []string{"run", "-d", "--name", "big"}
	for _, v := range []string{"A", "B", "C"} {
		big = append(big, "-e", v+"="+strings.Repeat(v, 100<<10))
	}
	e.ok(append(big, "--rootfs", e.rootfs, "sleep", "1000")...)
	updated := e.inspect("updated")
	lost := e.inspect("lost")
	cgroupFiles := func() []string {
		return []string{
			readCgroupFile(t, updated.CgroupPath, "cpu", "cpu.cfs_quota_us"),
			readCgroupFile(t, updated.CgroupPath, "memory", "memory.limit_in_bytes"),
		}
	}
	cgroupBefore := cgroupFiles()
	dirs := func() int {
		entries, err := os.ReadDir(filepath.Join(e.root, "containers"))
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	before := dirs()

	t.Run("kill", func(t *testing.T) {
		fill(t) // what earlier steps freed
		e.ok("kill", "killed")
		if got := strings.TrimSpace(e.ok("wait", "killed")); got != "137" {
			t.Fatalf("wait after kill = %q, want 137", got)
		}
		if c := e.inspect("killed"); c.State != api.StateExited || c.Termination == nil || c.Termination.Reason != api.ReasonKilled {
			t.Fatalf("after kill: %s, %+v; want exited, killed", c.State, c.Termination)
		}
	})
	t.Run("exit code", func(t *testing.T) {
		fill(t) // what earlier steps freed
		e.ok("kill", "-s", "TERM", "exits")
		if got := strings.TrimSpace(e.ok("wait", "exits")); got != "5" {
			t.Fatalf("wait = %q, want 5", got)
		}
		if c := e.inspect("exits"); c.Termination == nil || c.Termination.ExitCode != 5 || c.Termination.Reason != api.ReasonExited {
			t.Fatalf("termination %+v, want exit code 5", c.Termination)
		}
	})
	t.Run("large spec", func(t *testing.T) {
		fill(t) // what earlier steps freed
		e.ok("kill", "big")
		if got := strings.TrimSpace(e.ok("wait", "big")); got != "137" {
			t.Fatalf("wait after kill = %q, want 137", got)
		}
		if c := e.inspect("big"); c.State != api.StateExited || c.Termination == nil || c.Termination.Reason != api.ReasonKilled || len(c.Spec.Env) != 3 {
			t.Fatalf("after kill: %s, %+v, %d variables; want exited, killed, 3", c.State, c.Termination, len(c.Spec.Env))
		}
	})
	t.Run("lost monitor", func(t *testing.T) {
		fill(t) // what earlier steps freed
		killAndWait(t, lost.MonitorPid)
		if c := e.psAll()[lost.ID]; c.State != api.StateExited || c.Termination == nil || c.Termination.Reason != api.ReasonLost {
			t.Fatalf("a container whose monitor died: %s, %+v; want exited, lost", c.State, c.Termination)
		}
		if processAlive(lost.Pid) {
			t.Fatalf("the lost container's process runs on")
		}
	})
	t.Run("rm -f", func(t *testing.T) {
		fill(t) // what earlier steps freed
		c := e.inspect("removed")
		e.ok("rm", "-f", "removed")
		if _, ok := e.psAll()[c.ID]; ok || processAlive(c.Pid) {
			t.Fatalf("rm -f left the container (listed: %v, process alive: %v)", ok, processAlive(c.Pid))
		}
	})
	t.Run("update", func(t *testing.T) {
		fill(t) // what earlier steps freed
		if r := e.caisson("update", "--cpus", "1", "-m", "128m", "updated"); r.code != 125 {
			t.Fatalf("update with the work dir full: %s; want 125", r)
		}
		if c := e.inspect("updated"); c.Spec.Resources != updated.Spec.Resources {
			t.Errorf("inspect after a refused update: %+v, want %+v", c.Spec.Resources, updated.Spec.Resources)
		}
		if diff := cmp.Diff(cgroupBefore, cgroupFiles()); diff != "" {
			t.Errorf("the refused update changed the cgroup (-before +after):\n%s", diff)
		}
	})
	t.Run("launch", func(t *testing.T) {
		fill(t) // what earlier steps freed
		if r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "true"); r.code != 125 {
			t.Fatalf("run with the work dir full: %s; want 125", r)
		}
		if n := dirs(); n != before-1 { // "removed" is gone
			t.Fatalf("%d container directories after a failed launch, want %d", n, before-1)
		}
	})
	t.Run("read", func(t *testing.T) {
		fill(t) // what earlier steps freed
		e.ok("ps", "-a")
		e.ok("logs", "exits")
		e.ok("inspect", "updated")
		e.ok("stats", "updated")
	})
	t.Run("rm -f all", func(t *testing.T) {
		fill(t) // what earlier steps freed
		e.ok("rm", "-f", "killed", "exits", "lost", "updated", "big")
		if left := e.leftovers(); len(left) > 0 {
			t.Fatalf("left behind:\n  %s", strings.Join(left, "\n  "))
		}
	})
	free(t)
	// With room again, an update applies whole.
	e.ok("run", "-d", "--name", "again", "--cpus", "0.5", "--rootfs", e.rootfs, "sleep", "1000")
	e.ok("update", "--cpus", "1", "again")
	if c := e.inspect("again"); c.Spec.Resources.CPUs != 1 || readCgroupFile(t, c.CgroupPath, "cpu", "cpu.cfs_quota_us") != "100000" {
		t.Fatalf("update with room: %+v", c.Spec.Resources)
	}
}

// An update that dies between writing its intent and committing it is
// finished by the next command's recovery: applied whole when the kernel
// takes it, dropped whole when it refuses.
func TestCrashDuringUpdate(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		step, name string
		args       []string
		damage     bool // truncate the intent after the crash
		want       api.Resources
		wantQuota  string
	}{
		{"update:intent", "applied", []string{"--cpus", "1"}, false, api.Resources{CPUs: 1, MemoryBytes: 64 << 20}, "100000"},
		{"update:applied", "applied", []string{"--cpus", "1", "--pids-limit", "40"}, false, api.Resources{CPUs: 1, MemoryBytes: 64 << 20, PidsLimit: 40}, "100000"},
		{"update:intent", "refused", []string{"--cpus", "1", "--memory-reservation", "100m"}, false, api.Resources{CPUs: 0.5, MemoryBytes: 64 << 20}, "50000"},
		{"update:intent", "damaged", []string{"--cpus", "1"}, true, api.Resources{CPUs: 0.5, MemoryBytes: 64 << 20}, "50000"},
	} {
		t.Run(tc.step+"/"+tc.name, func(t *testing.T) {
			e.ok("run", "-d", "--name", "u", "--cpus", "0.5", "-m", "64m", "--rootfs", e.rootfs, "sleep", "1000")
			t.Cleanup(func() { e.caisson("rm", "-f", "u") })
			cmd := e.cmd(append(append([]string{"update"}, tc.args...), "u")...)
			cmd.Env = append(cmd.Env, "CAISSON_TEST_CRASH_AT="+tc.step)
			if err := cmd.Run(); err == nil {
				t.Fatalf("the update did not crash at %s", tc.step)
			}
			if tc.damage {
				// Found without caisson, whose recovery would finish it.
				intents, _ := filepath.Glob(filepath.Join(e.root, "containers", "*", "update.json"))
				if len(intents) != 1 {
					t.Fatalf("intents after the crash: %v, want one", intents)
				}
				if err := os.Truncate(intents[0], 10); err != nil {
					t.Fatal(err)
				}
			}
			c := e.inspect("u") // recovers
			if c.State != api.StateRunning || c.Spec.Resources != tc.want {
				t.Fatalf("after a crash at %s: %s with %+v, want running with %+v", tc.step, c.State, c.Spec.Resources, tc.want)
			}
			if got := readCgroupFile(t, c.CgroupPath, "cpu", "cpu.cfs_quota_us"); got != tc.wantQuota {
				t.Fatalf("cpu quota %s, want %s", got, tc.wantQuota)
			}
			if _, err := os.Stat(filepath.Join(e.root, "containers", c.ID, "update.json")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the update's intent is left: %v", err)
			}
			e.ok("rm", "-f", "u")
		})
	}
}

// Every launch-time setting that can make a launch fail leaves nothing
// behind: not its directory, runtime state, cgroups, mounts, networks or
// processes, even when the setting would also break the undo (a runtime
// that cannot run, a timeout too short for anything).
func TestFailedLaunchLeavesNothing(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "runc")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := []string{"run", "--rm", "-m", "64m", "--rootfs", e.rootfs}
	for _, tc := range []struct {
		name   string
		global []string // before run
		flags  []string // of run
	}{
		{"runtime not in PATH", []string{"--runtime", "nosuchruntime"}, nil},
		{"runtime path missing", []string{"--runtime", filepath.Join(dir, "nosuch", "runc")}, nil},
		{"runtime not executable", []string{"--runtime", notExecutable}, nil},
		{"runtime is a directory", []string{"--runtime", dir}, nil},
		{"runtime fails", []string{"--runtime", testutil.LookPath(t, "false")}, nil},
		{"runtime does nothing", []string{"--runtime", testutil.LookPath(t, "true")}, nil},
		{"runtime timeout 1ns", []string{"--runtime-timeout", "1ns"}, nil},
		{"runtime timeout negative", []string{"--runtime-timeout", "-1s"}, nil},
		{"runtime timeout zero", []string{"--runtime-timeout", "0"}, nil},
		{"cni timeout 1ns", []string{"--cni-timeout", "1ns"}, []string{"--network", "caisson"}},
		{"cni timeout negative", []string{"--cni-timeout", "-5m"}, []string{"--network", "caisson"}},
		{"cni plugins missing", []string{"--cni-plugin-path", filepath.Join(dir, "nosuch")}, []string{"--network", "caisson"}},
		{"cni config dir unusable", []string{"--cni-config-dir", filepath.Join(notExecutable, "net.d")}, []string{"--network", "caisson"}},
		{"default subnet bogus", []string{"--cni-config-dir", filepath.Join(dir, "fresh.d"), "--default-network-subnet", "10.1.2.3/99"}, []string{"-p", "18080:80"}},
		{"cgroup parent unusable", []string{"--cgroup-parent", e.cgroupParent + "/cgroup.procs"}, nil},
		{"run root unusable", []string{"--run-root", filepath.Join(notExecutable, "run")}, nil},
		{"volume plugin missing", []string{"--docker-host", "unix://" + filepath.Join(dir, "nosuch.sock")}, []string{"-v", "caisson-nosuch-plugin/data:/data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append(append(append([]string(nil), tc.global...), run...), tc.flags...), "true")
			r := e.caisson(args...)
			if r.code != 125 {
				t.Fatalf("caisson %s: %s; want 125", strings.Join(args, " "), r)
			}
			if !strings.HasPrefix(r.stderr, "caisson: ") {
				t.Errorf("want an error line starting with \"caisson: \", got %q", r.stderr)
			}
			if left := e.leftovers(); len(left) > 0 {
				t.Fatalf("left behind:\n  %s", strings.Join(left, "\n  "))
			}
			if n := strings.Fields(e.ok("ps", "-aq")); len(n) > 0 {
				t.Fatalf("ps -a lists %v", n)
			}
		})
	}
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// A container that has exited, however it ended, holds no mount, as in
// Docker; its writes, logs and exit status stay until it is removed.
func TestExitedContainersHoldNoMount(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "--name", "attached", "--rootfs", e.rootfs, "sh", "-c", "echo hi; echo data > /written")
	e.ok("run", "-d", "--name", "detached", "--rootfs", e.rootfs, "sh", "-c", "echo hi; echo data > /written; exit 3")
	e.ok("wait", "detached")
	e.ok("run", "-d", "--name", "killed", "--rootfs", e.rootfs, "sh", "-c", "echo hi; echo data > /written; exec sleep 1000")
	e.waitForLine("killed", "hi")
	running := e.inspect("killed")
	if len(mountsUnder(t, filepath.Join(e.root, "containers", running.ID))) == 0 {
		t.Fatal("a running container has no mount: the check below would prove nothing")
	}
	e.ok("kill", "killed")
	e.ok("wait", "killed")
	e.ok("run", "-d", "--name", "lost", "--rootfs", e.rootfs, "sh", "-c", "echo hi; echo data > /written; exec sleep 1000")
	e.waitForLine("lost", "hi")
	killAndWait(t, e.inspect("lost").MonitorPid)
	e.ok("ps", "-a") // records it lost and cleans it up

	for _, name := range []string{"attached", "detached", "killed", "lost"} {
		c := e.inspect(name)
		if c.State != api.StateExited || c.Termination == nil {
			t.Fatalf("%s: %s, %+v; want exited", name, c.State, c.Termination)
		}
		dir := filepath.Join(e.root, "containers", c.ID)
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("%s has exited and still holds mounts: %v", name, m)
		}
		if got := e.ok("logs", name); got != "hi\n" {
			t.Errorf("logs %s = %q, want hi", name, got)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "fs", "upper", "written")); err != nil || string(b) != "data\n" {
			t.Errorf("%s: its writes are gone: %q, %v", name, b, err)
		}
		e.ok("rm", name)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
}

// parallel runs n copies of caisson args at once and returns what each did.
func (e *env) parallel(n int, args ...string) []result {
	e.t.Helper()
	cmds := make([]*exec.Cmd, n)
	outs := make([]*strings.Builder, n)
	errs := make([]*strings.Builder, n)
	for i := range cmds {
		cmds[i] = e.cmd(args...)
		outs[i], errs[i] = &strings.Builder{}, &strings.Builder{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], errs[i]
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			e.t.Fatal(err)
		}
	}
	res := make([]result, n)
	for i, c := range cmds {
		err := c.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			e.t.Fatal(err)
		}
		res[i] = result{stdout: outs[i].String(), stderr: errs[i].String(), code: c.ProcessState.ExitCode()}
	}
	return res
}

// rm removes a container exactly once, however many ask at once: one
// prints its ID; the others find it gone, which with -f, as in Docker, is
// no failure (a notice on stderr), and without it is. A container that
// rm's own recovery pass removes is gone too.
func TestRemoveSemantics(t *testing.T) {
	e := newEnv(t)
	count := func(rs []result, code int, stdout string) int {
		n := 0
		for _, r := range rs {
			if r.code == code && r.stdout == stdout {
				n++
			}
		}
		return n
	}
	t.Run("parallel rm -f of a running container", func(t *testing.T) {
		id := strings.TrimSpace(e.ok("run", "-d", "--name", "same", "--rootfs", e.rootfs, "sleep", "1000"))
		rs := e.parallel(20, "rm", "-f", "same")
		if won, lost := count(rs, 0, id[:12]+"\n"), count(rs, 0, ""); won != 1 || lost != 19 {
			t.Fatalf("%d removed it and %d found it gone, want 1 and 19: %v", won, lost, rs)
		}
	})
	t.Run("parallel rm -f of a running container with --rm", func(t *testing.T) {
		id := strings.TrimSpace(e.ok("run", "-d", "--rm", "--name", "same", "--rootfs", e.rootfs, "sleep", "1000"))
		rs := e.parallel(20, "rm", "-f", "same")
		if won, lost := count(rs, 0, id[:12]+"\n"), count(rs, 0, ""); won != 1 || lost != 19 {
			t.Fatalf("%d removed it and %d found it gone, want 1 and 19: %v", won, lost, rs)
		}
	})
	t.Run("parallel rm of an exited container", func(t *testing.T) {
		id := strings.TrimSpace(e.ok("run", "-d", "--name", "same", "--rootfs", e.rootfs, "true"))
		e.ok("wait", "same")
		rs := e.parallel(20, "rm", "same")
		if won, lost := count(rs, 0, id[:12]+"\n"), count(rs, 125, ""); won != 1 || lost != 19 {
			t.Fatalf("%d removed it and %d failed, want 1 and 19: %v", won, lost, rs)
		}
	})
	t.Run("gone", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
		}{
			{[]string{"rm", "-f", "nosuch"}, 0},
			{[]string{"rm", "nosuch"}, 125},
			{[]string{"rm", "-f", "nosuch", "other"}, 0},
		} {
			if r := e.caisson(tc.args...); r.code != tc.code || r.stdout != "" || r.stderr == "" {
				t.Errorf("caisson %s: %s; want exit %d, a notice and no ID", strings.Join(tc.args, " "), r, tc.code)
			}
		}
	})
	t.Run("removed by its own recovery pass", func(t *testing.T) {
		cmd := e.cmd("run", "--name", "ghost", "--rootfs", e.rootfs, "sleep", "1000")
		cmd.Env = append(cmd.Env, "CAISSON_TEST_CRASH_AT=bundle")
		if err := cmd.Run(); err == nil {
			t.Fatal("the launch did not crash")
		}
		if r := e.caisson("rm", "-f", "ghost"); r.code != 0 || r.stdout != "" {
			t.Fatalf("rm -f of an interrupted launch that its recovery undid: %s; want exit 0 and no ID", r)
		}
	})
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
}

// A command that fails prints nothing on stdout first (no table header of
// nothing, no empty JSON).
func TestNoOutputBeforeError(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "-d", "--name", "exited", "--rootfs", e.rootfs, "true")
	e.ok("wait", "exited")
	for _, args := range [][]string{
		{"stats", "nosuch"},
		{"stats", "--format", "json", "nosuch"},
		{"stats", "exited"},
		{"stats", "--format", "json", "exited"},
		{"inspect", "nosuch"},
		{"logs", "nosuch"},
		{"wait", "nosuch"},
		{"kill", "nosuch"},
		{"kill", "exited"},
		{"update", "--cpus", "1", "nosuch"},
		{"update", "--cpus", "1", "exited"},
		{"rm", "nosuch"},
	} {
		if r := e.caisson(args...); r.code != 125 || r.stdout != "" || !strings.HasPrefix(r.stderr, "caisson: ") {
			t.Errorf("caisson %s: %s; want exit 125, an error and no output", strings.Join(args, " "), r)
		}
	}
}

// A run waiting for the root lock, which another command's recovery may
// hold through runtime and CNI calls for minutes, stays killable: SIGTERM
// cancels the launch while it waits, and it leaves nothing.
func TestRunCancelledWhileWaitingForLock(t *testing.T) {
	e := newEnv(t)
	e.ok("ps") // makes the work dir, and recovers it
	path := filepath.Join(e.root, "containers.lock")
	held, err := flock.Acquire(path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(held.Unlock)
	cmd := e.cmd("run", "--rm", "--rootfs", e.rootfs, "true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	exited, _ := start(t, cmd)
	testutil.WaitForLockWaiter(t, cmd.Process.Pid, path)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExited(t, exited, "run waiting for the root lock ignored SIGTERM")
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Fatalf("run after SIGTERM: exit %d, stderr %q; want 143", code, stderr.String())
	}
	held.Unlock()
	if ps := e.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left: %q", ps)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
}

// Directories under containers/ that no launch made (names shorter or
// other than an ID) are not containers: no command lists, resolves,
// recovers or removes them, and none crashes on them.
func TestForeignDirectoriesIgnored(t *testing.T) {
	e := newEnv(t)
	e.ok("ps") // makes the work dir
	names := []string{"x", "0123456789ab", "abc"}
	for _, n := range names {
		dir := filepath.Join(e.root, "containers", n)
		for _, f := range []string{"lock", "y"} {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), []byte("data"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.ok("run", "-d", "--name", "real", "--rootfs", e.rootfs, "sleep", "1000")
	real := e.inspect("real")
	if got := strings.Fields(e.ok("ps", "-aq")); !cmp.Equal(got, []string{real.ID[:12]}) {
		t.Errorf("ps -aq = %q, want only the real container", got)
	}
	e.ok("ps", "-a")
	e.ok("recover")
	for _, n := range names {
		for _, tc := range []struct {
			args []string
			code int // rm -f of what is not there is no error, as in Docker
		}{{[]string{"rm", n}, 125}, {[]string{"rm", "-f", n}, 0}, {[]string{"inspect", n}, 125}, {[]string{"kill", n}, 125}, {[]string{"logs", n}, 125}} {
			if r := e.caisson(tc.args...); r.code != tc.code || !strings.Contains(r.stderr, "no such container") {
				t.Errorf("caisson %s: %s; want exit %d, no such container", strings.Join(tc.args, " "), r, tc.code)
			}
		}
		if _, err := os.Stat(filepath.Join(e.root, "containers", n, "y")); err != nil {
			t.Errorf("what is in %s is gone: %v", n, err)
		}
	}
	e.ok("rm", "-f", "real")
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(e.root, "containers", n)); err != nil {
			t.Fatal(err)
		}
	}
}
