//go:build linux

package containerizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// fullFS mounts a small tmpfs of its own and returns it, with fill, which
// takes every free block of it (as another container's writable layer
// would).
func fullFS(t *testing.T) (dir string, fill func()) {
	t.Helper()
	testutil.RequiresRoot(t)
	dir = t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the tmpfs: %v", err)
		}
	})
	return dir, func() { testutil.Fill(t, filepath.Join(dir, "filler")) }
}

// The checkpoints that record a container's end are written on a full
// filesystem, however large its spec, also when another writer takes
// every block that the first one frees before the second is written.
func TestFinalRecordsOnFullDisk(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  int // bytes of environment in the spec
	}{
		{"small spec", 0},
		{"spec larger than the least spare", 300 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt, fill := fullFS(t)
			e := newFakeEnv(t, fakeScript{})
			e.c.cfg.Root = filepath.Join(mnt, "lib")
			r := testRecord()
			if tc.env > 0 {
				r.Spec.Env = []string{"BIG=" + strings.Repeat("e", tc.env)}
			}
			mustDo(t, os.MkdirAll(e.c.containerDir(testID), 0o700))
			mustDo(t, e.c.saveRecordWithRoom(r))

			fill()
			r.Phase, r.Pid = phaseExited, 0
			r.Termination = &api.Termination{ExitCode: 137, Reason: api.ReasonKilled, Message: "killed"}
			if err := e.c.saveRecord(r); !noSpace(err) {
				t.Fatalf("a checkpoint on the full filesystem = %v, want no space: the test did not fill it", err)
			}
			if err := e.c.saveFinalRecord(r); err != nil {
				t.Fatalf("the termination's checkpoint: %v", err)
			}
			fill() // what the first one freed
			r.Cleaned = true
			if err := e.c.saveFinalRecord(r); err != nil {
				t.Fatalf("the cleanup's checkpoint: %v", err)
			}
			got, err := e.c.loadRecord(testID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Cleaned || got.Termination == nil || got.Termination.ExitCode != 137 || len(got.Spec.Env) != len(r.Spec.Env) {
				t.Fatalf("read back: cleaned %v, termination %+v, %d env", got.Cleaned, got.Termination, len(got.Spec.Env))
			}
		})
	}
}

// The spare files grow with the checkpoint, never shrink, and something
// other than a regular file in their place is replaced, never opened.
func TestEnsureSpares(t *testing.T) {
	const grown = 100 << 10 // a checkpoint that needs more than the least spare
	for _, tc := range []struct {
		name   string
		before int                                // the checkpoint size the spares were made for; 0: none made
		damage func(t *testing.T, paths []string) // what happens to them then
		n      int
		want   []int64
	}{
		{"made", 0, nil, 100, []int64{minSpareSize, minSpareSize}},
		{"grown", 100, nil, grown, []int64{2 * grown, 2 * grown}},
		{"never shrunk", grown, nil, 10, []int64{2 * grown, 2 * grown}},
		{"a FIFO in place", grown, func(t *testing.T, p []string) {
			mustDo(t, os.Remove(p[0]))
			mustDo(t, unix.Mkfifo(p[0], 0o600))
		}, 10, []int64{minSpareSize, 2 * grown}},
		{"a directory in place", grown, func(t *testing.T, p []string) {
			mustDo(t, os.Remove(p[1]))
			mustDo(t, os.Mkdir(p[1], 0o700))
		}, 10, []int64{2 * grown, minSpareSize}},
		{"a link in place", grown, func(t *testing.T, p []string) {
			mustDo(t, os.Remove(p[1]))
			mustDo(t, os.Symlink("/dev/null", p[1]))
		}, 10, []int64{2 * grown, minSpareSize}},
		{"missing", grown, func(t *testing.T, p []string) { mustDo(t, os.Remove(p[1])) }, 10, []int64{2 * grown, minSpareSize}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, fakeScript{})
			dir := e.c.containerDir(testID)
			mustDo(t, os.MkdirAll(dir, 0o700))
			paths := e.c.sparePaths(testID)
			if tc.before > 0 {
				mustDo(t, e.c.ensureSpares(testID, tc.before))
			}
			if tc.damage != nil {
				tc.damage(t, paths)
			}
			testutil.NeverOpened(t, dir, func() {
				if err := e.c.ensureSpares(testID, tc.n); err != nil {
					t.Errorf("ensureSpares = %v", err)
				}
			})
			var got []int64
			for _, p := range paths {
				st, err := os.Lstat(p)
				if err != nil || !st.Mode().IsRegular() {
					t.Fatalf("spare %s: %v, %v", p, st, err)
				}
				got = append(got, st.Size())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("spare sizes (-want +got):\n%s", diff)
			}
		})
	}
}
