package isolatorstest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// memory is a small isolator with every capability that keeps its state in
// memory: the suite's own example, and, with one of its faults, an isolator
// each check must catch.
type memory struct {
	mu       sync.Mutex
	prepared map[string]bool
	fault    string // what it does wrong; empty for nothing
}

var (
	_ isolators.Preparer        = (*memory)(nil)
	_ isolators.PidIsolator     = (*memory)(nil)
	_ isolators.StartedIsolator = (*memory)(nil)
	_ isolators.Watcher         = (*memory)(nil)
	_ isolators.Updater         = (*memory)(nil)
	_ isolators.UsageReporter   = (*memory)(nil)
	_ isolators.StatusReporter  = (*memory)(nil)
	_ isolators.Cleaner         = (*memory)(nil)
	_ isolators.Recoverer       = (*memory)(nil)
)

func newMemory(fault string) *memory { return &memory{prepared: map[string]bool{}, fault: fault} }

func (m *memory) Name() string { return "test/memory" }

func (m *memory) Prepare(_ context.Context, req *isolators.PrepareRequest, resp *isolators.PrepareResponse) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.prepared[req.ContainerID] {
		return fmt.Errorf("container %s prepared twice: %w", req.ContainerID, api.ErrAlreadyExists)
	}
	m.prepared[req.ContainerID] = true
	resp.Env = append(resp.Env, "PREPARED_BY=test")
	resp.Mounts = append(resp.Mounts, specs.Mount{Destination: "/memory", Type: "tmpfs", Source: "tmpfs"})
	switch m.fault {
	case "relative mount":
		resp.Mounts = append(resp.Mounts, specs.Mount{Destination: "memory", Type: "tmpfs", Source: "tmpfs"})
	case "spec opt undoes the env":
		resp.SpecOpts = append(resp.SpecOpts, func(s *oci.Spec) error { s.Process.Env = nil; return nil })
	}
	return nil
}

func (m *memory) known(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.prepared[id] {
		return fmt.Errorf("container %s: %w", id, api.ErrNotFound)
	}
	return nil
}

func (m *memory) Isolate(_ context.Context, req *isolators.IsolateRequest) error {
	if m.fault == "isolate refuses" {
		return fmt.Errorf("container %s: %w", req.ContainerID, api.ErrInvalid)
	}
	return m.known(req.ContainerID)
}

func (m *memory) Started(_ context.Context, req *isolators.IsolateRequest) error {
	if m.fault == "started refuses" {
		return fmt.Errorf("container %s: %w", req.ContainerID, api.ErrInvalid)
	}
	return m.known(req.ContainerID)
}

func (m *memory) Watch(ctx context.Context, req *isolators.WatchRequest) (*isolators.Limitation, error) {
	if m.fault == "watch limits" {
		return &isolators.Limitation{Reason: api.ReasonLimit}, nil
	}
	if err := m.known(req.ContainerID); err != nil {
		return nil, err
	}
	<-ctx.Done()
	return nil, nil
}

func (m *memory) Update(_ context.Context, req *isolators.UpdateRequest) error {
	if m.fault == "update anything" {
		return nil
	}
	return m.known(req.ContainerID)
}

func (m *memory) Usage(_ context.Context, req *isolators.UsageRequest, _ *api.Usage) error {
	if m.fault == "usage of anything" {
		return nil
	}
	return m.known(req.ContainerID)
}

func (m *memory) Status(_ context.Context, req *isolators.StatusRequest, resp *isolators.StatusResponse) error {
	if m.fault == "status of anything" {
		resp.Networks = append(resp.Networks, api.NetworkStatus{Name: "made-up"})
	}
	return nil
}

func (m *memory) Cleanup(_ context.Context, req *isolators.CleanupRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.fault == "cleanup refuses unknown" && !m.prepared[req.ContainerID]:
		return fmt.Errorf("container %s: %w", req.ContainerID, api.ErrNotFound)
	case m.fault == "cleanup releases everything":
		clear(m.prepared)
	case m.fault == "cleanup keeps":
	default:
		delete(m.prepared, req.ContainerID)
	}
	return nil
}

func (m *memory) Recover(_ context.Context, req *isolators.RecoverRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fault == "recover refuses orphans" && len(req.Orphans) > 0 {
		return fmt.Errorf("orphans %v: %w", req.Orphans, api.ErrNotFound)
	}
	for _, id := range req.Orphans {
		delete(m.prepared, id)
	}
	if m.fault == "recover forgets the living" {
		clear(m.prepared)
	}
	return nil
}

func holds(_ *testing.T, iso isolators.Isolator, id string) bool {
	return iso.(*memory).known(id) == nil
}

func TestSuitePassesAConformingIsolator(t *testing.T) {
	Run(t, func(t *testing.T) isolators.Isolator { return newMemory("") }, Options{Holds: holds})
}

// recorder is a reporter that keeps what a check reports.
type recorder struct{ errors []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// Each check finds the fault it is there for: a suite whose checks pass
// anything would pass every isolator.
func TestChecksFindFaults(t *testing.T) {
	ctx := context.Background()
	o := Options{Holds: holds, Request: func(t *testing.T, id string) *isolators.PrepareRequest {
		return &isolators.PrepareRequest{ContainerID: id}
	}}
	unknown := map[string]unknownCheck{}
	for _, c := range unknownChecks {
		unknown[c.capability] = c
	}
	merges := func(ctx context.Context, t *testing.T, r reporter, iso isolators.Isolator, o Options) {
		var resp isolators.PrepareResponse
		if err := iso.(isolators.Preparer).Prepare(ctx, o.Request(t, preparedID), &resp); err != nil {
			t.Fatal(err)
		}
		checkMerges(r, iso.Name(), &resp)
	}
	for _, tc := range []struct {
		fault string
		check func(ctx context.Context, t *testing.T, r reporter, iso isolators.Isolator, o Options)
	}{
		{"relative mount", merges},
		{"spec opt undoes the env", merges},
		{"cleanup keeps", checkPrepareCleanup},
		{"cleanup releases everything", unknown["Preparer"].check},
		{"recover forgets the living", unknown["Preparer"].check},
		{"isolate refuses", unknown["PidIsolator"].check},
		{"started refuses", unknown["StartedIsolator"].check},
		{"watch limits", unknown["Watcher"].check},
		{"update anything", unknown["Updater"].check},
		{"usage of anything", unknown["UsageReporter"].check},
		{"status of anything", unknown["StatusReporter"].check},
		{"cleanup refuses unknown", unknown["Cleaner"].check},
		{"recover refuses orphans", unknown["Recoverer"].check},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			var clean recorder
			tc.check(ctx, t, &clean, newMemory(""), o)
			if len(clean.errors) > 0 {
				t.Fatalf("the check fails a conforming isolator: %q", clean.errors)
			}
			var r recorder
			tc.check(ctx, t, &r, newMemory(tc.fault), o)
			if len(r.errors) == 0 {
				t.Errorf("the check passes an isolator whose fault is %q", tc.fault)
			}
		})
	}
}

// Every capability of the contract has a check of its own.
func TestEveryCapabilityIsChecked(t *testing.T) {
	var got []string
	for _, c := range unknownChecks {
		if !c.has(newMemory("")) {
			t.Errorf("the check of %s does not apply to an isolator with every capability", c.capability)
		}
		got = append(got, c.capability)
	}
	want := []string{"Preparer", "PidIsolator", "StartedIsolator", "Watcher", "Updater", "UsageReporter", "StatusReporter", "Cleaner", "Recoverer"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("capabilities checked (-want +got):\n%s", diff)
	}
}
