package driver

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/loopdev"
	"github.com/caisson/caisson/internal/testutil"
)

// user is a process that uses a volume's data, started by a test; stop ends
// it (and its mount namespace, if it has one of its own).
type user struct {
	cmd   *exec.Cmd
	stdin *os.File
	// view is where the user sees the volume, from this process.
	view string
}

// startUser runs script (sh -c) with args, in dir, and waits for its
// "ready"; then it waits on its stdin. With unshare set, it runs in a new
// mount namespace of that propagation (private or slave).
func startUser(t *testing.T, unshare, dir, script string, args ...string) *user {
	t.Helper()
	argv := append([]string{"sh", "-c", script + ` && echo ready && exec cat`, "user"}, args...)
	if unshare != "" {
		argv = append([]string{"unshare", "--mount", "--propagation", unshare}, argv...)
	}
	return startArgv(t, dir, argv)
}

// startArgv runs argv in dir and waits for its "ready"; then it waits on
// its stdin.
func startArgv(t *testing.T, dir string, argv []string) *user {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin = r
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	u := &user{cmd: cmd, stdin: w}
	t.Cleanup(u.stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("user %q: %q, %v", argv, line, err)
	}
	return u
}

func (u *user) stop() {
	if u.stdin != nil {
		_ = u.stdin.Close()
		_ = u.cmd.Wait()
		u.stdin = nil
	}
}

// container binds src (a volume's mount point, or a directory in it) in a
// mount namespace of its own, as a container does; it sees the volume at
// view.
func container(propagation string) func(t *testing.T, src string) *user {
	return func(t *testing.T, src string) *user {
		dst := t.TempDir()
		u := startUser(t, propagation, "/", `mount --bind "$1" "$2"`, src, dst)
		u.view = "/proc/" + strconv.Itoa(u.cmd.Process.Pid) + "/root" + dst
		return u
	}
}

// rooted binds src at the path dst in a root filesystem of its own (a
// tmpfs it chroots into, as a container pivots into its root), where dst
// is the path of the plugin's own mount of the volume: its mount table
// shows the volume's filesystem at the plugin's mount point, as in a clone
// of the plugin's namespace, but on a parent mount of its own.
func rooted(t *testing.T, src, dst string) *user {
	testutil.LookPath(t, "chroot")
	busybox := testutil.LookPath(t, "busybox")
	root := t.TempDir()
	u := startArgv(t, "/", []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs none "$3" && mkdir -p "$3$2" "$3/bin" && mount --bind "$1" "$3$2" && cp "$4" "$3/bin/busybox" &&
		exec chroot "$3" /bin/busybox sh -c 'echo ready && exec /bin/busybox cat'`, "user", src, dst, root, busybox})
	u.view = "/proc/" + strconv.Itoa(u.cmd.Process.Pid) + "/root" + dst
	return u
}

// working is a process of the plugin's own namespace whose working
// directory is in the volume.
func working(t *testing.T, src string) *user {
	u := startUser(t, "", src, "true")
	u.view = "/proc/" + strconv.Itoa(u.cmd.Process.Pid) + "/cwd"
	return u
}

// sharedDir returns a temporary directory that is a shared mount, as / is
// on systemd hosts: mounts made below it propagate to the namespaces made
// from it with slave propagation.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountUnder(t, dir) })
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestRemoveInUse: however the reference counts went wrong (here, an
// Unmount sent for the one mount ID counted while a container still uses
// the volume), Remove is refused while anything uses the volume's data, for
// every backend and every kind of user: a container in a private or slave
// mount namespace, one that bound a subdirectory, a process working in the
// volume. The data stays, and the volume is removed once the user is gone.
func TestRemoveInUse(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "unshare")
	testutil.LookPath(t, "mkfs.xfs")
	backends := []struct {
		name string
		opts map[string]string
	}{
		{"dir", nil},
		{"dirkept", map[string]string{"keep": "true"}},
		{"loop", map[string]string{"type": "loop", "size": "4m"}},
		{"loopxfs", map[string]string{"type": "loop", "fs": "xfs", "size": "300m"}},
		{"tmpfs", map[string]string{"type": "tmpfs"}},
		{"bind", map[string]string{"type": "bind"}},
	}
	users := []struct {
		name  string
		start func(t *testing.T, src string) *user
		sub   bool // the user takes a subdirectory of the volume
		// not lists the backends this user does not apply to, and why.
		not map[string]string
	}{
		{name: "private container", start: container("private")},
		{name: "slave container", start: container("slave")},
		{name: "container of a subdirectory", start: container("private"), sub: true},
		{name: "working directory", start: working, not: map[string]string{
			// The plugin's own mount of these, lazily detached by the
			// last Unmount, is seen nowhere: what was in a tmpfs lives
			// on with the process; a bind volume's data is never deleted.
			"tmpfs": "detached", "bind": "detached",
		}},
	}
	for _, shared := range []bool{false, true} {
		for _, b := range backends {
			for _, u := range users {
				if u.not[b.name] != "" {
					continue
				}
				t.Run(fmt.Sprintf("shared=%v/%s/%s", shared, b.name, u.name), func(t *testing.T) {
					var root string
					if shared {
						root = filepath.Join(sharedDir(t), "plugin")
					} else {
						root = t.TempDir()
					}
					d := newDriver(t, root)
					opts := b.opts
					if b.name == "bind" {
						opts = map[string]string{"type": "bind", "path": t.TempDir()}
					}
					mp := mustCreate(t, d, "v", opts) // mount ID c1
					if err := os.Mkdir(filepath.Join(mp, "sub"), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(mp, "sub", "f"), []byte("precious"), 0o644); err != nil {
						t.Fatal(err)
					}
					src := mp
					if u.sub {
						src = filepath.Join(mp, "sub")
					}
					holder := u.start(t, src)
					inView := filepath.Join(holder.view, "sub", "f")
					if u.sub {
						inView = filepath.Join(holder.view, "f")
					}
					// The stray Unmount: the count is gone, the container
					// is not.
					mustUnmount(t, d, "v", "c1")
					err := d.Remove(&volume.RemoveRequest{Name: "v"})
					if !errors.Is(err, api.ErrConflict) {
						t.Fatalf("Remove of a volume in use = %v, want api.ErrConflict", err)
					}
					t.Logf("Remove: %v", err)
					if b, err := os.ReadFile(inView); err != nil || string(b) != "precious" {
						t.Errorf("the user's data after a refused Remove: %q, %v", b, err)
					}
					if err := os.WriteFile(inView, []byte("still writing"), 0o644); err != nil {
						t.Errorf("the user writes after a refused Remove: %v", err)
					}
					if _, err := d.Get(&volume.GetRequest{Name: "v"}); err != nil {
						t.Errorf("Get after a refused Remove: %v", err)
					}
					holder.stop()
					if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
						t.Fatalf("Remove once its user is gone: %v", err)
					}
					checkGone(t, d, "v", b.name == "dirkept")
				})
			}
		}
	}
}

// checkGone fails unless volume name is gone with its data (kept: only
// its record), its loop devices and its trash entry.
func checkGone(t *testing.T, d *Driver, name string, kept bool) {
	t.Helper()
	if _, err := d.Get(&volume.GetRequest{Name: name}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get after Remove = %v, want api.ErrNotFound", err)
	}
	if _, err := os.Stat(d.volDir(name)); kept != (err == nil) {
		t.Errorf("volume dir after Remove (kept %v): %v", kept, err)
	}
	if entries, _ := os.ReadDir(d.trashDir()); len(entries) != 0 {
		t.Errorf("trash after Remove: %v", entries)
	}
	if devs, err := loopdev.Find(d.image(name)); err != nil || len(devs) > 0 {
		t.Errorf("loop devices left: %v, %v", devs, err)
	}
}

// TestRemoveLoopHeldOpen: a loop volume whose device a process holds open
// is in use even when no mount shows it.
func TestRemoveLoopHeldOpen(t *testing.T) {
	testutil.RequiresRoot(t)
	d := newDriver(t, t.TempDir())
	mustCreate(t, d, "v", map[string]string{"type": "loop", "size": "4m"})
	devs, err := loopdev.Find(d.image("v"))
	if err != nil || len(devs) != 1 {
		t.Fatalf("loop devices of the volume: %v, %v", devs, err)
	}
	u := startUser(t, "", "/", `exec 3<"$1"`, devs[0])
	mustUnmount(t, d, "v", "c1")
	if err := d.Remove(&volume.RemoveRequest{Name: "v"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("Remove while its loop device is open = %v, want api.ErrConflict", err)
	} else {
		t.Logf("Remove: %v", err)
	}
	u.stop()
	if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
		t.Fatal(err)
	}
	checkGone(t, d, "v", false)
}

// TestRemoveBusyHere: a counted volume with a file open through the
// plugin's own mount is in use (it was detached lazily, and its data
// deleted, before).
func TestRemoveBusyHere(t *testing.T) {
	testutil.RequiresRoot(t)
	d := newDriver(t, t.TempDir())
	for _, opts := range []map[string]string{{"type": "loop", "size": "4m"}, {"type": "tmpfs"}, nil} {
		mp := mustCreate(t, d, "v", opts)
		u := startUser(t, "", mp, "true")
		if err := d.Remove(&volume.RemoveRequest{Name: "v"}); !errors.Is(err, api.ErrConflict) {
			t.Fatalf("%v: Remove while a process works in it = %v, want api.ErrConflict", opts, err)
		}
		u.stop()
		if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
			t.Fatalf("%v: %v", opts, err)
		}
		checkGone(t, d, "v", false)
	}
}

// crashInRemove leaves what a crash of Remove leaves: the volume's directory
// in the trash; with saved, after the state was saved without the volume.
func crashInRemove(t *testing.T, d *Driver, name string, saved bool) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.toTrash(d.st.Volumes[name]); err != nil {
		t.Fatal(err)
	}
	if saved {
		delete(d.st.Volumes, name)
		if err := d.save(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecoveryKeepsData: what the plugin deletes at start is only what a
// finished removal left in the trash, and only once nothing uses it: a
// removal cut short before the state was saved is undone; data a
// container still uses stays in the trash until it is free.
func TestRecoveryKeepsData(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "unshare")
	root := t.TempDir()
	d := newDriver(t, root)
	for _, n := range []string{"cut", "held"} {
		mp := mustCreate(t, d, n, nil)
		if err := os.WriteFile(filepath.Join(mp, "f"), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	crashInRemove(t, d, "cut", false)
	holder := container("private")(t, d.dataDir("held"))
	crashInRemove(t, d, "held", true)
	_ = d.Close()

	d = newDriver(t, root)
	if b, err := os.ReadFile(filepath.Join(mustMount(t, d, "cut", "c2"), "f")); err != nil || string(b) != "cut" {
		t.Errorf("a volume whose removal a crash cut short: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(holder.view, "f")); err != nil || string(b) != "held" {
		t.Errorf("the data of a removed volume a container still uses: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(d.trashDir()); len(entries) != 1 {
		t.Errorf("trash with a container's data: %v, want it kept", entries)
	}
	holder.stop()
	_ = d.Close()
	d = newDriver(t, root)
	if entries, _ := os.ReadDir(d.trashDir()); len(entries) != 0 {
		t.Errorf("trash once its data is free: %v, want it empty", entries)
	}
}

// TestDebrisInUse: a directory under volumes/ that the state does not list
// (the debris of a Create that crashed, or of a lost state) is not deleted
// by a Create of its name while a container uses it.
func TestDebrisInUse(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "unshare")
	d := newDriver(t, t.TempDir())
	data := d.dataDir("old")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	holder := container("private")(t, data)
	if err := d.Create(&volume.CreateRequest{Name: "old"}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("Create over debris in use = %v, want api.ErrConflict", err)
	}
	if _, err := os.Stat(filepath.Join(holder.view, "f")); err != nil {
		t.Errorf("debris in use after Create: %v", err)
	}
	holder.stop()
	mustCreate(t, d, "old", nil)
}

// TestStateFileBounded: the state file records what requests give; with
// the limits on mount IDs and their number, a volume's record stays small.
func TestStateFileBounded(t *testing.T) {
	d := newDriverNoRoot(t, t.TempDir())
	if err := d.Create(&volume.CreateRequest{Name: "v"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{strings.Repeat("i", 50<<20), strings.Repeat("i", MaxMountIDLen+1), "a\nb", "\xff"} {
		if _, err := d.Mount(&volume.MountRequest{Name: "v", ID: id}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Mount with ID %.20q... = %v, want api.ErrInvalid", id, err)
		}
	}
	old := maxMountIDs
	maxMountIDs = 8
	t.Cleanup(func() { maxMountIDs = old })
	for i := range maxMountIDs {
		mustMount(t, d, "v", fmt.Sprintf("%064x", i))
	}
	if _, err := d.Mount(&volume.MountRequest{Name: "v", ID: "one-too-many"}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("Mount of one mount ID too many = %v, want api.ErrConflict", err)
	}
	mustMount(t, d, "v", fmt.Sprintf("%064x", 0)) // a counted ID counts again
	fi, err := os.Stat(d.statePath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 4<<10 {
		t.Errorf("state file of %d bytes for one volume with %d mount IDs", fi.Size(), maxMountIDs)
	}
	var st state
	b, _ := os.ReadFile(d.statePath())
	if err := json.Unmarshal(b, &st); err != nil || len(st.Volumes["v"].Mounts) != maxMountIDs {
		t.Errorf("state: %v, mount IDs %v", err, st.Volumes["v"])
	}
}

// TestRemoveAtPluginPath: a container that mounts a volume, in its own
// root, at the path of the plugin's own mount of it (-v X:ROOT/volumes/X/mnt)
// uses it: its mount is no copy of the plugin's, though the filesystem,
// its root and the mount point's path are the same.
func TestRemoveAtPluginPath(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "unshare")
	for _, tc := range []struct {
		name string
		opts map[string]string
	}{
		{"loop", map[string]string{"type": "loop", "size": "4m"}},
		{"tmpfs", map[string]string{"type": "tmpfs"}},
		{"bind", map[string]string{"type": "bind"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, t.TempDir())
			if tc.name == "bind" {
				tc.opts["path"] = t.TempDir()
			}
			mp := mustCreate(t, d, "v", tc.opts) // the plugin's mount, for c1
			holder := rooted(t, mp, mp)
			if err := os.WriteFile(filepath.Join(holder.view, "f"), []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := d.Remove(&volume.RemoveRequest{Name: "v"})
			if !errors.Is(err, api.ErrConflict) {
				t.Fatalf("Remove of a volume a container mounts at the plugin's path = %v, want api.ErrConflict", err)
			}
			t.Logf("Remove: %v", err)
			if b, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(b) != "precious" {
				t.Errorf("the volume after a refused Remove: %q, %v", b, err)
			}
			holder.stop()
			if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
				t.Fatalf("Remove once its user is gone: %v", err)
			}
			checkGone(t, d, "v", false)
		})
	}
}

// TestTmpfsImpostor: a tmpfs that someone else mounts in a namespace of
// theirs with the source name of a tmpfs volume (computable, and any user
// can mount a tmpfs in a user namespace) is no use of the volume, whether
// the volume was never mounted, is mounted, or was mounted and unmounted
// (its device number may go to the impostor's filesystem then). A record
// of an earlier version, which knows no devices, still finds its
// filesystem by its source name.
func TestTmpfsImpostor(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "unshare")
	impostor := func(t *testing.T, d *Driver) *user {
		return startUser(t, "private", "/", `mount -t tmpfs "$1" "$2"`, d.tmpfsSource(d.st.Volumes["v"]), t.TempDir())
	}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, d *Driver)
	}{
		{"never mounted", func(t *testing.T, d *Driver) {}},
		{"mounted", func(t *testing.T, d *Driver) { mustMount(t, d, "v", "c1") }},
		{"mounted and unmounted", func(t *testing.T, d *Driver) {
			mustMount(t, d, "v", "c1")
			mustUnmount(t, d, "v", "c1")
			if devs := d.st.Volumes["v"].TmpfsDevs; len(devs) != 0 {
				t.Errorf("devices of a tmpfs volume after its last unmount: %v, want none (the filesystem is gone)", devs)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, t.TempDir())
			if err := d.Create(&volume.CreateRequest{Name: "v", Options: map[string]string{"type": "tmpfs"}}); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, d)
			impostor(t, d)
			if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
				t.Fatalf("Remove with an impostor's tmpfs of the volume's source name: %v", err)
			}
			checkGone(t, d, "v", false)
		})
	}
	t.Run("record of an earlier version", func(t *testing.T) {
		d := newDriver(t, t.TempDir())
		mp := mustCreate(t, d, "v", map[string]string{"type": "tmpfs"})
		holder := container("private")(t, mp)
		v := d.st.Volumes["v"]
		v.TmpfsDevs, v.TmpfsTracked = nil, false
		mustUnmount(t, d, "v", "c1") // the stray Unmount
		if err := d.Remove(&volume.RemoveRequest{Name: "v"}); !errors.Is(err, api.ErrConflict) {
			t.Fatalf("Remove of an earlier version's tmpfs volume a container holds = %v, want api.ErrConflict", err)
		}
		holder.stop()
		if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
			t.Fatal(err)
		}
	})
}
