package store

import (
	"fmt"

	"github.com/caisson/caisson/api"
)

// Store keeps the scheduler core's latest snapshot and the events after it.
type Store interface {
	// Append adds the event with sequence number seq to the log. seq must
	// be the last event's plus one (the snapshot's plus one right after a
	// snapshot, 1 in an empty store); anything else is an error wrapping
	// api.ErrConflict and changes nothing. The event is copied.
	Append(seq uint64, event []byte) error
	// AppendBatch adds events with sequence numbers first, first+1, ...
	// in one write (one transaction and one sync for Bolt): all of them
	// or, on error, none. first follows Append's rule; an empty batch
	// writes nothing and returns nil. The events are copied.
	AppendBatch(first uint64, events [][]byte) error
	// SaveSnapshot replaces the snapshot with one taken after the event seq
	// and, in the same write, drops the events up to seq. seq must lie
	// between the current snapshot's and the last event's (both included);
	// anything else is an error wrapping api.ErrConflict. The snapshot is
	// copied.
	SaveSnapshot(seq uint64, snapshot []byte) error
	// Load returns the latest snapshot and the events after it, in order.
	// The bytes are the caller's own.
	Load() (Loaded, error)
	// Close releases the store. It is idempotent; any other method called
	// after it returns an error wrapping api.ErrUnavailable.
	Close() error
}

// Loaded is what Load returns.
type Loaded struct {
	// SnapshotSeq is the sequence number of the last event the snapshot
	// includes; 0 when there is no snapshot.
	SnapshotSeq uint64
	// Snapshot is nil when no snapshot was saved, non-nil otherwise (even
	// when empty).
	Snapshot []byte
	// Events are the events after the snapshot, by sequence number with no
	// gaps, starting at SnapshotSeq+1; nil when there are none.
	Events []Record
}

// Next returns the sequence number the next Append must use.
func (l Loaded) Next() uint64 {
	if n := len(l.Events); n > 0 {
		return l.Events[n-1].Seq + 1
	}
	return l.SnapshotSeq + 1
}

// Record is one logged event.
type Record struct {
	Seq uint64
	// Data is the event as appended; never nil.
	Data []byte
}

// errClosed is returned, wrapped in the operation's context, by a store
// used after Close.
var errClosed = fmt.Errorf("store is closed: %w", api.ErrUnavailable)

// checkAppend says why seq cannot be appended to a store whose last event
// (or snapshot, when the log is empty) is last.
func checkAppend(seq, last uint64) error {
	if seq != last+1 {
		return fmt.Errorf("append at %d: the next sequence number is %d: %w", seq, last+1, api.ErrConflict)
	}
	return nil
}

// eventsText names an append of n events from first, for errors.
func eventsText(first uint64, n int) string {
	if n == 1 {
		return fmt.Sprintf("append event %d", first)
	}
	return fmt.Sprintf("append events %d to %d", first, first+uint64(n)-1)
}

// checkSnapshot says why a snapshot at seq cannot be saved in a store with
// a snapshot at snap (if has) and events up to last.
func checkSnapshot(seq, snap uint64, has bool, last uint64) error {
	switch {
	case has && seq < snap:
		return fmt.Errorf("save snapshot at %d: behind the snapshot at %d: %w", seq, snap, api.ErrConflict)
	case seq > last:
		return fmt.Errorf("save snapshot at %d: ahead of the last event %d: %w", seq, last, api.ErrConflict)
	}
	return nil
}

// clone copies b into a non-nil slice.
func clone(b []byte) []byte { return append([]byte{}, b...) }
