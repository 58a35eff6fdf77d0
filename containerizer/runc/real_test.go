//go:build linux

package runc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/oci"
)

// The tests below run the real runc and crun on a busybox bundle.

// cgroupParent is where the test containers' cgroups go, under every
// hierarchy.
const cgroupParent = "/caisson-runc-test"

type realRuntime struct {
	name    string
	command string
}

// realRuntimes returns runc and crun, as root, with the test process made a
// child subreaper so that it can wait4 the containers' init processes.
func realRuntimes(t *testing.T) []realRuntime {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.RequiresLinux(t)
	becomeSubreaper(t)
	return []realRuntime{
		{"runc", testutil.LookPath(t, "runc")},
		{"crun", crunCommand(t)},
	}
}

// crunCommand returns crun, or, on a host that mounts cgroup v1 with a cgroup
// v2 hierarchy at /sys/fs/cgroup/unified that has controllers, a wrapper
// called crun that runs it in a mount namespace without that hierarchy: crun
// 1.8 refuses such a host ("cgroups in hybrid mode not supported, drop all
// controllers from cgroupv2") even with --cgroup-manager=disabled, and uses
// the v1 hierarchies when it sees no v2 one.
func crunCommand(t *testing.T) string {
	t.Helper()
	crun := testutil.LookPath(t, "crun")
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil || fs.Type == unix.CGROUP2_SUPER_MAGIC {
		return crun
	}
	controllers, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil || len(bytes.TrimSpace(controllers)) == 0 {
		return crun
	}
	t.Logf("hybrid cgroups with v2 controllers (%s): the driver runs crun without /sys/fs/cgroup/unified", bytes.TrimSpace(controllers))
	return crun
}

func newReal(t *testing.T, rr realRuntime) *Runtime {
	t.Helper()
	return New(Config{Command: rr.command, Root: t.TempDir(), Logger: testutil.Logger(t)})
}

func randomID(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "caisson-test-" + hex.EncodeToString(b)
}

// makeBundle writes a bundle for a busybox container running args, and
// returns a fresh container ID and the bundle directory. The container's
// cgroups are removed when the test ends.
func makeBundle(t *testing.T, args ...string) (id, bundle string) {
	t.Helper()
	rootfs := testutil.BusyboxRootfs(t)
	bundle = filepath.Dir(rootfs)
	id = randomID(t)

	spec := oci.Default()
	spec.Root.Path = rootfs
	spec.Process.Args = args
	mounts := spec.Mounts[:0]
	for _, m := range spec.Mounts {
		if m.Destination != "/sys/fs/cgroup" {
			mounts = append(mounts, m)
		}
	}
	spec.Mounts = mounts
	spec.Linux.CgroupsPath = cgroupParent + "/" + id
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroups(t, id) })
	return id, bundle
}

// removeCgroups removes the container's cgroup from every hierarchy, and the
// parent when no other test uses it. The runtime's delete removes them
// already; this is for runs that failed half way.
func removeCgroups(t *testing.T, id string) {
	hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
	hierarchies = append(hierarchies, "/sys/fs/cgroup")
	for _, h := range hierarchies {
		if err := unix.Rmdir(filepath.Join(h, cgroupParent, id)); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("remove cgroup %s: %v", filepath.Join(h, cgroupParent, id), err)
		}
		unix.Rmdir(filepath.Join(h, cgroupParent)) // busy while another test runs
	}
}

// create creates the container and arranges for it to be deleted, its init
// reaped, when the test ends, whatever happens in between.
func create(t *testing.T, r *Runtime, id, bundle string, opts *containerizer.CreateOpts) (int, error) {
	t.Helper()
	pid, err := r.Create(context.Background(), id, bundle, opts)
	t.Cleanup(func() {
		if err := r.Delete(context.Background(), id, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if pid > 0 {
			reap(t, pid)
		}
	})
	return pid, err
}

// waitExit waits for the container init pid, which is this process's child
// since the runtime exited, to exit, and returns its status.
func waitExit(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	type result struct {
		ws  unix.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			done <- result{ws, err}
			return
		}
	}()
	// The limit keeps a broken runtime from hanging the test; it is not the
	// synchronisation.
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("wait4(%d): %v", pid, r.err)
		}
		return r.ws
	case <-time.After(time.Minute):
		t.Fatalf("pid %d did not exit within a minute", pid)
		return 0
	}
}

// reap collects pid if it is a dead or dying child of ours.
func reap(t *testing.T, pid int) {
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); errors.Is(err, unix.ECHILD) {
		return
	}
	// Still there: delete --force has sent SIGKILL, so it is on its way out.
	waitExit(t, pid)
}

func requireStatus(t *testing.T, r *Runtime, id, want string) *containerizer.RuntimeState {
	t.Helper()
	st, err := r.State(context.Background(), id)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if st.Status != want {
		t.Fatalf("State status %q, want %q", st.Status, want)
	}
	return st
}

func TestRealLifecycle(t *testing.T) {
	for _, rr := range realRuntimes(t) {
		for _, all := range []bool{false, true} {
			name := rr.name + "/kill"
			if all {
				name += "-all"
			}
			t.Run(name, func(t *testing.T) {
				testLifecycle(t, newReal(t, rr), all)
			})
		}
	}
}

func testLifecycle(t *testing.T, r *Runtime, all bool) {
	ctx := context.Background()
	id, bundle := makeBundle(t, "/bin/sh", "-c", "sleep 1000 & sleep 1000")
	dir := t.TempDir()
	opts := &containerizer.CreateOpts{
		PidFile: filepath.Join(dir, "pid"),
		Stdout:  openFile(t, filepath.Join(dir, "out"), ""),
		Stderr:  openFile(t, filepath.Join(dir, "err"), ""),
	}
	pid, err := create(t, r, id, bundle, opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if pid <= 0 {
		t.Fatalf("Create returned pid %d", pid)
	}

	st := requireStatus(t, r, id, "created")
	want := &containerizer.RuntimeState{ID: id, Pid: pid, Status: "created", Bundle: bundle}
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("State (-want +got):\n%s", d)
	}
	list, err := r.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if d := cmp.Diff([]containerizer.RuntimeState{*want}, list); d != "" {
		t.Errorf("List (-want +got):\n%s", d)
	}

	if err := r.Start(ctx, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	requireStatus(t, r, id, "running")
	if err := r.Start(ctx, id); !errors.Is(err, api.ErrWrongState) {
		t.Errorf("Start of a running container = %v, want api.ErrWrongState", err)
	}
	if err := r.Delete(ctx, id, false); !errors.Is(err, api.ErrWrongState) {
		t.Errorf("Delete of a running container = %v, want api.ErrWrongState", err)
	}

	if err := r.Kill(ctx, id, syscall.SIGKILL, all); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if ws := waitExit(t, pid); !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("init exited with %#x, want killed by SIGKILL", ws)
	}
	requireStatus(t, r, id, "stopped")
	if err := r.Kill(ctx, id, syscall.SIGKILL, all); err != nil {
		t.Errorf("Kill of a stopped container: %v", err)
	}
	if err := r.Start(ctx, id); !errors.Is(err, api.ErrWrongState) {
		t.Errorf("Start of a stopped container = %v, want api.ErrWrongState", err)
	}

	if err := r.Delete(ctx, id, false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := r.State(ctx, id); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("State after Delete = %v, want api.ErrNotFound", err)
	}
	if err := r.Start(ctx, id); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Start after Delete = %v, want api.ErrNotFound", err)
	}
	if err := r.Delete(ctx, id, false); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := r.Delete(ctx, id, true); err != nil {
		t.Errorf("Delete --force of an unknown container: %v", err)
	}
	if err := r.Kill(ctx, id, syscall.SIGKILL, all); err != nil {
		t.Errorf("Kill of an unknown container: %v", err)
	}
	if list, err := r.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after Delete = %v, %v; want none", list, err)
	}
	for _, h := range []string{"pids", "memory", "unified", ""} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, cgroupParent, id)); err == nil {
			t.Errorf("cgroup %s left behind by Delete", filepath.Join(h, cgroupParent, id))
		}
	}
}

func TestRealDeleteForce(t *testing.T) {
	for _, rr := range realRuntimes(t) {
		t.Run(rr.name, func(t *testing.T) {
			r := newReal(t, rr)
			ctx := context.Background()
			id, bundle := makeBundle(t, "/bin/sleep", "1000")
			pid, err := create(t, r, id, bundle, nil)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := r.Start(ctx, id); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := r.Delete(ctx, id, true); err != nil {
				t.Fatalf("Delete --force of a running container: %v", err)
			}
			if ws := waitExit(t, pid); !ws.Signaled() || ws.Signal() != unix.SIGKILL {
				t.Errorf("init exited with %#x, want killed by SIGKILL", ws)
			}
			if _, err := r.State(ctx, id); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("State after Delete = %v, want api.ErrNotFound", err)
			}
		})
	}
}

func TestRealCommandErrors(t *testing.T) {
	for _, rr := range realRuntimes(t) {
		for _, tc := range []struct {
			name string
			cmd  string
			want error
		}{
			{"not in PATH", "nosuch", api.ErrCommandNotFound},
			{"no such path", "/nosuch", api.ErrCommandNotFound},
			{"no such directory", "/nosuch/x", api.ErrCommandNotFound},
			{"not executable", "/etc/passwd", api.ErrCommandNotExecutable},
			{"directory", "/etc", api.ErrCommandNotExecutable},
			{"not a directory", "/etc/passwd/x", api.ErrCommandNotExecutable},
		} {
			t.Run(rr.name+"/"+tc.name, func(t *testing.T) {
				r := newReal(t, rr)
				id, bundle := makeBundle(t, tc.cmd)
				_, err := create(t, r, id, bundle, nil)
				t.Logf("%s: %v", tc.cmd, err)
				for _, s := range []error{api.ErrCommandNotFound, api.ErrCommandNotExecutable} {
					if got, want := errors.Is(err, s), s == tc.want; got != want {
						t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
					}
				}
			})
		}
	}
}

func TestRealStreams(t *testing.T) {
	for _, rr := range realRuntimes(t) {
		t.Run(rr.name, func(t *testing.T) {
			r := newReal(t, rr)
			id, bundle := makeBundle(t, "/bin/sh", "-c", `read line; echo "$line"; echo oops >&2`)
			dir := t.TempDir()
			opts := &containerizer.CreateOpts{ // no PidFile: Create uses its own
				Stdin:  openFile(t, filepath.Join(dir, "in"), "hello\n"),
				Stdout: openFile(t, filepath.Join(dir, "out"), ""),
				Stderr: openFile(t, filepath.Join(dir, "err"), ""),
			}
			pid, err := create(t, r, id, bundle, opts)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if err := r.Start(context.Background(), id); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if ws := waitExit(t, pid); !ws.Exited() || ws.ExitStatus() != 0 {
				t.Fatalf("container exited with %#x, want 0", ws)
			}
			got := map[string]string{"out": readFile(t, filepath.Join(dir, "out")), "err": readFile(t, filepath.Join(dir, "err"))}
			if d := cmp.Diff(map[string]string{"out": "hello\n", "err": "oops\n"}, got); d != "" {
				t.Errorf("streams (-want +got):\n%s", d)
			}
		})
	}
}

func TestRealListAndVersion(t *testing.T) {
	for _, rr := range realRuntimes(t) {
		t.Run(rr.name, func(t *testing.T) {
			ctx := context.Background()
			r := newReal(t, rr)
			list, err := r.List(ctx)
			if err != nil || len(list) != 0 {
				t.Errorf("List of an empty root = %v, %v; want none", list, err)
			}
			absent := New(Config{Command: rr.command, Root: filepath.Join(t.TempDir(), "absent")})
			if list, err := absent.List(ctx); err != nil || len(list) != 0 {
				t.Errorf("List of an absent root = %v, %v; want none", list, err)
			}
			v, err := r.Version(ctx)
			if err != nil {
				t.Fatalf("Version: %v", err)
			}
			if v == "" || strings.Contains(v, "version") || strings.Contains(v, "\n") {
				t.Errorf("Version = %q, want the bare version", v)
			}
			t.Logf("%s version %s", r.Name(), v)
			if r.Name() != rr.name {
				t.Errorf("Name = %q, want %q", r.Name(), rr.name)
			}
		})
	}
}

// Create with Start runs the process at once (run --detach): no Start call,
// the same error mapping.
func TestRealCreateAndStart(t *testing.T) {
	for _, rr := range realRuntimes(t) {
		t.Run(rr.name, func(t *testing.T) {
			r := newReal(t, rr)
			id, bundle := makeBundle(t, "/bin/sh", "-c", "exit 3")
			pid, err := create(t, r, id, bundle, &containerizer.CreateOpts{Start: true})
			if err != nil {
				t.Fatalf("Create with Start: %v", err)
			}
			if ws := waitExit(t, pid); !ws.Exited() || ws.ExitStatus() != 3 {
				t.Fatalf("container exited with %#x, want exit 3 without a Start call", ws)
			}
			id2, bundle2 := makeBundle(t, "nosuch")
			if _, err := create(t, r, id2, bundle2, &containerizer.CreateOpts{Start: true}); !errors.Is(err, api.ErrCommandNotFound) {
				t.Errorf("Create with Start of a missing command = %v, want api.ErrCommandNotFound", err)
			}
		})
	}
}
