package store

import (
	"fmt"
	"sync"
)

// Memory is a Store in memory, with Bolt's semantics and no persistence:
// for tests.
type Memory struct {
	mu       sync.Mutex
	closed   bool
	hasSnap  bool
	snapSeq  uint64
	snapshot []byte
	// events[i] has sequence number snapSeq+1+i.
	events []Record
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{} }

func (m *Memory) last() uint64 { return m.snapSeq + uint64(len(m.events)) }

// Append implements Store.
func (m *Memory) Append(seq uint64, event []byte) error {
	return m.AppendBatch(seq, [][]byte{event})
}

// AppendBatch implements Store.
func (m *Memory) AppendBatch(first uint64, events [][]byte) error {
	if len(events) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("%s: %w", eventsText(first, len(events)), errClosed)
	}
	if err := checkAppend(first, m.last()); err != nil {
		return err
	}
	for i, ev := range events {
		m.events = append(m.events, Record{Seq: first + uint64(i), Data: clone(ev)})
	}
	return nil
}

// SaveSnapshot implements Store.
func (m *Memory) SaveSnapshot(seq uint64, snapshot []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("save snapshot at %d: %w", seq, errClosed)
	}
	if err := checkSnapshot(seq, m.snapSeq, m.hasSnap, m.last()); err != nil {
		return err
	}
	// A fresh slice, so that the dropped events' memory can be freed.
	var kept []Record
	if rest := m.events[seq-m.snapSeq:]; len(rest) > 0 {
		kept = append(kept, rest...)
	}
	m.hasSnap, m.snapSeq, m.snapshot, m.events = true, seq, clone(snapshot), kept
	return nil
}

// Load implements Store.
func (m *Memory) Load() (Loaded, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Loaded{}, fmt.Errorf("load: %w", errClosed)
	}
	var l Loaded
	if m.hasSnap {
		l.SnapshotSeq, l.Snapshot = m.snapSeq, clone(m.snapshot)
	}
	if len(m.events) > 0 {
		l.Events = make([]Record, len(m.events))
		for i, r := range m.events {
			l.Events[i] = Record{Seq: r.Seq, Data: clone(r.Data)}
		}
	}
	return l, nil
}

// Close implements Store. It drops the contents.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed, m.snapshot, m.events = true, nil, nil
	return nil
}
