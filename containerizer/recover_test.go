package containerizer

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// Only what newID makes names a container: a directory under containers/
// with any other name (a short one, one in capitals, one a user made) is
// not listed, resolved, inspected, recovered, quarantined or removed, and
// what is in it stays.
func TestForeignDirectoriesAreNotContainers(t *testing.T) {
	upper := strings.ToUpper(testID)
	for _, name := range []string{"x", "0123456789ab", upper, testID + "0", "caisson-" + testID[:12]} {
		t.Run(name, func(t *testing.T) {
			e := newFakeEnv(t)
			e.plant(t, map[string]string{
				"containers/" + name + "/lock":           "",
				"containers/" + name + "/y":              "data",
				"containers/" + name + "/container.json": "garbage",
			})
			want := e.tree(t, "containers")
			ctx := context.Background()
			if err := e.c.Recover(ctx, true); err != nil {
				t.Errorf("Recover = %v", err)
			}
			list, err := e.c.List(ctx)
			if err != nil || len(list) != 0 {
				t.Errorf("List = %+v, %v; want nothing", list, err)
			}
			for _, ref := range []string{name, name[:1]} {
				if _, err := e.c.Resolve(ref); !errors.Is(err, api.ErrNotFound) {
					t.Errorf("Resolve(%q) = %v, want api.ErrNotFound", ref, err)
				}
			}
			if _, err := e.c.Inspect(ctx, name); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Inspect = %v, want api.ErrNotFound", err)
			}
			if err := e.c.Remove(ctx, name, true); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Remove = %v, want api.ErrNotFound", err)
			}
			if err := e.c.Kill(ctx, name, 9); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Kill = %v, want api.ErrNotFound", err)
			}
			if err := e.c.Update(ctx, name, api.Resources{CPUs: 1}); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Update = %v, want api.ErrNotFound", err)
			}
			if _, err := e.c.Wait(ctx, name); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Wait = %v, want api.ErrNotFound", err)
			}
			if diff := cmp.Diff(want, e.tree(t, "containers")); diff != "" {
				t.Errorf("the directory changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShortID(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{testID, testID[:12]},
		{testID[:12], testID[:12]},
		{"x", "x"},
		{"", ""},
	} {
		if got := ShortID(tc.id); got != tc.want {
			t.Errorf("ShortID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

// A container directory whose lock file is missing, or is not a regular
// file, is removed by recovery only when it holds nothing beyond a
// reservation: anything more may be a running container's data. Its lock
// is made anew, and what it holds stays.
func TestBrokenLockNeverCostsData(t *testing.T) {
	exited := testRecord()
	exited.Phase, exited.Pid, exited.Cleaned = phaseExited, 0, true
	exited.Termination = &api.Termination{ExitCode: 3, Reason: api.ReasonExited}
	exited.Isolators = []string{"test/fake"}
	checkpoint, err := json.Marshal(exited)
	if err != nil {
		t.Fatal(err)
	}
	dir := "containers/" + testID + "/"
	for _, tc := range []struct {
		name  string
		files map[string]string
		lock  func(t *testing.T, path string) // makes what is at the lock's path
		// removed: the directory is a bare reservation, and goes.
		removed bool
		want    api.State
	}{
		{name: "empty directory", files: nil, removed: true},
		{name: "reservation writing its checkpoint", files: map[string]string{dir + ".container.json.tmp-1": "{"}, removed: true},
		{name: "checkpoint", files: map[string]string{dir + "container.json": string(checkpoint)}, want: api.StateExited},
		{name: "checkpoint and data", files: map[string]string{dir + "container.json": string(checkpoint), dir + "fs/upper/kept": "data"}, want: api.StateExited},
		{name: "damaged checkpoint", files: map[string]string{dir + "container.json": "{", dir + "fs/upper/kept": "data"}, want: api.StateUnreadable},
		{name: "data without a checkpoint", files: map[string]string{dir + "fs/upper/kept": "data"}, want: api.StateUnreadable},
		{name: "lock a FIFO", files: map[string]string{dir + "container.json": string(checkpoint)}, want: api.StateExited,
			lock: func(t *testing.T, p string) { mustDo(t, unix.Mkfifo(p, 0o600)) }},
		{name: "lock a directory", files: map[string]string{dir + "container.json": string(checkpoint)}, want: api.StateExited,
			lock: func(t *testing.T, p string) { mustDo(t, os.Mkdir(p, 0o700)) }},
		{name: "lock a link", files: map[string]string{dir + "container.json": string(checkpoint)}, want: api.StateExited,
			lock: func(t *testing.T, p string) { mustDo(t, os.Symlink("/dev/null", p)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			mustDo(t, os.MkdirAll(e.c.containerDir(testID), 0o700))
			e.plant(t, tc.files)
			mustDo(t, e.c.claim(testID))
			if tc.lock != nil {
				tc.lock(t, e.c.lockPath(testID))
			}
			kept := e.tree(t, "containers")
			err := e.c.Recover(context.Background(), false)
			if tc.want == api.StateUnreadable {
				if !errors.Is(err, api.ErrUnreadable) {
					t.Errorf("Recover = %v, want an error wrapping api.ErrUnreadable", err)
				}
			} else if err != nil {
				t.Errorf("Recover = %v", err)
			}
			if tc.removed {
				if _, err := os.Lstat(e.c.containerDir(testID)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the reservation is left: %v", err)
				}
				if owned, _ := e.c.claimed(); owned[testID] {
					t.Errorf("the reservation is still in the ownership ledger")
				}
				return
			}
			if st, err := os.Lstat(e.c.lockPath(testID)); err != nil || !st.Mode().IsRegular() {
				t.Errorf("the lock file was not made anew: %v, %v", st, err)
			}
			got := slices.DeleteFunc(e.tree(t, "containers"), func(p string) bool { return p == dir+"lock" })
			kept = slices.DeleteFunc(kept, func(p string) bool { return p == dir+"lock" })
			if diff := cmp.Diff(kept, got); diff != "" {
				t.Errorf("the container's files changed (-before +after):\n%s", diff)
			}
			v, err := e.c.Inspect(context.Background(), testID)
			if err != nil || v.State != tc.want {
				t.Errorf("Inspect = %v, %v; want %s", v, err, tc.want)
			}
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
