package driver

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/loopdev"
	"github.com/caisson/caisson/internal/mountinfo"
	"github.com/caisson/caisson/internal/testutil"
)

// newDriver opens a driver on root and closes it, and unmounts whatever it
// left mounted under root, when the test ends.
func newDriver(t *testing.T, root string) *Driver {
	t.Helper()
	d, err := New(Config{Root: root, Logger: testutil.Logger(t), BindAllow: []string{os.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(); unmountUnder(t, d.root) })
	return d
}

// unmountUnder unmounts every mount at or below dir.
func unmountUnder(t testing.TB, dir string) {
	mps, err := mountinfo.Under(dir)
	if err != nil {
		t.Error(err)
	}
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			t.Errorf("cleanup: unmount %s: %v", mp, err)
		}
	}
}

func mustCreate(t *testing.T, d *Driver, name string, opts map[string]string) string {
	t.Helper()
	if err := d.Create(&volume.CreateRequest{Name: name, Options: opts}); err != nil {
		t.Fatalf("Create(%s, %v): %v", name, opts, err)
	}
	return mustMount(t, d, name, "c1")
}

func mustMount(t *testing.T, d *Driver, name, id string) string {
	t.Helper()
	r, err := d.Mount(&volume.MountRequest{Name: name, ID: id})
	if err != nil {
		t.Fatalf("Mount(%s, %s): %v", name, id, err)
	}
	return r.Mountpoint
}

func mustUnmount(t *testing.T, d *Driver, name, id string) {
	t.Helper()
	if err := d.Unmount(&volume.UnmountRequest{Name: name, ID: id}); err != nil {
		t.Fatalf("Unmount(%s, %s): %v", name, id, err)
	}
}

// fill writes n bytes to path and returns the write's error.
func fill(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(make([]byte, n))
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func owner(t *testing.T, path string) (uid, gid, mode uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid, st.Mode & 0o7777
}

func TestBackends(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "mkfs.ext4")
	testutil.LookPath(t, "mkfs.xfs")
	root := t.TempDir()
	d := newDriver(t, root)
	bindDir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts map[string]string
		// limit is the size past which writes must fail with ENOSPC; 0
		// means none.
		limit int
	}{
		{"plain", map[string]string{"uid": "1000", "gid": "1001", "mode": "0750"}, 0},
		{"loop", map[string]string{"type": "loop", "size": "8m", "uid": "1000", "gid": "1001", "mode": "0750"}, 8 << 20},
		{"loopxfs", map[string]string{"type": "loop", "fs": "xfs", "size": "300m", "uid": "1000", "gid": "1001", "mode": "0750"}, 0},
		{"mem", map[string]string{"type": "tmpfs", "size": "4m", "uid": "1000", "gid": "1001", "mode": "0750"}, 4 << 20},
		{"host", map[string]string{"type": "bind", "path": bindDir, "uid": "1000", "gid": "1001", "mode": "0750"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mp := mustCreate(t, d, tc.name, tc.opts)
			if diff := cmp.Diff([3]uint32{1000, 1001, 0o750}, func() [3]uint32 { u, g, m := owner(t, mp); return [3]uint32{u, g, m} }()); diff != "" {
				t.Errorf("owner, group, mode of %s (-want +got):\n%s", mp, diff)
			}
			if tc.limit > 0 {
				err := fill(filepath.Join(mp, "big"), tc.limit+(1<<20))
				if !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("writing past %d bytes: %v, want ENOSPC", tc.limit, err)
				}
				_ = os.Remove(filepath.Join(mp, "big"))
			}
			if err := os.WriteFile(filepath.Join(mp, "f"), []byte("kept"), 0o644); err != nil {
				t.Fatal(err)
			}
			// A second user, then both leave: the data stays until Remove.
			if mp2 := mustMount(t, d, tc.name, "c2"); mp2 != mp {
				t.Errorf("second Mount = %s, want %s", mp2, mp)
			}
			mustUnmount(t, d, tc.name, "c1")
			mustUnmount(t, d, tc.name, "c2")
			if tc.opts["type"] == TypeLoop || tc.opts["type"] == TypeTmpfs {
				if ms, _ := mountinfo.Read(0); mountinfo.IsMountPoint(ms, mp) {
					t.Errorf("%s still mounted after the last Unmount", mp)
				}
			}
			mp = mustMount(t, d, tc.name, "c3")
			b, err := os.ReadFile(filepath.Join(mp, "f"))
			switch {
			case tc.opts["type"] == TypeTmpfs:
				if err == nil {
					t.Errorf("tmpfs data survived its last unmount: %q", b)
				}
			case err != nil || string(b) != "kept":
				t.Errorf("data after remount = %q, %v", b, err)
			}
			mustUnmount(t, d, tc.name, "c3")
			if err := d.Remove(&volume.RemoveRequest{Name: tc.name}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(root, "volumes", tc.name)); !os.IsNotExist(err) {
				t.Errorf("volume dir left after Remove: %v", err)
			}
		})
	}
	// A bind volume's data is never deleted.
	if b, err := os.ReadFile(filepath.Join(bindDir, "f")); err != nil || string(b) != "kept" {
		t.Errorf("bind data after Remove = %q, %v", b, err)
	}
	if devs, err := loopdev.Find(filepath.Join(root, "volumes", "loop", "disk.img")); err != nil || len(devs) > 0 {
		t.Errorf("loop devices left: %v, %v", devs, err)
	}
}

func TestKeep(t *testing.T) {
	testutil.RequiresRoot(t)
	d := newDriver(t, t.TempDir())
	for _, opts := range []map[string]string{{"keep": "true"}, {"type": "loop", "size": "4m", "keep": "true"}} {
		mp := mustCreate(t, d, "k", opts)
		if err := os.WriteFile(filepath.Join(mp, "f"), []byte("survives"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustUnmount(t, d, "k", "c1")
		if err := d.Remove(&volume.RemoveRequest{Name: "k"}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Get(&volume.GetRequest{Name: "k"}); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("Get after Remove = %v", err)
		}
		// A new volume of the same name finds the data again.
		mp = mustCreate(t, d, "k", opts)
		if b, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(b) != "survives" {
			t.Errorf("%v: data after Remove and Create = %q, %v", opts, b, err)
		}
		mustUnmount(t, d, "k", "c1")
		if err := d.Remove(&volume.RemoveRequest{Name: "k"}); err != nil {
			t.Fatal(err)
		}
		// Kept data is only taken over by a volume of the same kind.
		other := map[string]string{"type": "loop", "size": "8m"}
		if opts["type"] == "loop" {
			other = map[string]string{"type": "loop", "size": "6m"}
		}
		if err := d.Create(&volume.CreateRequest{Name: "k", Options: other}); !errors.Is(err, api.ErrConflict) {
			t.Errorf("%v over data kept by %v: %v, want api.ErrConflict", other, opts, err)
		}
		if _, err := os.Stat(d.keptMarker("k")); err != nil {
			t.Errorf("kept data lost after a refused Create: %v", err)
		}
		_ = os.RemoveAll(d.volDir("k"))
	}
}

// TestRemoveLeavesNothing: removed data goes through the trash and is gone;
// debris of a Create that crashed is not taken for kept data.
func TestRemoveLeavesNothing(t *testing.T) {
	testutil.RequiresRoot(t)
	root := t.TempDir()
	d := newDriver(t, root)
	mp := mustCreate(t, d, "gone", map[string]string{"type": "loop", "size": "4m"})
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustUnmount(t, d, "gone", "c1")
	if err := d.Remove(&volume.RemoveRequest{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(root, "volumes"), filepath.Join(root, "trash")} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s after Remove: %v", dir, entries)
		}
	}
	// A crash between writing the image and saving the state left this.
	if err := os.MkdirAll(filepath.Join(root, "volumes", "debris"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "volumes", "debris", "disk.img"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	mp = mustCreate(t, d, "debris", map[string]string{"type": "loop", "size": "4m"})
	if entries, err := os.ReadDir(mp); err != nil || len(entries) != 1 || entries[0].Name() != "lost+found" {
		t.Errorf("new volume over debris: %v, %v", entries, err)
	}
	mustUnmount(t, d, "debris", "c1")
}

// TestSymlinkedRoot: a root reached through a symlink still sees its own
// mounts (mountinfo shows resolved paths), so a tmpfs is mounted once.
func TestSymlinkedRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, link)
	mp := mustCreate(t, d, "m", map[string]string{"type": "tmpfs"})
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mp2 := mustMount(t, d, "m", "c2")
	if _, err := os.Stat(filepath.Join(mp2, "f")); err != nil {
		t.Errorf("second user sees another tmpfs: %v", err)
	}
	ms, _ := mountinfo.Read(0)
	n := 0
	for _, m := range ms {
		if m.MountPoint == mp2 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d mounts at %s, want 1", n, mp2)
	}
	mustUnmount(t, d, "m", "c1")
	mustUnmount(t, d, "m", "c2")
}

// holder is a process in a mount namespace of its own that bind-mounts a
// volume, as a container does.
type holder struct {
	cmd   *exec.Cmd
	stdin *os.File
}

func startHolder(t *testing.T, src string) *holder {
	t.Helper()
	dst := t.TempDir()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" "$2" && echo ready && exec cat`, "holder", src, dst)
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
	h := &holder{cmd: cmd, stdin: w}
	t.Cleanup(h.stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("holder: %q, %v", line, err)
	}
	return h
}

// stop ends the holder; its namespace and mount go with it.
func (h *holder) stop() {
	if h.stdin != nil {
		_ = h.stdin.Close()
		_ = h.cmd.Wait()
		h.stdin = nil
	}
}

func refsOf(t *testing.T, d *Driver, name string) map[string]int {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.st.Volumes[name]
	if !ok {
		t.Fatalf("no volume %s", name)
	}
	out := map[string]int{}
	for k, n := range v.Mounts {
		out[k] = n
	}
	return out
}

// TestRefcounts plays what dockerd does (volumes-cni.md §1.4) against a loop
// volume, whose backing mount shows every mistake.
func TestRefcounts(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "unshare")
	root := t.TempDir()
	d := newDriver(t, root)
	mp := mustCreate(t, d, "v", map[string]string{"type": "loop", "size": "4m"})
	isMounted := func() bool { ms, _ := mountinfo.Read(0); return mountinfo.IsMountPoint(ms, mp) }

	// A running container (id c1) holds the volume; docker cp mounts the
	// same ID again and unmounts it: the volume must stay mounted.
	h := startHolder(t, mp)
	mustMount(t, d, "v", "c1")
	if diff := cmp.Diff(map[string]int{"c1": 2}, refsOf(t, d, "v")); diff != "" {
		t.Errorf("refs after docker cp's Mount (-want +got):\n%s", diff)
	}
	mustUnmount(t, d, "v", "c1")
	if !isMounted() {
		t.Fatal("docker cp's Unmount unmounted a volume a running container uses")
	}
	// The daemon dies (kill -9): the container dies, no Unmount comes. On
	// restart it mounts the same ID again: the stale count is replaced, not
	// doubled.
	h.stop()
	mustMount(t, d, "v", "c1")
	if diff := cmp.Diff(map[string]int{"c1": 1}, refsOf(t, d, "v")); diff != "" {
		t.Errorf("refs after Mount of a dead holder's ID (-want +got):\n%s", diff)
	}
	mustUnmount(t, d, "v", "c1")
	if isMounted() {
		t.Error("still mounted after the last Unmount")
	}
	// An unknown ID and an unknown volume unmount fine.
	mustUnmount(t, d, "v", "nobody")
	mustUnmount(t, d, "ghost", "c1")

	// Remove is refused while a container really has it mounted, and not
	// blocked by a count nobody backs.
	mustMount(t, d, "v", "c2")
	h = startHolder(t, mp)
	if err := d.Remove(&volume.RemoveRequest{Name: "v"}); !errors.Is(err, api.ErrConflict) {
		t.Errorf("Remove while held = %v, want api.ErrConflict", err)
	}
	h.stop()
	if err := d.Remove(&volume.RemoveRequest{Name: "v"}); err != nil {
		t.Errorf("Remove with a stale count: %v", err)
	}
	if isMounted() {
		t.Error("still mounted after Remove")
	}
}

// TestRestart: a plugin restart keeps volumes, counts and mounts; a reboot
// (another boot ID) drops the counts; a counted volume whose mount went away
// is mounted again.
func TestRestart(t *testing.T) {
	testutil.RequiresRoot(t)
	root := t.TempDir()
	d := newDriver(t, root)
	mp := mustCreate(t, d, "v", map[string]string{"type": "loop", "size": "4m"})
	mustCreate(t, d, "w", map[string]string{"mode": "0700"})
	before, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close()

	d = newDriver(t, root)
	after, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("List after restart (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"c1": 1}, refsOf(t, d, "v")); diff != "" {
		t.Errorf("refs after restart (-want +got):\n%s", diff)
	}
	// Someone unmounted it behind our back; the next start mounts it again.
	_ = d.Close()
	if err := unix.Unmount(mp, 0); err != nil {
		t.Fatal(err)
	}
	d = newDriver(t, root)
	if ms, _ := mountinfo.Read(0); !mountinfo.IsMountPoint(ms, mp) {
		t.Error("counted volume not mounted again at start")
	}
	// The next Unmount pairs with the Mount made before the restart.
	mustUnmount(t, d, "v", "c1")
	if ms, _ := mountinfo.Read(0); mountinfo.IsMountPoint(ms, mp) {
		t.Error("still mounted after the last Unmount")
	}
	// Reboot: the boot ID changes, every count is dropped.
	mustMount(t, d, "v", "c9")
	_ = d.Close()
	st, err := loadState(filepath.Join(root, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	st.BootID = "another-boot"
	if err := st.save(filepath.Join(root, "state.json")); err != nil {
		t.Fatal(err)
	}
	d = newDriver(t, root)
	if diff := cmp.Diff(map[string]int{}, refsOf(t, d, "v")); diff != "" {
		t.Errorf("refs after reboot (-want +got):\n%s", diff)
	}
	if ms, _ := mountinfo.Read(0); mountinfo.IsMountPoint(ms, mp) {
		t.Error("uncounted volume left mounted at start")
	}
	// One root, one plugin.
	if _, err := New(Config{Root: root}); err == nil {
		t.Error("a second driver opened the same root")
	}
}

// TestBadInput: every refusal names the problem, and nothing is created.
func TestBadInput(t *testing.T) {
	root := t.TempDir()
	d := newDriverNoRoot(t, root)
	inside := filepath.Join(root, "volumes")
	for _, tc := range []struct {
		name string
		opts map[string]string
		want error
	}{
		{"a/b", nil, api.ErrInvalid},
		{"..", nil, api.ErrInvalid},
		{"x\x00y", nil, api.ErrInvalid},
		{strings.Repeat("n", 256), nil, api.ErrInvalid},
		{"v", map[string]string{"size": "12 parsecs"}, api.ErrInvalid},
		{"v", map[string]string{"size": "0"}, api.ErrInvalid},
		{"v", map[string]string{"type": "nfs"}, api.ErrInvalid},
		{"v", map[string]string{"colour": "blue"}, api.ErrInvalid},
		{"v", map[string]string{"uid": "-1"}, api.ErrInvalid},
		{"v", map[string]string{"mode": "999"}, api.ErrInvalid},
		{"v", map[string]string{"keep": "perhaps"}, api.ErrInvalid},
		{"v", map[string]string{"type": "loop"}, api.ErrInvalid},
		{"v", map[string]string{"type": "loop", "size": "1k"}, api.ErrInvalid},
		{"v", map[string]string{"type": "loop", "size": "1g", "fs": "btrfs"}, api.ErrInvalid},
		{"v", map[string]string{"type": "tmpfs", "path": "/tmp"}, api.ErrInvalid},
		{"v", map[string]string{"type": "bind"}, api.ErrInvalid},
		{"v", map[string]string{"type": "bind", "path": "/does/not/exist"}, api.ErrInvalid},
		{"v", map[string]string{"type": "bind", "path": "relative"}, api.ErrInvalid},
		{"v", map[string]string{"type": "bind", "path": inside}, api.ErrInvalid},
		{"v", map[string]string{"type": "bind", "path": filepath.Dir(root)}, api.ErrInvalid},
		{"v", map[string]string{"type": "bind", "path": "/"}, api.ErrInvalid},
		{"v", map[string]string{"type": "tmpfs", "keep": "true"}, api.ErrInvalid},
		{"v", map[string]string{"type": "bind", "path": "/tmp", "size": "1g"}, api.ErrInvalid},
		// Not on XFS with prjquota here: a dir volume cannot have a size.
		{"v", map[string]string{"size": "1g"}, api.ErrInvalid},
	} {
		err := d.Create(&volume.CreateRequest{Name: tc.name, Options: tc.opts})
		if !errors.Is(err, tc.want) {
			t.Errorf("Create(%.20q, %v) = %v, want %v", tc.name, tc.opts, err, tc.want)
		} else {
			t.Logf("Create(%.20q, %v): %v", tc.name, tc.opts, err)
		}
	}
	entries, err := os.ReadDir(inside)
	if err != nil || len(entries) != 0 {
		t.Errorf("volumes dir after bad input: %v, %v", entries, err)
	}
	if l, _ := d.List(); len(l.Volumes) != 0 {
		t.Errorf("List after bad input: %v", l.Volumes)
	}
	for _, err := range []error{
		func() error { _, err := d.Mount(&volume.MountRequest{Name: "nope", ID: "x"}); return err }(),
		func() error { _, err := d.Get(&volume.GetRequest{Name: "nope"}); return err }(),
		func() error { _, err := d.Path(&volume.PathRequest{Name: "nope"}); return err }(),
		d.Remove(&volume.RemoveRequest{Name: "nope"}),
	} {
		if !errors.Is(err, api.ErrNotFound) {
			t.Errorf("operation on a missing volume = %v, want api.ErrNotFound", err)
		}
	}
}

func newDriverNoRoot(t *testing.T, root string) *Driver {
	t.Helper()
	d, err := New(Config{Root: root, Logger: testutil.Logger(t), BindAllow: []string{os.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// xfsRoot mounts a new XFS filesystem with project quotas (on a loop
// device) and returns its mount point.
func xfsRoot(t *testing.T) string {
	t.Helper()
	testutil.LookPath(t, "mkfs.xfs")
	dir := t.TempDir()
	img := filepath.Join(dir, "xfs.img")
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(300 << 20)
		_ = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-f", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v: %s", err, out)
	}
	dev, err := loopdev.Attach(img)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(dev.Path(), mnt, "xfs", 0, "prjquota"); err != nil {
		_ = dev.Detach()
		if errors.Is(err, unix.EINVAL) {
			// The kernel log says "XFS: quota support not available in
			// this kernel" (no CONFIG_XFS_QUOTA).
			t.Skipf("this kernel cannot mount XFS with prjquota (%v): no XFS quota support", err)
		}
		t.Fatal(err)
	}
	_ = dev.Close()
	t.Cleanup(func() { unmountUnder(t, mnt) })
	return mnt
}

// TestDirSizeOnXFS: a dir volume's size is an XFS project quota.
func TestDirSizeOnXFS(t *testing.T) {
	testutil.RequiresRoot(t)
	root := filepath.Join(xfsRoot(t), "plugin")
	d := newDriver(t, root)
	mp := mustCreate(t, d, "sized", map[string]string{"size": "4m", "uid": "1000"})
	// Subdirectories made later are inside the limit too. (Made before the
	// volume is full: XFS refuses even a mkdir in a full project, ENOSPC.)
	if err := os.Mkdir(filepath.Join(mp, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fill(filepath.Join(mp, "big"), 5<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing 5MiB into a 4MiB dir volume: %v, want ENOSPC", err)
	}
	if err := fill(filepath.Join(mp, "sub", "more"), 1<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing into a subdirectory of a full volume: %v, want ENOSPC", err)
	}
	g, err := d.Get(&volume.GetRequest{Name: "sized"})
	if err != nil {
		t.Fatal(err)
	}
	if used, _ := g.Volume.Status["used_bytes"].(uint64); used < 3<<20 || used > 4<<20 {
		t.Errorf("used_bytes = %v, want about 4MiB", g.Volume.Status["used_bytes"])
	}
	// A second sized volume has its own project and limit.
	mp2 := mustCreate(t, d, "other", map[string]string{"size": "8m"})
	if err := fill(filepath.Join(mp2, "f"), 6<<20); err != nil {
		t.Errorf("6MiB into an 8MiB volume next to a full one: %v", err)
	}
	mustUnmount(t, d, "sized", "c1")
	mustUnmount(t, d, "other", "c1")
	for _, n := range []string{"sized", "other"} {
		if err := d.Remove(&volume.RemoveRequest{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
}
