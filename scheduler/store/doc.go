// Package store persists the scheduler core. The core is a deterministic
// state machine (package scheduler), so its state is fully described by a
// snapshot taken at some sequence number plus the events that came after
// it. A Store keeps exactly that: the latest snapshot, and the log of
// events whose sequence numbers follow the snapshot's. Both are opaque
// bytes here (scheduler.MarshalEvent and the core's snapshot encode them);
// this package knows nothing of what they mean.
//
// Sequence numbers start at 1 and have no gaps: the first event of an
// empty store is 1, the first after a snapshot at S is S+1, and every
// Append must be the previous sequence number plus one (a gap or a repeat
// is an error wrapping api.ErrConflict). SaveSnapshot(S) replaces the
// snapshot and drops the events up to S in the same write (compaction):
//
//	seq      1   2   3   4   5   6   7   8
//	Append  [1] [2] [3] [4] [5] [6]
//	SaveSnapshot(5)                          snapshot@5  log: [6]
//	Append                          [7] [8]  snapshot@5  log: [6] [7] [8]
//
// Restore after a restart or a crash:
//
//	loaded, err := st.Load()       // latest snapshot and the events after it
//	core := restore(loaded.Snapshot) // or a fresh core when Snapshot is nil
//	for _, r := range loaded.Events {
//		ev, err := scheduler.UnmarshalEvent(r.Data)
//		core.Step(ev)               // replay; the decisions were already acted on
//	}
//	next := loaded.Next()          // the sequence number of the next Append
//
// AppendBatch writes many events in one write, for a server that commits
// a group of events at once: what one sync costs is shared by the group.
//
// Bolt, from Open, is the default: one go.etcd.io/bbolt file with three
// buckets, all keys big-endian uint64 so that byte order is numeric order.
//
//	meta      "version" → format version (1); checked on Open
//	snapshot  seq → snapshot bytes (at most one entry)
//	log       seq → event bytes (seq > the snapshot's, contiguous)
//
// Every Append, AppendBatch and SaveSnapshot is one bbolt transaction, fsynced unless
// Options.NoSync is set; an event that Append returned nil for survives a
// crash of the process (and, with sync, of the machine). The file is
// locked while open: a second process that opens it gets an error wrapping
// api.ErrConflict after Options.LockTimeout instead of waiting forever.
//
// Memory, from NewMemory, has the same semantics without a file, for tests
// and the simulator. Both are safe for concurrent use; the caller still
// decides the order of Appends.
package store
