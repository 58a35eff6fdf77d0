package isolatorstest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/isolators/isolatorstest"
)

// memory is a small, well-behaved isolator that keeps its state in memory:
// the suite's own example, and a check that the suite passes a correct one.
type memory struct {
	mu       sync.Mutex
	prepared map[string]bool
}

var (
	_ isolators.Preparer      = (*memory)(nil)
	_ isolators.Cleaner       = (*memory)(nil)
	_ isolators.UsageReporter = (*memory)(nil)
	_ isolators.Updater       = (*memory)(nil)
	_ isolators.Watcher       = (*memory)(nil)
	_ isolators.Recoverer     = (*memory)(nil)
)

func (m *memory) Name() string { return "test/memory" }

func (m *memory) Prepare(_ context.Context, req *isolators.PrepareRequest, resp *isolators.PrepareResponse) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.prepared[req.ContainerID] {
		return fmt.Errorf("container %s prepared twice: %w", req.ContainerID, api.ErrAlreadyExists)
	}
	m.prepared[req.ContainerID] = true
	resp.Env = append(resp.Env, "PREPARED_BY=test")
	return nil
}

func (m *memory) Cleanup(_ context.Context, req *isolators.CleanupRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.prepared, req.ContainerID)
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

func (m *memory) Usage(_ context.Context, req *isolators.UsageRequest, _ *api.Usage) error {
	return m.known(req.ContainerID)
}

func (m *memory) Update(_ context.Context, req *isolators.UpdateRequest) error {
	return m.known(req.ContainerID)
}

func (m *memory) Watch(ctx context.Context, req *isolators.WatchRequest) (*isolators.Limitation, error) {
	if err := m.known(req.ContainerID); err != nil {
		return nil, err
	}
	<-ctx.Done()
	return nil, nil
}

func (m *memory) Recover(_ context.Context, req *isolators.RecoverRequest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[string]bool{}
	for _, c := range req.Containers {
		keep[c.ID] = m.prepared[c.ID]
	}
	m.prepared = keep
	return nil
}

func TestSuitePassesAConformingIsolator(t *testing.T) {
	isolatorstest.Run(t, func(t *testing.T) isolators.Isolator {
		return &memory{prepared: map[string]bool{}}
	})
}
