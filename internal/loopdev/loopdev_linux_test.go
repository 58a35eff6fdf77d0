package loopdev

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// image makes a sparse file of size bytes in a new temporary directory.
func image(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustAttach attaches file and detaches the device when the test ends, unless
// the test closed or detached it itself.
func mustAttach(t *testing.T, file string) *Device {
	t.Helper()
	d, err := Attach(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Detach(); err != nil && !errors.Is(err, api.ErrWrongState) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return d
}

// bound reports whether the loop device at path is bound to a file.
func bound(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join("/sys/block", filepath.Base(path), "loop", "backing_file"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func find(t *testing.T, file string) []string {
	t.Helper()
	devs, err := Find(file)
	if err != nil {
		t.Fatal(err)
	}
	return devs
}

func TestAttachMountCloseUnmountFrees(t *testing.T) {
	testutil.RequiresRoot(t)
	mkfs := testutil.LookPath(t, "mkfs.ext4")
	file := image(t, 64<<20)
	mnt := filepath.Join(filepath.Dir(file), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}

	d := mustAttach(t, file)
	if diff := cmp.Diff([]string{d.Path()}, find(t, file)); diff != "" {
		t.Fatalf("Find after Attach (-want +got):\n%s", diff)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", d.Path()).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if err := unix.Mount(d.Path(), mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s: %v", d.Path(), err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			if err := unix.Unmount(mnt, 0); err != nil {
				t.Errorf("cleanup: unmount %s: %v", mnt, err)
			}
		}
	})
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !bound(t, d.Path()) {
		t.Fatalf("%s was freed on Close while mounted", d.Path())
	}
	got, err := os.ReadFile(filepath.Join(mnt, "hello"))
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("read back after Close: %q, %v", got, err)
	}

	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if bound(t, d.Path()) {
		t.Errorf("%s still bound after unmount", d.Path())
	}
	if devs := find(t, file); len(devs) != 0 {
		t.Errorf("Find after unmount = %v, want none", devs)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := d.Detach(); !errors.Is(err, api.ErrWrongState) {
		t.Errorf("Detach after Close = %v, want %v", err, api.ErrWrongState)
	}
}

func TestDetach(t *testing.T) {
	testutil.RequiresRoot(t)
	file := image(t, 1<<20)
	d := mustAttach(t, file)
	if !bound(t, d.Path()) {
		t.Fatalf("%s not bound after Attach", d.Path())
	}
	if err := d.Detach(); err != nil {
		t.Fatal(err)
	}
	if bound(t, d.Path()) {
		t.Errorf("%s still bound after Detach", d.Path())
	}
	if devs := find(t, file); len(devs) != 0 {
		t.Errorf("Find after Detach = %v, want none", devs)
	}
	if err := d.Detach(); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close after Detach: %v", err)
	}
}

// TestBindWays binds with LOOP_CONFIGURE and with the LOOP_SET_FD fallback
// of kernels before 5.8: both leave an autoclear device named after the
// file, which Close frees.
func TestBindWays(t *testing.T) {
	testutil.RequiresRoot(t)
	for name, bind := range map[string]bindFunc{"LOOP_CONFIGURE": configure, "LOOP_SET_FD": setFD} {
		t.Run(name, func(t *testing.T) {
			file := image(t, 1<<20)
			d, err := attach(file, bind)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := d.Detach(); err != nil && !errors.Is(err, api.ErrWrongState) {
					t.Errorf("cleanup: %v", err)
				}
			})
			info, err := unix.IoctlLoopGetStatus64(d.fd)
			if err != nil {
				t.Fatal(err)
			}
			if info.Flags&unix.LO_FLAGS_AUTOCLEAR == 0 {
				t.Errorf("flags %#x lack LO_FLAGS_AUTOCLEAR", info.Flags)
			}
			want := file[:min(len(file), len(info.File_name)-1)]
			if got := unix.ByteSliceToString(info.File_name[:]); got != want {
				t.Errorf("file name %q, want %q", got, want)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if bound(t, d.Path()) {
				t.Errorf("%s still bound after Close", d.Path())
			}
		})
	}
}

func TestCloseUnmountedFrees(t *testing.T) {
	testutil.RequiresRoot(t)
	file := image(t, 1<<20)
	d := mustAttach(t, file)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if bound(t, d.Path()) {
		t.Errorf("%s still bound after Close with nothing else holding it", d.Path())
	}
}

func TestAttachMissingFile(t *testing.T) {
	testutil.RequiresRoot(t)
	_, err := Attach(filepath.Join(t.TempDir(), "missing.img"))
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Attach of a missing file = %v, want %v", err, api.ErrNotFound)
	}
}

func TestAttachConcurrent(t *testing.T) {
	testutil.RequiresRoot(t)
	const n = 4
	files := make([]string, n)
	devs := make([]*Device, n)
	errs := make([]error, n)
	for i := range files {
		files[i] = image(t, 1<<20)
	}
	var wg sync.WaitGroup
	for i := range files {
		wg.Go(func() { devs[i], errs[i] = Attach(files[i]) })
	}
	wg.Wait()
	for i, d := range devs {
		if d != nil {
			t.Cleanup(func() {
				if err := d.Detach(); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			})
		}
		if errs[i] != nil {
			t.Errorf("Attach %s: %v", files[i], errs[i])
		}
	}
	if t.Failed() {
		return
	}
	paths := map[string]bool{}
	for i, d := range devs {
		paths[d.Path()] = true
		if diff := cmp.Diff([]string{d.Path()}, find(t, files[i])); diff != "" {
			t.Errorf("Find %s (-want +got):\n%s", files[i], diff)
		}
	}
	if len(paths) != n {
		t.Errorf("%d attaches got %d distinct devices: %v", n, len(paths), paths)
	}
}

// TestEnsureNode checks the fallback for a missing /dev/loopN node: the node
// made carries the device number that sysfs gives.
func TestEnsureNode(t *testing.T) {
	testutil.RequiresRoot(t)
	b, err := os.ReadFile("/sys/block/loop0/dev")
	if err != nil {
		t.Skipf("no loop0 in sysfs: %v", err)
	}
	major, minor, ok := parseDevNum(string(b))
	if !ok {
		t.Fatalf("parse /sys/block/loop0/dev %q", b)
	}
	path := filepath.Join(t.TempDir(), "loop0")
	if err := ensureNode(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := ensureNode(path, 0); err != nil {
		t.Errorf("ensureNode on an existing node: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		t.Errorf("mode %o is not a block device", st.Mode)
	}
	if got, want := uint64(st.Rdev), unix.Mkdev(major, minor); got != want {
		t.Errorf("rdev %d:%d, want %d:%d", unix.Major(got), unix.Minor(got), major, minor)
	}
}

func TestParseDevNum(t *testing.T) {
	for _, tc := range []struct {
		in           string
		major, minor uint32
		ok           bool
	}{
		{"7:0\n", 7, 0, true},
		{"7:256", 7, 256, true},
		{"259:3\n", 259, 3, true},
		{"7", 0, 0, false},
		{"x:1", 0, 0, false},
		{"", 0, 0, false},
	} {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			major, minor, ok := parseDevNum(tc.in)
			if diff := cmp.Diff([]any{tc.major, tc.minor, tc.ok}, []any{major, minor, ok}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseDevNum(f *testing.F) {
	f.Add("7:0\n")
	f.Add("259:65535")
	f.Fuzz(func(t *testing.T, s string) {
		major, minor, ok := parseDevNum(s)
		if !ok {
			return
		}
		again, _, _ := parseDevNum(strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10))
		if again != major {
			t.Errorf("parseDevNum(%q) = %d:%d, which does not parse back", s, major, minor)
		}
	})
}

// TestAttachRetries: a free device that another process binds first
// (EBUSY) or is tearing down (ENXIO) makes attach ask for another; other
// errors end it.
func TestAttachRetries(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name string
		errs []error // what the first binds fail with
		ok   bool
	}{
		{"busy", []error{unix.EBUSY, unix.EBUSY}, true},
		{"going away", []error{unix.ENXIO}, true},
		{"both", []error{unix.ENXIO, unix.EBUSY, unix.ENXIO}, true},
		{"other error", []error{unix.EINVAL}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.errs
			bind := func(fd, backing int, info *unix.LoopInfo64) error {
				if len(errs) > 0 {
					err := errs[0]
					errs = errs[1:]
					return err
				}
				return configure(fd, backing, info)
			}
			d, err := attach(image(t, 1<<20), bind)
			if tc.ok != (err == nil) {
				t.Fatalf("attach after binds failing with %v: %v, want ok %v", tc.errs, err, tc.ok)
			}
			if err == nil {
				if err := d.Detach(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
