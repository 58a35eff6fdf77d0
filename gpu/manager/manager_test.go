package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/gpu/manager/managertest"
)

type fakeHost struct{ *managertest.Host }

func dgx() *gpu.Inventory { return managertest.DGXA100() }

func newFakeHost(t *testing.T, inv *gpu.Inventory) *fakeHost {
	return &fakeHost{managertest.New(t, inv)}
}

func (h *fakeHost) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{Backend: gpu.BackendNVML, Dir: filepath.Join(h.Dir, "state"), Helper: h.Helper, ProcFS: h.ProcFS, SysFS: filepath.Join(h.Dir, "sys"), DriverRoot: filepath.Join(h.Dir, "driver")})
	must(t, err)
	return m
}

func (h *fakeHost) calls(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(h.Dir, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	must(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// aboutGPUs fails unless err is a FieldError about the spec's gpus that
// shows req.
func aboutGPUs(t *testing.T, req api.GPURequest, err error) {
	t.Helper()
	var fe *api.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("Allocate(%v) = %v; want an api.FieldError", req, err)
		return
	}
	if diff := cmp.Diff(api.FieldError{Field: "gpus", Value: req.String()}, *fe, cmpopts.IgnoreFields(api.FieldError{}, "Err")); diff != "" {
		t.Errorf("Allocate(%v): FieldError (-want +got):\n%s", req, diff)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func indexes(g *Grant) []int {
	var out []int
	for _, d := range g.Devices {
		out = append(out, d.Index)
	}
	return out
}

func TestAllocate(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost(t, dgx())
	m := h.manager(t)
	g, err := m.Allocate(ctx, "c1", api.GPURequest{Count: 2})
	must(t, err)
	if diff := cmp.Diff([]int{0, 1}, indexes(g)); diff != "" {
		t.Errorf("first pair (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{3}, g.NUMANodes); diff != "" {
		t.Errorf("NUMA hint (-want +got):\n%s", diff)
	}
	// Asking again for the same container returns what it holds.
	again, err := m.Allocate(ctx, "c1", api.GPURequest{Count: 2})
	must(t, err)
	if !cmp.Equal(indexes(again), []int{0, 1}) {
		t.Errorf("second Allocate for c1 = %v, want [0 1]", indexes(again))
	}
	g2, err := m.Allocate(ctx, "c2", api.GPURequest{Count: 4})
	must(t, err)
	if slices.ContainsFunc(indexes(g2), func(i int) bool { return i < 2 }) {
		t.Errorf("c2 got %v, overlapping c1's [0 1]", indexes(g2))
	}
	// Named GPUs: a free one works, a held one and an unknown one fail.
	inv := dgx()
	free := slices.DeleteFunc([]int{2, 3, 4, 5, 6, 7}, func(i int) bool { return slices.Contains(indexes(g2), i) })
	g3, err := m.Allocate(ctx, "c3", api.GPURequest{UUIDs: []string{inv.Devices[free[0]].UUID}})
	must(t, err)
	if !cmp.Equal(indexes(g3), free[:1]) {
		t.Errorf("c3 got %v, want %v", indexes(g3), free[:1])
	}
	bad := []struct {
		req  api.GPURequest
		want error
	}{
		{api.GPURequest{UUIDs: []string{inv.Devices[0].UUID}}, api.ErrUnavailable},
		{api.GPURequest{UUIDs: []string{"GPU-00000000-0000-0000-0000-000000000000"}}, api.ErrNotFound},
		{api.GPURequest{Count: 9}, api.ErrInvalid},
		{api.GPURequest{Count: 2}, api.ErrUnavailable}, // 1 left
		{api.GPURequest{All: true}, api.ErrUnavailable},
	}
	before := h.state(t)
	for _, c := range bad {
		_, err := m.Allocate(ctx, "bad", c.req)
		if !errors.Is(err, c.want) {
			t.Errorf("Allocate(%v) = %v, want %v", c.req, err, c.want)
		}
		aboutGPUs(t, c.req, err)
	}
	if diff := cmp.Diff(before, h.state(t)); diff != "" {
		t.Errorf("failed requests changed the allocations (-before +after):\n%s", diff)
	}
	// A new manager (a restart) sees the same allocations.
	m2 := h.manager(t)
	if _, err := m2.Allocate(ctx, "c4", api.GPURequest{Count: 2}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("after a restart 2 more GPUs were handed out: %v", err)
	}
	must(t, m2.Release("c2"))
	must(t, m2.Release("c2")) // idempotent
	must(t, m2.Reconcile(func(id string) bool { return id == "c1" }))
	if diff := cmp.Diff(map[string]string{inv.Devices[0].UUID: "c1", inv.Devices[1].UUID: "c1"}, h.state(t)); diff != "" {
		t.Errorf("after release and reconcile (-want +got):\n%s", diff)
	}
	all, err := m.Allocate(ctx, "c5", api.GPURequest{Count: 6})
	must(t, err)
	if diff := cmp.Diff([]int{2, 3, 4, 5, 6, 7}, indexes(all)); diff != "" {
		t.Errorf("6 of the 6 free (-want +got):\n%s", diff)
	}
	if n := strings.Count(strings.Join(h.calls(t), "\n"), "inventory"); n != 1 {
		t.Errorf("the helper ran inventory %d times, want once (the cache)", n)
	}
}

func (h *fakeHost) state(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Dir, "state", "state.json"))
	must(t, err)
	var s state
	must(t, json.Unmarshal(b, &s))
	return s.Allocations
}

// TestConcurrentAllocate: managers in parallel (as separate caisson
// processes are) never hand out one GPU twice.
func TestConcurrentAllocate(t *testing.T) {
	h := newFakeHost(t, dgx())
	_, err := h.manager(t).Inventory(context.Background(), false)
	must(t, err)
	var wg sync.WaitGroup
	got := make([][]int, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := h.manager(t).Allocate(context.Background(), fmt.Sprintf("c%d", i), api.GPURequest{Count: 2})
			if err == nil {
				got[i] = indexes(g)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	granted := 0
	for i := range 8 {
		if errs[i] != nil {
			if !errors.Is(errs[i], api.ErrUnavailable) {
				t.Errorf("c%d: %v", i, errs[i])
			}
			continue
		}
		granted++
		for _, g := range got[i] {
			if seen[g] {
				t.Errorf("GPU %d handed out twice: %v", g, got)
			}
			seen[g] = true
		}
	}
	if granted != 4 {
		t.Errorf("%d of 8 requests for 2 GPUs were granted on 8 GPUs, want 4", granted)
	}
}

func TestUnhealthyNotAllocated(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost(t, dgx())
	m := h.manager(t)
	inv := dgx()
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	changed, err := m.MarkUnhealthy(inv.Devices[0].UUID, "XID 79", now)
	must(t, err)
	if !changed {
		t.Error("first mark did not change anything")
	}
	if changed, _ := m.MarkUnhealthy(inv.Devices[0].UUID, "XID 48", now); changed {
		t.Error("second mark changed the mark")
	}
	g, err := m.Allocate(ctx, "c1", api.GPURequest{Count: 7})
	must(t, err)
	if slices.Contains(indexes(g), 0) {
		t.Errorf("unhealthy GPU 0 allocated: %v", indexes(g))
	}
	must(t, m.Release("c1"))
	if _, err := m.Allocate(ctx, "c1", api.GPURequest{Count: 8}); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "1 unhealthy") {
		t.Errorf("8 GPUs with one unhealthy: %v", err)
	}
	if _, err := m.Allocate(ctx, "c1", api.GPURequest{UUIDs: []string{inv.Devices[0].UUID}}); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "XID 79") {
		t.Errorf("the unhealthy GPU by UUID: %v", err)
	}
	_, list, err := m.List(ctx, false)
	must(t, err)
	if list[0].Healthy || list[0].Unhealthy == nil || list[0].Unhealthy.Reason != "XID 79" || !list[0].Unhealthy.Since.Equal(now) || !list[1].Healthy {
		t.Errorf("List: %+v %+v", list[0], list[1])
	}
	changed, err = m.MarkHealthy(inv.Devices[0].UUID)
	must(t, err)
	if !changed {
		t.Error("MarkHealthy changed nothing")
	}
	g, err = m.Allocate(ctx, "c1", api.GPURequest{Count: 8})
	must(t, err)
	if len(g.Devices) != 8 {
		t.Errorf("after recovery: %v", indexes(g))
	}
}

func TestCritical(t *testing.T) {
	for _, c := range []struct {
		ev   gpu.Event
		want bool
	}{
		{gpu.Event{Type: gpu.EventXID, XID: 79}, true},
		{gpu.Event{Type: gpu.EventXID, XID: 48}, true},
		{gpu.Event{Type: gpu.EventXID, XID: 94}, true},
		{gpu.Event{Type: gpu.EventDBE}, true},
		{gpu.Event{Type: gpu.EventXID, XID: 13}, false},
		{gpu.Event{Type: gpu.EventXID, XID: 31}, false},
		{gpu.Event{Type: gpu.EventXID, XID: 43}, false},
		{gpu.Event{Type: gpu.EventXID, XID: 45}, false},
		{gpu.Event{Type: gpu.EventXID, XID: 68}, false},
		{gpu.Event{Type: gpu.EventXID, XID: 109}, false},
		{gpu.Event{Type: gpu.EventUnwatched}, false},
		{gpu.Event{Type: gpu.EventReady}, false},
	} {
		if _, got := Critical(c.ev); got != c.want {
			t.Errorf("Critical(%+v) = %v, want %v", c.ev, got, c.want)
		}
	}
}

// TestWatch: critical events mark GPUs unhealthy, application XIDs do not,
// a probe that passes brings a GPU back and one that fails keeps it out.
func TestWatch(t *testing.T) {
	inv := dgx()
	h := newFakeHost(t, inv)
	u := func(i int) string { return inv.Devices[i].UUID }
	lines := []gpu.Event{
		{Type: gpu.EventReady},
		{UUID: u(1), Type: gpu.EventXID, XID: 13},
		{UUID: u(0), Type: gpu.EventXID, XID: 79},
		{UUID: u(2), Type: gpu.EventDBE},
		{UUID: u(3), Type: gpu.EventUnwatched, Reason: "not supported"},
		{UUID: "GPU-unknown", Type: gpu.EventXID, XID: 79},
	}
	var b strings.Builder
	for _, ev := range lines {
		j, err := json.Marshal(ev)
		must(t, err)
		b.Write(append(j, '\n'))
	}
	must(t, os.WriteFile(filepath.Join(h.Dir, "events.out"), []byte(b.String()), 0o644))
	must(t, os.WriteFile(filepath.Join(h.Dir, "fault-"+u(0)), nil, 0o644))
	m := h.manager(t)
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan Change, 100)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- m.Watch(ctx, 5*time.Millisecond, func() { close(ready) }, func(c Change) { changes <- c })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch ended before it was ready: %v", err)
	}
	unhealthy := map[int]string{}
	var recovered, stillOut bool
	for !recovered || !stillOut || len(unhealthy) < 2 {
		c := <-changes
		switch {
		case c.Event != nil:
			unhealthy[c.Index] = c.Reason
		case c.Healthy && c.Index == 2:
			recovered = true
		case !c.Healthy && c.Index == 0 && c.Reason == "GPU is lost":
			stillOut = true
		default:
			t.Errorf("unexpected change %+v", c)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch: %v", err)
	}
	if diff := cmp.Diff(map[int]string{0: "XID 79", 2: "double-bit ECC error"}, unhealthy); diff != "" {
		t.Errorf("marked (-want +got):\n%s", diff)
	}
	marks, err := m.Unhealthy()
	must(t, err)
	if _, ok := marks[u(0)]; !ok || len(marks) != 1 {
		t.Errorf("after the probes, unhealthy = %v, want only GPU 0", marks)
	}
}

// TestFallback: without the helper, GPUs come from /proc/driver/nvidia;
// without that either, there are none and the reason says why.
func TestFallback(t *testing.T) {
	ctx := context.Background()
	h := newFakeHost(t, dgx())
	m, err := New(Config{Dir: filepath.Join(h.Dir, "state"), Helper: filepath.Join(h.Dir, "missing"), ProcFS: h.ProcFS, SysFS: filepath.Join(h.Dir, "sys")})
	must(t, err)
	inv, err := m.Inventory(ctx, false)
	must(t, err)
	if len(inv.Devices) != 0 || inv.Source != "procfs" || !strings.Contains(inv.Reason, "no NVIDIA kernel driver") {
		t.Errorf("no helper, no driver: %+v", inv)
	}
	if _, err := m.Allocate(ctx, "c1", api.GPURequest{Count: 1}); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "no GPU") {
		t.Errorf("Allocate on a host without GPUs: %v", err)
	}
	gpus := filepath.Join(h.ProcFS, "driver", "nvidia", "gpus", "0000:3b:00.0")
	must(t, os.MkdirAll(gpus, 0o755))
	must(t, os.WriteFile(filepath.Join(gpus, "information"), []byte("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 123\nGPU UUID: \t GPU-8f6c9b0e-1111-2222-3333-444455556666\nBus Location: \t 0000:3b:00.0\nDevice Minor: \t 0\n"), 0o644))
	inv, err = m.Inventory(ctx, true)
	must(t, err)
	if len(inv.Devices) != 1 || inv.Devices[0].UUID != "GPU-8f6c9b0e-1111-2222-3333-444455556666" || inv.Topology == nil {
		t.Fatalf("procfs fallback: %+v", inv)
	}
	g, err := m.Allocate(ctx, "c1", api.GPURequest{Count: 1})
	must(t, err)
	if g.Devices[0].Model != "NVIDIA H100 80GB HBM3" {
		t.Errorf("granted %+v", g.Devices)
	}
	if s, err := m.Stats(ctx); err != nil || len(s) != 0 {
		t.Errorf("stats of procfs GPUs = %v, %v; want none", s, err)
	}
}

func TestBadConfig(t *testing.T) {
	if _, err := New(Config{Backend: "mock:dgx2", Dir: t.TempDir()}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("unknown backend: %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("no dir: %v", err)
	}
	m, err := New(Config{Dir: t.TempDir()})
	must(t, err)
	if err := m.Inject(gpu.Event{}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Inject on a real backend: %v", err)
	}
}

func TestCorruptState(t *testing.T) {
	h := newFakeHost(t, dgx())
	m := h.manager(t)
	must(t, os.MkdirAll(filepath.Join(h.Dir, "state"), 0o700))
	must(t, os.WriteFile(filepath.Join(h.Dir, "state", "state.json"), []byte("{"), 0o600))
	if _, err := m.Allocate(context.Background(), "c1", api.GPURequest{Count: 1}); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "state.json") {
		t.Errorf("corrupt state: %v", err)
	}
}
