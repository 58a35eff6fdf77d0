package containerizer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
)

// Small hand-written fakes, for tests of what the containerizer decides on
// its own (recovery, listing) without a runtime, images or root.

// errFake is what a fake fails with when a test asks it to.
var errFake = errors.New("fake failure")

// fakeRuntime holds no container; Delete records what it was asked to
// delete and fails for the IDs in failDelete.
type fakeRuntime struct {
	mu         sync.Mutex
	deleted    []string
	failDelete map[string]bool
}

var _ Runtime = (*fakeRuntime)(nil)

func (r *fakeRuntime) Name() string { return "fake" }

func (r *fakeRuntime) Create(context.Context, string, string, *CreateOpts) (int, error) {
	return 0, fmt.Errorf("fake runtime creates nothing: %w", api.ErrUnavailable)
}

func (r *fakeRuntime) Start(context.Context, string) error { return nil }

func (r *fakeRuntime) State(_ context.Context, id string) (*RuntimeState, error) {
	return nil, fmt.Errorf("container %s: %w", id, api.ErrNotFound)
}

func (r *fakeRuntime) Kill(context.Context, string, syscall.Signal, bool) error { return nil }

func (r *fakeRuntime) Delete(_ context.Context, id string, _ bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, id)
	if r.failDelete[id] {
		return fmt.Errorf("delete %s: %w", id, errFake)
	}
	return nil
}

// fakeProvisioner provisions nothing; Release removes the directory.
type fakeProvisioner struct{}

func (fakeProvisioner) Provision(context.Context, *ProvisionRequest) (*Rootfs, error) {
	return nil, fmt.Errorf("fake provisioner: %w", api.ErrUnavailable)
}

func (fakeProvisioner) Release(_ context.Context, dir string) error { return os.RemoveAll(dir) }

// fakeIsolator records the cleanups and recoveries it is asked for;
// Cleanup fails for the IDs in failCleanup, Recover with recoverErr.
type fakeIsolator struct {
	mu          sync.Mutex
	cleaned     []string
	recovered   []*isolators.RecoverRequest
	failCleanup map[string]bool
	recoverErr  error
}

var (
	_ isolators.Cleaner   = (*fakeIsolator)(nil)
	_ isolators.Recoverer = (*fakeIsolator)(nil)
)

func (f *fakeIsolator) Name() string { return "test/fake" }

func (f *fakeIsolator) Cleanup(_ context.Context, req *isolators.CleanupRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleaned = append(f.cleaned, req.ContainerID)
	if f.failCleanup[req.ContainerID] {
		return fmt.Errorf("cleanup %s: %w", req.ContainerID, errFake)
	}
	return nil
}

func (f *fakeIsolator) Recover(_ context.Context, req *isolators.RecoverRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recovered = append(f.recovered, req)
	return f.recoverErr
}

// recoveries is how many times Recover was called.
func (f *fakeIsolator) recoveries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recovered)
}

// fakeEnv is a containerizer on fakes, in temporary directories.
type fakeEnv struct {
	c   *Containerizer
	rt  *fakeRuntime
	iso *fakeIsolator
}

func newFakeEnv(t *testing.T) *fakeEnv {
	t.Helper()
	e := &fakeEnv{rt: &fakeRuntime{}, iso: &fakeIsolator{}}
	c, err := New(Config{
		Root: filepath.Join(t.TempDir(), "lib"), RunRoot: filepath.Join(t.TempDir(), "run"),
		Runtime: e.rt, Provisioner: fakeProvisioner{}, Isolators: []isolators.Isolator{e.iso},
		MonitorCommand: []string{"/nonexistent/caisson-monitor"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	return e
}

// plant makes the files (path: content) under the work dir, with their
// directories.
func (e *fakeEnv) plant(t *testing.T, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(e.c.cfg.Root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// tree lists every file under the work dir's dir, relative to the work
// dir, sorted.
func (e *fakeEnv) tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := e.c.cfg.Root
	err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
