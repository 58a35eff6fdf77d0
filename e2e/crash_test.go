//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/oci"
)

// A crash between any two launch steps leaves nothing behind once the next
// caisson command has run.
func TestCrashBetweenLaunchSteps(t *testing.T) {
	e := newEnv(t)
	for _, step := range []string{"reserved", "provisioned", "prepared:cgroups/all", "bundle", "created", "isolated"} {
		t.Run(step, func(t *testing.T) {
			cmd := e.cmd("run", "-m", "64m", "--cpus", "0.5", "--rootfs", e.rootfs, "sleep", "1000")
			cmd.Env = append(cmd.Env, "CAISSON_TEST_CRASH_AT="+step)
			if err := cmd.Run(); err == nil {
				t.Fatalf("the launch did not crash at %s", step)
			}
			if len(e.leftovers()) == 0 && step != "reserved" {
				t.Fatalf("the crash at %s left nothing to recover: the fault injection did not work", step)
			}
			e.ok("ps", "-a") // the next start recovers
			e.waitAbandonedMonitors(t)
			if left := e.leftovers(); len(left) > 0 {
				t.Fatalf("after a crash at %s and a restart, left behind:\n  %s", step, strings.Join(left, "\n  "))
			}
		})
	}
	// After the start the container is running and must survive recovery.
	t.Run("started", func(t *testing.T) {
		cmd := e.cmd("run", "--name", "kept", "--rootfs", e.rootfs, "sh", "-c", "echo ready; exec sleep 1000")
		cmd.Env = append(cmd.Env, "CAISSON_TEST_CRASH_AT=started")
		_ = cmd.Run()
		e.waitForLine("kept", "ready")
		e.ok("recover")
		if c := e.inspect("kept"); c.State != api.StateRunning {
			t.Fatalf("a running container did not survive recovery: %s", c.State)
		}
		e.ok("rm", "-f", "kept")
	})
}

// waitAbandonedMonitors waits for the exit of the env's monitors whose
// launch crashed before it told them to go: each exits by itself once it
// reads its launcher's closed pipe, and on a slow machine (the cgroup v2
// VM, emulated) may still be starting when recovery has ended.
func (e *env) waitAbandonedMonitors(t *testing.T) {
	t.Helper()
	for _, l := range e.leftovers() {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "process" || !slices.Contains(f, "monitor") {
			continue
		}
		if pid, err := strconv.Atoi(f[1]); err == nil {
			waitGone(t, pid, nil)
		}
	}
}

// A monitor that dies after recording the exit but before cleaning up: the
// exit code is kept and the next start finishes the cleanup.
func TestCrashInMonitorAfterExit(t *testing.T) {
	e := newEnv(t)
	for _, rm := range []bool{false, true} {
		args := []string{"run", "-d", "--name", "quick", "-m", "64m", "--rootfs", e.rootfs, "sh", "-c", "exit 5"}
		if rm {
			args = append([]string{"run", "--rm"}, args[1:]...)
		}
		cmd := e.cmd(args...)
		cmd.Env = append(cmd.Env, "CAISSON_TEST_CRASH_AT=recorded")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSpace(string(out))
		if !rm {
			if got := strings.TrimSpace(e.ok("wait", id)); got != "5" {
				t.Fatalf("exit code after a monitor crash = %q, want 5", got)
			}
			if c := e.inspect("quick"); c.Termination == nil || c.Termination.ExitCode != 5 {
				t.Fatalf("termination lost: %+v", c.Termination)
			}
			e.ok("rm", "quick")
		} else {
			e.caisson("wait", id) // recovers; the container is removed
		}
		e.ok("ps", "-a")
		if left := e.leftovers(); len(left) > 0 {
			t.Fatalf("rm=%v: left behind:\n  %s", rm, strings.Join(left, "\n  "))
		}
	}
}

// `caisson recover` destroys what its work dir made and no checkpoint
// claims any more (a container whose directory was lost), and leaves alone
// what it did not make: a runtime container made behind its back in its
// runtime root and a cgroup under its cgroup parent, which may be another
// work dir's or anyone's.
func TestRecoverDestroysOrphans(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "-d", "--name", "live", "--rootfs", e.rootfs, "sleep", "1000")
	e.ok("run", "-d", "--name", "doomed", "-m", "64m", "--rootfs", e.rootfs, "sleep", "1000")
	lost := e.loseDir("doomed")

	// A foreign runtime container, made behind caisson's back in its
	// runtime root, with a cgroup under the parent.
	bundle := filepath.Join(t.TempDir(), "bundle")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	s := oci.Default()
	s.Root.Path = e.rootfs
	s.Root.Readonly = true
	s.Process.Args = []string{"sleep", "1000"}
	s.Linux.CgroupsPath = e.cgroupParent + "/foreign"
	data, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	runcRoot := filepath.Join(e.run, "runtime", "runc")
	// The container keeps its standard streams: /dev/null, not pipes that
	// would keep this call waiting.
	if err := exec.Command("runc", "--root", runcRoot, "run", "--detach", "--bundle", bundle, "foreign").Run(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("runc", "--root", runcRoot, "delete", "--force", "foreign").Run() })
	// And a bare cgroup with a process in it.
	strayCg := filepath.Join("/sys/fs/cgroup/pids", e.cgroupParent, "stray")
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err != nil {
		strayCg = filepath.Join("/sys/fs/cgroup", e.cgroupParent, "stray")
	}
	if err := os.MkdirAll(strayCg, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait(); _ = os.Remove(strayCg) })
	if err := os.WriteFile(filepath.Join(strayCg, "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	e.ok("recover")
	if processAlive(lost.Pid) || cgroupExists(t, lost.CgroupPath) || e.runtimeHas(lost.ID) {
		t.Errorf("the lost container survived recover: process alive %v, cgroup %v, runtime state %v",
			processAlive(lost.Pid), cgroupExists(t, lost.CgroupPath), e.runtimeHas(lost.ID))
	}
	if !e.runtimeHas("foreign") {
		t.Errorf("recover destroyed a runtime container it did not make")
	}
	if _, err := os.Stat(strayCg); err != nil || !processAlive(sleeper.Process.Pid) {
		t.Errorf("recover destroyed a cgroup it did not make: %v, process alive %v", err, processAlive(sleeper.Process.Pid))
	}
	if c := e.inspect("live"); c.State != api.StateRunning {
		t.Errorf("the live container is %s after recover", c.State)
	}
	// Not caisson's, so the test removes them before the env looks for
	// leftovers.
	if out, err := exec.Command("runc", "--root", runcRoot, "delete", "--force", "foreign").CombinedOutput(); err != nil {
		t.Errorf("runc delete: %v: %s", err, out)
	}
	_ = sleeper.Process.Kill()
	_ = sleeper.Wait()
	if err := os.Remove(strayCg); err != nil {
		t.Errorf("remove the stray cgroup: %v", err)
	}
}

// Launches, listings (which run recovery) and removals from several caisson
// processes at once neither fail nor leave anything behind.
func TestConcurrentCommands(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if r := e.caisson("run", "--rm", "-m", "64m", "--rootfs", e.rootfs, "sh", "-c", "exit 3"); r.code != 3 {
					errs <- fmt.Sprintf("worker %d run %d: %s", w, i, r)
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if r := e.caisson("ps", "-a"); r.code != 0 {
				errs <- "ps: " + r.String()
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
}
