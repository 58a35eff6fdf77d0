package xfsquota

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/loopdev"
	"github.com/caisson/caisson/internal/mountinfo"
	"github.com/caisson/caisson/internal/testutil"
)

const mib = 1 << 20

// mountImage makes a sparse image of size bytes, formats it with mkfs (and
// args), mounts it with fstype and data, and returns the mount point. The
// mount and the loop device go when the test ends.
func mountImage(t *testing.T, size int64, fstype, data string, mkfs ...string) string {
	t.Helper()
	testutil.RequiresRoot(t)
	mkfsPath := testutil.LookPath(t, mkfs[0])
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	dev, err := loopdev.Attach(img)
	if err != nil {
		t.Fatal(err)
	}
	// Before the mount, Detach frees the device; after it, the device is
	// closed below and the kernel frees it on unmount.
	t.Cleanup(func() {
		if err := dev.Detach(); err != nil && !errors.Is(err, api.ErrWrongState) {
			t.Errorf("cleanup: %v", err)
		}
	})
	args := append(mkfs[1:], dev.Path())
	if out, err := exec.Command(mkfsPath, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", mkfs[0], err, out)
	}
	if err := unix.Mount(dev.Path(), mnt, fstype, 0, data); err != nil {
		if fstype == "xfs" && data != "" && errors.Is(err, unix.EINVAL) && !xfsQuotaBuiltIn() {
			t.Skipf("mount xfs -o %s: %v: this kernel has no XFS quota support (built without CONFIG_XFS_QUOTA: no /proc/fs/xfs/xqm)", data, err)
		}
		t.Fatalf("mount %s on %s (%s): %v", dev.Path(), mnt, data, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("cleanup: unmount %s: %v", mnt, err)
		}
	})
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	return mnt
}

// xfsQuotaBuiltIn reports whether the kernel's XFS has quota support,
// whose statistics it then shows in /proc/fs/xfs/xqm (once xfs is loaded).
func xfsQuotaBuiltIn() bool {
	_, err := os.Stat("/proc/fs/xfs/xqm")
	return err == nil
}

func mountXFS(t *testing.T, data string) string {
	t.Helper()
	return mountImage(t, 300*mib, "xfs", data, "mkfs.xfs", "-q", "-f")
}

func mkdir(t *testing.T, parts ...string) string {
	t.Helper()
	dir := filepath.Join(parts...)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fill writes n bytes to a new file in 64 KiB writes, as a program copying
// data would, and returns the error of the first write, the fsync or the
// close that fails. (XFS reserves quota for a whole write(2) at once, so a
// single 2 MiB write over a 1 MiB limit would fail having written nothing.)
func fill(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	chunk := make([]byte, 64<<10)
	var werr error
	for n > 0 && werr == nil {
		k := min(n, len(chunk))
		_, werr = f.Write(chunk[:k])
		n -= k
	}
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

func projectID(t *testing.T, path string) uint32 {
	t.Helper()
	id, err := ProjectID(path)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func usage(t *testing.T, c *Control, id uint32) (used, limit uint64) {
	t.Helper()
	used, limit, err := c.Usage(id)
	if err != nil {
		t.Fatal(err)
	}
	return used, limit
}

func TestLimit(t *testing.T) {
	mnt := mountXFS(t, "prjquota")
	c, err := Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	vol := mkdir(t, mnt, "vol")
	if err := c.SetLimit(vol, 42, mib); err != nil {
		t.Fatal(err)
	}
	if got := projectID(t, vol); got != 42 {
		t.Errorf("ProjectID(vol) = %d, want 42", got)
	}
	if got := projectID(t, mnt); got != 0 {
		t.Errorf("ProjectID(mount point) = %d, want 0", got)
	}

	// Created after SetLimit (and before the project is full, when even a
	// mkdir in it fails with ENOSPC).
	sub := mkdir(t, vol, "sub")
	if err := os.WriteFile(filepath.Join(sub, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sub, filepath.Join(sub, "f")} {
		if got := projectID(t, p); got != 42 {
			t.Errorf("ProjectID(%s) = %d, want 42, inherited", p, got)
		}
	}

	// XFS reports a project over its hard limit as a full filesystem.
	err = fill(filepath.Join(vol, "big"), 2*mib)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing 2 MiB under a 1 MiB limit: %v, want ENOSPC", err)
	}
	t.Logf("writing 2 MiB under a 1 MiB limit: %v", err)
	used, limit := usage(t, c, 42)
	if limit != mib {
		t.Errorf("limit %d, want %d", limit, mib)
	}
	t.Logf("after the failed write: used %d, limit %d", used, limit)
	if used > limit || used < limit-limit/8 {
		t.Errorf("used %d after filling a %d limit, want nearly all of it", used, limit)
	}

	if err := c.Clear(42); err != nil {
		t.Fatal(err)
	}
	if _, limit := usage(t, c, 42); limit != 0 {
		t.Errorf("limit after Clear %d, want 0", limit)
	}
	if err := fill(filepath.Join(sub, "big"), 2*mib); err != nil {
		t.Errorf("writing 2 MiB after Clear: %v", err)
	}
	if used, _ := usage(t, c, 42); used < 2*mib {
		t.Errorf("used %d after Clear and a 2 MiB write, want at least %d", used, 2*mib)
	}
	if err := c.Clear(42); err != nil {
		t.Errorf("second Clear: %v", err)
	}
}

func TestSetLimitRoundsUp(t *testing.T) {
	mnt := mountXFS(t, "prjquota")
	c, err := Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetLimit(mkdir(t, mnt, "v"), 7, 1000); err != nil {
		t.Fatal(err)
	}
	// We pass two 512-byte basic blocks; XFS keeps limits in filesystem
	// blocks and rounds up again.
	var fs unix.Statfs_t
	if err := unix.Statfs(mnt, &fs); err != nil {
		t.Fatal(err)
	}
	bsize := uint64(fs.Bsize)
	if _, limit := usage(t, c, 7); limit != (1000+bsize-1)/bsize*bsize {
		t.Errorf("limit of 1000 bytes is %d, want it rounded up to the %d-byte block", limit, bsize)
	}
	if used, limit := usage(t, c, 99); used != 0 || limit != 0 {
		t.Errorf("Usage of an unknown project = %d, %d, want 0, 0", used, limit)
	}
	if err := c.Clear(99); err != nil {
		t.Errorf("Clear of an unknown project: %v", err)
	}
}

// TestAccess runs SetLimit and Usage through each way of naming the
// filesystem to quotactl.
func TestAccess(t *testing.T) {
	mnt := mountXFS(t, "prjquota")
	c, err := Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if c.source == "" {
		t.Errorf("Open found no device node for %s", mnt)
	}
	for i, via := range []access{viaFD, viaSource, viaMknod} {
		id := uint32(100 + i)
		cc := *c
		cc.via = via
		if err := cc.SetLimit(mkdir(t, mnt, "v"+string(rune('a'+i))), id, 3*mib); err != nil {
			t.Errorf("access %d: %v", via, err)
			continue
		}
		if _, limit, err := cc.Usage(id); err != nil || limit != 3*mib {
			t.Errorf("access %d: Usage = _, %d, %v, want limit %d", via, limit, err, 3*mib)
		}
	}
}

func TestInvalid(t *testing.T) {
	mnt := mountXFS(t, "prjquota")
	c, err := Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	vol := mkdir(t, mnt, "vol")
	for name, err := range map[string]error{
		"id 0":            c.SetLimit(vol, 0, mib),
		"0 bytes":         c.SetLimit(vol, 1, 0),
		"other fs":        c.SetLimit(t.TempDir(), 1, mib),
		"clear id 0":      c.Clear(0),
		"missing":         c.SetLimit(filepath.Join(mnt, "missing"), 1, mib),
		"open missing":    func() error { _, err := Open(filepath.Join(mnt, "missing")); return err }(),
		"project missing": func() error { _, err := ProjectID(filepath.Join(mnt, "missing")); return err }(),
	} {
		want := api.ErrInvalid
		if name == "missing" || name == "open missing" || name == "project missing" {
			want = api.ErrNotFound
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	if got := projectID(t, vol); got != 0 {
		t.Errorf("refused SetLimit left project %d on vol", got)
	}
}

func TestOpenUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		mnt  func(t *testing.T) string
	}{
		{"ext4", func(t *testing.T) string {
			return mountImage(t, 64*mib, "ext4", "", "mkfs.ext4", "-q", "-F")
		}},
		{"xfs without prjquota", func(t *testing.T) string { return mountXFS(t, "") }},
		{"xfs with pqnoenforce", func(t *testing.T) string { return mountXFS(t, "pqnoenforce") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := tc.mnt(t)
			_, err := Open(mkdir(t, mnt, "vol"))
			if !errors.Is(err, api.ErrUnavailable) {
				t.Fatalf("Open = %v, want %v", err, api.ErrUnavailable)
			}
			t.Log(err)
		})
	}
}

// TestProjectInheritance checks the FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR
// half of SetLimit, which XFS serves with or without quota support: a
// directory given a project passes it on to what is created in it.
func TestProjectInheritance(t *testing.T) {
	mnt := mountXFS(t, "")
	vol := mkdir(t, mnt, "vol")
	before := mkdir(t, vol, "before")
	fd, err := unix.Open(vol, dirOpenFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := setProject(fd, 42); err != nil {
		t.Fatal(err)
	}
	sub := mkdir(t, vol, "sub")
	file := filepath.Join(sub, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want uint32
	}{{mnt, 0}, {vol, 42}, {before, 0}, {sub, 42}, {file, 42}} {
		if got := projectID(t, tc.path); got != tc.want {
			t.Errorf("ProjectID(%s) = %d, want %d", tc.path, got, tc.want)
		}
	}
	var attr fsxattr
	if err := ioctlFsxattr(fd, fsIocFsgetxattr, &attr); err != nil {
		t.Fatal(err)
	}
	if attr.Xflags&fsXflagProjinherit == 0 {
		t.Errorf("xflags %#x lack FS_XFLAG_PROJINHERIT", attr.Xflags)
	}
}

// TestQuotactlReachesFilesystem checks that each way of naming the
// filesystem to quotactl reaches its superblock, on an xfs mounted without
// quota, which then answers ENOSYS (no quota operations). A wrong name
// would fail earlier: EBADF, ENOENT, ENOTBLK, ENODEV or EACCES.
func TestQuotactlReachesFilesystem(t *testing.T) {
	mnt := mountXFS(t, "")
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	mounts, err := mountinfo.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := mountinfo.Containing(mounts, mnt)
	if !ok || m.MountPoint != mnt || !isDevice(m.Source, uint64(st.Dev)) {
		t.Fatalf("mount of %s: %+v, found %v", mnt, m, ok)
	}
	t.Logf("quotactl_fd available: %v", haveQuotactlFD())
	for _, via := range []access{viaAuto, viaFD, viaSource, viaMknod} {
		c := &Control{mountpoint: m.MountPoint, dev: uint64(st.Dev), source: m.Source, via: via}
		if _, _, err := c.Usage(1); !errors.Is(err, unix.ENOSYS) {
			t.Errorf("access %d: Usage = %v, want ENOSYS", via, err)
		}
	}
	// The control: a device number that no filesystem has fails before.
	bogus := &Control{mountpoint: mnt, dev: unix.Mkdev(7, 1<<19), via: viaMknod}
	if _, _, err := bogus.Usage(1); err == nil || errors.Is(err, unix.ENOSYS) {
		t.Errorf("Usage through a node for no filesystem = %v, want an error other than ENOSYS", err)
	}
}
