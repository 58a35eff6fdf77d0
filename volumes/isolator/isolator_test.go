package isolator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/isolators/isolatorstest"
	"github.com/caisson/caisson/volumes/client"
)

// fakePlugin records calls and counts mounts per ID, as a plugin would.
type fakePlugin struct {
	mu       sync.Mutex
	calls    []string
	vols     map[string]bool
	refs     map[string]int
	failNext string // a method name whose next call fails
}

func newFake() *fakePlugin { return &fakePlugin{vols: map[string]bool{}, refs: map[string]int{}} }

func (f *fakePlugin) fail(method string) error {
	if f.failNext == method {
		f.failNext = ""
		return fmt.Errorf("%s refused by test", method)
	}
	return nil
}

func (f *fakePlugin) Create(_ context.Context, name string, opts map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("Create %s %v", name, opts))
	if err := f.fail("Create"); err != nil {
		return err
	}
	f.vols[name] = true
	return nil
}

func (f *fakePlugin) Get(_ context.Context, name string) (client.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.vols[name] {
		return client.Volume{}, fmt.Errorf("no such volume %s: %w", name, api.ErrNotFound)
	}
	return client.Volume{Name: name}, nil
}

func (f *fakePlugin) Mount(_ context.Context, name, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Mount "+name+" "+id[:8])
	if err := f.fail("Mount"); err != nil {
		return "", err
	}
	f.refs[name]++
	return "/plugin/" + name, nil
}

func (f *fakePlugin) Unmount(_ context.Context, name, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Unmount "+name+" "+id[:8])
	if err := f.fail("Unmount"); err != nil {
		return err
	}
	if f.refs[name] > 0 {
		f.refs[name]--
	}
	return nil
}

func (f *fakePlugin) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func newIso(t *testing.T, dir string, p *fakePlugin) *Isolator {
	t.Helper()
	iso, err := New(Config{StateDir: dir, Find: func(_ context.Context, driver string) (Plugin, error) {
		if driver != "fake" {
			return nil, fmt.Errorf("plugin %q not found: %w", driver, api.ErrNotFound)
		}
		return p, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return iso
}

func prepare(t *testing.T, iso *Isolator, cid string, vs ...api.VolumeMount) ([]specs.Mount, error) {
	t.Helper()
	resp := &isolators.PrepareResponse{}
	err := iso.Prepare(context.Background(), &isolators.PrepareRequest{ContainerID: cid, Spec: api.ContainerSpec{Volumes: vs}}, resp)
	return resp.Mounts, err
}

func cleanup(t *testing.T, iso *Isolator, cid string) {
	t.Helper()
	if err := iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: cid}); err != nil {
		t.Fatalf("Cleanup(%s): %v", cid, err)
	}
}

func TestConformance(t *testing.T) {
	isolatorstest.Run(t, func(t *testing.T) isolators.Isolator { return newIso(t, t.TempDir(), newFake()) },
		isolatorstest.Options{Request: func(t *testing.T, id string) *isolators.PrepareRequest {
			return &isolators.PrepareRequest{ContainerID: id, Spec: api.ContainerSpec{Volumes: []api.VolumeMount{{Driver: "fake", Name: "v", Target: "/data"}}}}
		}, Holds: holds})
}

// holds reports whether a record names the container as a holder.
func holds(t *testing.T, i isolators.Isolator, id string) bool {
	t.Helper()
	iso := i.(*Isolator)
	keys, err := iso.records()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		r, err := iso.load(k)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range r.Holders {
			if h.Container == id {
				return true
			}
		}
	}
	return false
}

// TestSharedVolume: one Mount for the first user, one Unmount after the
// last, whatever the order; the bind mount honours ro.
func TestSharedVolume(t *testing.T) {
	p := newFake()
	dir := t.TempDir()
	iso := newIso(t, dir, p)
	ms, err := prepare(t, iso, "c1", api.VolumeMount{Driver: "fake", Name: "v", Target: "/data/", Options: map[string]string{"size": "1m"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.Mount{{Destination: "/data", Type: "bind", Source: "/plugin/v", Options: []string{"rbind", "rprivate", "rw"}}}
	if diff := cmp.Diff(want, ms); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	id1 := MountID("c1", "/data")[:8]
	if diff := cmp.Diff([]string{"Create v map[size:1m]", "Mount v " + id1}, p.takeCalls()); diff != "" {
		t.Errorf("calls for the first user (-want +got):\n%s", diff)
	}
	ms, err = prepare(t, iso, "c2", api.VolumeMount{Driver: "fake", Name: "v", Target: "/ro", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ms[0].Options[2]; got != "ro" {
		t.Errorf("read-only bind options = %v", ms[0].Options)
	}
	if calls := p.takeCalls(); len(calls) != 0 {
		t.Errorf("a second user called the plugin: %v", calls)
	}
	cleanup(t, iso, "c1")
	cleanup(t, iso, "c1") // idempotent
	if calls := p.takeCalls(); len(calls) != 0 {
		t.Errorf("releasing the first of two users called the plugin: %v", calls)
	}
	cleanup(t, iso, "c2")
	if diff := cmp.Diff([]string{"Unmount v " + id1}, p.takeCalls()); diff != "" {
		t.Errorf("calls after the last user (-want +got):\n%s", diff)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
}

// TestPartialFailure: when the second volume cannot be mounted, the first
// is released, and a failed Mount is followed by Unmount of its ID.
func TestPartialFailure(t *testing.T) {
	p := newFake()
	dir := t.TempDir()
	iso := newIso(t, dir, p)
	p.vols["a"], p.vols["b"] = true, true
	idA, idB := MountID("c2", "/a")[:8], MountID("c2", "/b")[:8]
	// Fail the Mount of b: a is mounted first.
	_, err := prepareFailing(t, iso, p, "c2", "b",
		api.VolumeMount{Driver: "fake", Name: "a", Target: "/a"}, api.VolumeMount{Driver: "fake", Name: "b", Target: "/b"})
	if err == nil {
		t.Fatal("Prepare succeeded with a failing Mount")
	}
	if diff := cmp.Diff([]string{"Mount a " + idA, "Mount b " + idB, "Unmount b " + idB, "Unmount a " + idA}, p.takeCalls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"a": 0}, p.refs); diff != "" {
		t.Errorf("plugin refs (-want +got):\n%s", diff)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
	// Unknown drivers and bad requests fail before any plugin call.
	for _, vs := range [][]api.VolumeMount{
		{{Driver: "nope", Name: "a", Target: "/a"}},
		{{Driver: "fake", Name: "a\x00b", Target: "/a"}},
		{{Driver: "fake", Name: "", Target: "/a"}},
		{{Driver: "fake", Name: "a", Target: "rel"}},
		{{Driver: "fake", Name: "a", Target: "/"}},
		{{Driver: "", Name: "a", Target: "/a"}},
		{{Driver: "fake", Name: "a", Target: "/a"}, {Driver: "fake", Name: "b", Target: "/a/"}},
	} {
		if _, err := prepare(t, iso, "c3", vs...); err == nil {
			t.Errorf("Prepare(%v) succeeded", vs)
		} else if vs[0].Driver == "nope" && !errors.Is(err, api.ErrNotFound) {
			t.Errorf("unknown driver: %v, want api.ErrNotFound", err)
		}
	}
	if calls := p.takeCalls(); len(calls) != 0 {
		t.Errorf("bad requests called the plugin: %v", calls)
	}
}

// prepareFailing prepares with the Mount of volume fail failing.
func prepareFailing(t *testing.T, iso *Isolator, p *fakePlugin, cid, fail string, vs ...api.VolumeMount) ([]specs.Mount, error) {
	t.Helper()
	wrapped := &failOn{fakePlugin: p, name: fail}
	orig := iso.cfg.Find
	iso.cfg.Find = func(context.Context, string) (Plugin, error) { return wrapped, nil }
	defer func() { iso.cfg.Find = orig }()
	return prepare(t, iso, cid, vs...)
}

type failOn struct {
	*fakePlugin
	name string
}

func (f *failOn) Mount(ctx context.Context, name, id string) (string, error) {
	if name == f.name {
		f.mu.Lock()
		f.calls = append(f.calls, "Mount "+name+" "+id[:8])
		f.mu.Unlock()
		return "", errors.New("mount refused by test")
	}
	return f.fakePlugin.Mount(ctx, name, id)
}

// TestRecover: uses by containers that are gone are dropped, and a volume
// nobody uses is unmounted, also when the Unmount failed before or the
// process died between recording and mounting.
func TestRecover(t *testing.T) {
	p := newFake()
	dir := t.TempDir()
	iso := newIso(t, dir, p)
	for _, c := range []string{"live", "dead"} {
		if _, err := prepare(t, iso, c, api.VolumeMount{Driver: "fake", Name: "shared", Target: "/s"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := prepare(t, iso, "dead", api.VolumeMount{Driver: "fake", Name: "solo", Target: "/x"}); err != nil {
		t.Fatal(err)
	}
	// A crash between the record and the Mount leaves a pending record.
	pending := &record{Driver: "fake", Name: "pending", MountID: MountID("gone", "/p"), Holders: []holder{{"gone", "/p"}}}
	if err := iso.save(key("fake", "pending"), pending); err != nil {
		t.Fatal(err)
	}
	p.takeCalls()
	// A restarted isolator reads the records.
	iso = newIso(t, dir, p)
	if err := iso.Recover(context.Background(), &isolators.RecoverRequest{Containers: []isolators.RecoveredContainer{{ID: "live", Pid: 1}}}); err != nil {
		t.Fatal(err)
	}
	got := p.takeCalls()
	want := []string{"Unmount pending " + MountID("gone", "/p")[:8], "Unmount solo " + MountID("dead", "/x")[:8]}
	if diff := cmp.Diff(sorted(want), sorted(got)); diff != "" {
		t.Errorf("recovery calls (-want +got):\n%s", diff)
	}
	// A failed Unmount is retried by the next recovery.
	p.failNext = "Unmount"
	cleanup2 := iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: "live"})
	if cleanup2 == nil {
		t.Fatal("Cleanup hid a failed Unmount")
	}
	if err := iso.Recover(context.Background(), &isolators.RecoverRequest{}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestOwedUnmount: after an Unmount failed, the mount point is not handed
// out again blindly: the next user pays the Unmount and mounts afresh, and
// other containers' cleanup is not held up by it.
func TestOwedUnmount(t *testing.T) {
	p := newFake()
	iso := newIso(t, t.TempDir(), p)
	if _, err := prepare(t, iso, "c1", api.VolumeMount{Driver: "fake", Name: "v", Target: "/v"}); err != nil {
		t.Fatal(err)
	}
	p.failNext = "Unmount"
	if err := iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: "c1"}); err == nil {
		t.Fatal("Cleanup hid a failed Unmount")
	}
	p.takeCalls()
	// Another container's cleanup does not retry (or fail on) it.
	cleanup(t, iso, "unrelated")
	if calls := p.takeCalls(); len(calls) != 0 {
		t.Errorf("unrelated cleanup called the plugin: %v", calls)
	}
	if _, err := prepare(t, iso, "c2", api.VolumeMount{Driver: "fake", Name: "v", Target: "/w"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"Unmount v " + MountID("c1", "/v")[:8], "Mount v " + MountID("c2", "/w")[:8]}
	if diff := cmp.Diff(want, p.takeCalls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	cleanup(t, iso, "c2")
	if diff := cmp.Diff(map[string]int{"v": 0}, p.refs); diff != "" {
		t.Errorf("plugin refs (-want +got):\n%s", diff)
	}
}

// TestPrepareRefusesBadRequests: a malformed volume request is refused
// before any plugin is called, as an api.FieldError about the volumes.
func TestPrepareRefusesBadRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		vs   []api.VolumeMount
	}{
		{"no driver", []api.VolumeMount{{Name: "a", Target: "/a"}}},
		{"no name", []api.VolumeMount{{Driver: "fake", Target: "/a"}}},
		{"relative target", []api.VolumeMount{{Driver: "fake", Name: "a", Target: "a"}}},
		{"target /", []api.VolumeMount{{Driver: "fake", Name: "a", Target: "/"}}},
		{"target twice", []api.VolumeMount{{Driver: "fake", Name: "a", Target: "/a"}, {Driver: "fake", Name: "b", Target: "/a/"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFake()
			iso := newIso(t, t.TempDir(), p)
			_, err := prepare(t, iso, "c1-0123456789", tc.vs...)
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Prepare = %v, want ErrInvalid", err)
			}
			var fe *api.FieldError
			if !errors.As(err, &fe) || fe.Field != "volumes" {
				t.Errorf("Prepare = %v, want a FieldError about volumes", err)
			}
			if diff := cmp.Diff([]string(nil), p.takeCalls()); diff != "" {
				t.Errorf("plugin calls (-want +got):\n%s", diff)
			}
		})
	}
}
