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
			e := newFakeEnv(t, fakeScript{})
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
			e := newFakeEnv(t, fakeScript{})
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

// orphanID is the n-th ID of an orphan in these tests.
func orphanID(n int) string { return strings.Repeat(string(rune('a'+n)), 64) }

// Recovery forgets each orphan whose own destruction (the runtime's
// delete, every isolator's cleanup) succeeded, whatever failed for other
// orphans or in an isolator's sweep; the others stay in the ledger, and
// the next pass tries them again.
func TestRecoverForgetsOrphansOneByOne(t *testing.T) {
	e := newFakeEnv(t, fakeScript{Rules: []fakeRule{
		{Call: "runtime delete", ID: orphanID(0), Err: "fake"},
		{Call: "test/fake cleanup", ID: orphanID(1), Err: "fake"},
		{Call: "test/fake recover", Err: "fake"}, // an unrelated sweep failure
	}})
	ctx := context.Background()
	for n := range 4 {
		mustDo(t, e.c.claim(orphanID(n)))
	}
	if err := e.c.Recover(ctx, false); !errors.Is(err, errFake) {
		t.Fatalf("Recover = %v, want the failures", err)
	}
	owned, err := e.c.claimed()
	mustDo(t, err)
	if diff := cmp.Diff(map[string]bool{orphanID(0): true, orphanID(1): true}, owned); diff != "" {
		t.Errorf("the ledger after a pass with failures (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{orphanID(0), orphanID(1), orphanID(2), orphanID(3)}, e.ids("test/fake cleanup")); diff != "" {
		t.Errorf("isolator cleanups (-want +got):\n%s", diff)
	}

	e.setRules(fakeRule{Call: "test/fake recover", Err: "fake"})
	if err := e.c.Recover(ctx, false); !errors.Is(err, errFake) {
		t.Fatalf("Recover = %v, want the sweep's failure", err)
	}
	owned, err = e.c.claimed()
	mustDo(t, err)
	if len(owned) != 0 {
		t.Errorf("the ledger once every orphan could be destroyed: %v", owned)
	}
}

// A full recovery pass runs once after boot and then only when something
// calls for it (a crash's debris, an orphan left in the ledger): a
// quarantined container or a failing isolator sweep, which no pass can
// repair, do not make every command run it again.
func TestFullRecoveryOnlyWhenCalledFor(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *fakeEnv)
		// want is how many full passes three recoveries run.
		want    int
		wantErr error
	}{
		{"nothing", func(*testing.T, *fakeEnv) {}, 1, nil},
		{"quarantined container", func(t *testing.T, e *fakeEnv) {
			e.plant(t, map[string]string{
				"containers/" + testID + "/lock":           "",
				"containers/" + testID + "/container.json": "{",
				"containers/" + testID + "/fs/upper/kept":  "data",
			})
			mustDo(t, e.c.claim(testID))
		}, 1, api.ErrUnreadable},
		{"failing sweep", func(_ *testing.T, e *fakeEnv) { e.setRules(fakeRule{Call: "test/fake recover", Err: "fake"}) }, 1, nil},
		{"orphan", func(t *testing.T, e *fakeEnv) { mustDo(t, e.c.claim(orphanID(0))) }, 1, nil},
		{"orphan that cannot be destroyed", func(t *testing.T, e *fakeEnv) {
			mustDo(t, e.c.claim(orphanID(0)))
			e.setRules(fakeRule{Call: "test/fake cleanup", ID: orphanID(0), Err: "fake"})
		}, 3, errFake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, fakeScript{})
			tc.setup(t, e)
			for i := range 3 {
				err := e.c.Recover(context.Background(), false)
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("Recover %d = %v, want an error wrapping %v", i, err, tc.wantErr)
				}
			}
			if got := e.count("test/fake recover"); got != tc.want {
				t.Errorf("three recoveries ran %d full passes, want %d", got, tc.want)
			}
		})
	}
}
