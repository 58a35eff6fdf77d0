package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler/store"
	"github.com/google/go-cmp/cmp"
)

// impl makes a fresh store of one implementation. reopen, when the
// implementation persists, opens again what the last store of this
// harness wrote (after the caller closed it).
type impl struct {
	name string
	open func(t *testing.T) (s store.Store, reopen func(t *testing.T) store.Store)
}

var impls = []impl{
	{"memory", func(t *testing.T) (store.Store, func(*testing.T) store.Store) {
		s := store.NewMemory()
		t.Cleanup(func() { _ = s.Close() })
		return s, nil
	}},
	{"bolt", func(t *testing.T) (store.Store, func(*testing.T) store.Store) {
		path := filepath.Join(t.TempDir(), "scheduler.db")
		open := func(t *testing.T) store.Store {
			t.Helper()
			s, err := store.Open(path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		return open(t), open
	}},
}

// TestConformance runs every behaviour of the Store contract against every
// implementation.
func TestConformance(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) {
					s, reopen := im.open(t)
					c.run(t, s, reopen)
				})
			}
		})
	}
}

var conformance = []struct {
	name string
	run  func(t *testing.T, s store.Store, reopen func(*testing.T) store.Store)
}{
	{"empty", testEmpty},
	{"append and load in order", testAppendLoad},
	{"gaps and repeats rejected", testSeqRejected},
	{"batch append", testAppendBatch},
	{"batch gaps and repeats rejected", testBatchRejected},
	{"snapshot compacts the log", testSnapshotCompaction},
	{"snapshot sequence rules", testSnapshotRules},
	{"empty values", testEmptyValues},
	{"big values", testBigValues},
	{"bytes are copies", testCopies},
	{"reopen", testReopen},
	{"close is idempotent", testCloseIdempotent},
	{"use after close", testUseAfterClose},
	{"concurrent loads see a prefix", testConcurrentLoads},
}

func event(seq uint64) []byte { return fmt.Appendf(nil, `{"tick":{"seq":%d}}`, seq) }

func records(from, to uint64) []store.Record {
	var rs []store.Record
	for seq := from; seq <= to; seq++ {
		rs = append(rs, store.Record{Seq: seq, Data: event(seq)})
	}
	return rs
}

func appendRange(t *testing.T, s store.Store, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		if err := s.Append(seq, event(seq)); err != nil {
			t.Fatal(err)
		}
	}
}

func load(t *testing.T, s store.Store) store.Loaded {
	t.Helper()
	l, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func checkLoad(t *testing.T, s store.Store, want store.Loaded) {
	t.Helper()
	if diff := cmp.Diff(want, load(t, s)); diff != "" {
		t.Errorf("Load() (-want +got):\n%s", diff)
	}
}

func testEmpty(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	l := load(t, s)
	if diff := cmp.Diff(store.Loaded{}, l); diff != "" {
		t.Errorf("Load() of an empty store (-want +got):\n%s", diff)
	}
	if got := l.Next(); got != 1 {
		t.Errorf("Next() = %d, want 1", got)
	}
}

func testAppendLoad(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	appendRange(t, s, 1, 300) // more than one bbolt page of keys
	want := store.Loaded{Events: records(1, 300)}
	checkLoad(t, s, want)
	if got := want.Next(); got != 301 {
		t.Errorf("Next() = %d, want 301", got)
	}
	// Compaction of part of a log that spans many pages.
	if err := s.SaveSnapshot(150, []byte("state@150")); err != nil {
		t.Fatal(err)
	}
	checkLoad(t, s, store.Loaded{SnapshotSeq: 150, Snapshot: []byte("state@150"), Events: records(151, 300)})
}

func testSeqRejected(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	for _, seq := range []uint64{0, 2, 100} {
		if err := s.Append(seq, event(seq)); !errors.Is(err, api.ErrConflict) {
			t.Errorf("Append(%d) to an empty store: error %v, want one wrapping api.ErrConflict", seq, err)
		}
	}
	appendRange(t, s, 1, 3)
	for _, seq := range []uint64{0, 1, 3, 5, ^uint64(0)} {
		if err := s.Append(seq, []byte("bad")); !errors.Is(err, api.ErrConflict) {
			t.Errorf("Append(%d) after 3: error %v, want one wrapping api.ErrConflict", seq, err)
		}
	}
	checkLoad(t, s, store.Loaded{Events: records(1, 3)})
}

func batch(from, to uint64) [][]byte {
	var evs [][]byte
	for seq := from; seq <= to; seq++ {
		evs = append(evs, event(seq))
	}
	return evs
}

func testAppendBatch(t *testing.T, s store.Store, reopen func(*testing.T) store.Store) {
	// An empty batch writes nothing, wherever it says it starts.
	for _, first := range []uint64{0, 1, 7} {
		if err := s.AppendBatch(first, nil); err != nil {
			t.Errorf("AppendBatch(%d, nil): %v", first, err)
		}
	}
	checkLoad(t, s, store.Loaded{})
	if err := s.AppendBatch(1, batch(1, 1)); err != nil {
		t.Fatal(err)
	}
	// Batches and single appends follow each other; a batch spans many
	// bbolt pages.
	appendRange(t, s, 2, 2)
	if err := s.AppendBatch(3, batch(3, 400)); err != nil {
		t.Fatal(err)
	}
	appendRange(t, s, 401, 401)
	checkLoad(t, s, store.Loaded{Events: records(1, 401)})
	// After a snapshot at S, a batch starts at S+1.
	if err := s.SaveSnapshot(401, []byte("state@401")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendBatch(402, batch(402, 410)); err != nil {
		t.Fatal(err)
	}
	// The store keeps copies, not the caller's buffers.
	evs := [][]byte{event(411), event(412)}
	if err := s.AppendBatch(411, evs); err != nil {
		t.Fatal(err)
	}
	clear(evs[0])
	clear(evs[1])
	want := store.Loaded{SnapshotSeq: 401, Snapshot: []byte("state@401"), Events: records(402, 412)}
	checkLoad(t, s, want)
	if reopen == nil {
		return
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkLoad(t, reopen(t), want)
}

func testBatchRejected(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	if err := s.AppendBatch(2, batch(2, 3)); !errors.Is(err, api.ErrConflict) {
		t.Errorf("AppendBatch(2, ...) to an empty store: error %v, want one wrapping api.ErrConflict", err)
	}
	if err := s.AppendBatch(1, batch(1, 3)); err != nil {
		t.Fatal(err)
	}
	// A batch that repeats or skips is refused whole: none of its events
	// is written, the next sequence number stays.
	for _, first := range []uint64{0, 1, 3, 5} {
		if err := s.AppendBatch(first, batch(first, first+2)); !errors.Is(err, api.ErrConflict) {
			t.Errorf("AppendBatch(%d, 3 events) after 3: error %v, want one wrapping api.ErrConflict", first, err)
		}
	}
	checkLoad(t, s, store.Loaded{Events: records(1, 3)})
	appendRange(t, s, 4, 4)
	checkLoad(t, s, store.Loaded{Events: records(1, 4)})
}

func testSnapshotCompaction(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	appendRange(t, s, 1, 5)
	if err := s.SaveSnapshot(3, []byte("state@3")); err != nil {
		t.Fatal(err)
	}
	checkLoad(t, s, store.Loaded{SnapshotSeq: 3, Snapshot: []byte("state@3"), Events: records(4, 5)})

	appendRange(t, s, 6, 6)
	if err := s.SaveSnapshot(6, []byte("state@6")); err != nil {
		t.Fatal(err)
	}
	want := store.Loaded{SnapshotSeq: 6, Snapshot: []byte("state@6")}
	checkLoad(t, s, want)
	if got := want.Next(); got != 7 {
		t.Errorf("Next() = %d, want 7", got)
	}

	// The first append after a snapshot at S is S+1, and only that.
	for _, seq := range []uint64{5, 6, 8} {
		if err := s.Append(seq, event(seq)); !errors.Is(err, api.ErrConflict) {
			t.Errorf("Append(%d) after a snapshot at 6: error %v, want one wrapping api.ErrConflict", seq, err)
		}
	}
	appendRange(t, s, 7, 8)
	checkLoad(t, s, store.Loaded{SnapshotSeq: 6, Snapshot: []byte("state@6"), Events: records(7, 8)})
}

func testSnapshotRules(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	// A snapshot of the initial state, before any event.
	if err := s.SaveSnapshot(0, []byte("initial")); err != nil {
		t.Fatal(err)
	}
	checkLoad(t, s, store.Loaded{Snapshot: []byte("initial")})
	if err := s.SaveSnapshot(1, []byte("ahead")); !errors.Is(err, api.ErrConflict) {
		t.Errorf("SaveSnapshot(1) with no events: error %v, want one wrapping api.ErrConflict", err)
	}

	appendRange(t, s, 1, 4)
	if err := s.SaveSnapshot(2, []byte("state@2")); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{0, 1, 5, 100} {
		if err := s.SaveSnapshot(seq, []byte("bad")); !errors.Is(err, api.ErrConflict) {
			t.Errorf("SaveSnapshot(%d) with a snapshot at 2 and events to 4: error %v, want one wrapping api.ErrConflict", seq, err)
		}
	}
	checkLoad(t, s, store.Loaded{SnapshotSeq: 2, Snapshot: []byte("state@2"), Events: records(3, 4)})

	// Saving again at the same sequence number replaces the snapshot.
	if err := s.SaveSnapshot(2, []byte("state@2 again")); err != nil {
		t.Fatal(err)
	}
	checkLoad(t, s, store.Loaded{SnapshotSeq: 2, Snapshot: []byte("state@2 again"), Events: records(3, 4)})
}

func testEmptyValues(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	if err := s.Append(1, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(2, []byte{}); err != nil {
		t.Fatal(err)
	}
	checkLoad(t, s, store.Loaded{Events: []store.Record{{Seq: 1, Data: []byte{}}, {Seq: 2, Data: []byte{}}}})
	if err := s.SaveSnapshot(1, nil); err != nil {
		t.Fatal(err)
	}
	// An empty snapshot is still a snapshot: non-nil.
	checkLoad(t, s, store.Loaded{SnapshotSeq: 1, Snapshot: []byte{}, Events: []store.Record{{Seq: 2, Data: []byte{}}}})
}

func testBigValues(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	big := func(seed byte) []byte {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = seed + byte(i*7)
		}
		return b
	}
	if err := s.Append(1, big(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(2, big(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSnapshot(1, big(3)); err != nil {
		t.Fatal(err)
	}
	l := load(t, s)
	if l.SnapshotSeq != 1 || !bytes.Equal(l.Snapshot, big(3)) {
		t.Errorf("Load() snapshot at %d of %d bytes, want the 1 MiB snapshot at 1", l.SnapshotSeq, len(l.Snapshot))
	}
	if len(l.Events) != 1 || l.Events[0].Seq != 2 || !bytes.Equal(l.Events[0].Data, big(2)) {
		t.Errorf("Load() events: %d, want the 1 MiB event 2 alone", len(l.Events))
	}
}

func testCopies(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	// Values over a kilobyte, so that bbolt keeps them in their own pages
	// of its memory map rather than in an inline bucket it may copy.
	evText, snapText := bytes.Repeat([]byte("event "), 500), bytes.Repeat([]byte("state "), 500)
	ev, snap := bytes.Clone(evText), bytes.Clone(snapText)
	if err := s.Append(1, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveSnapshot(1, snap); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(2, ev); err != nil {
		t.Fatal(err)
	}
	// The store must not keep the caller's slices...
	clear(ev)
	clear(snap)
	want := store.Loaded{SnapshotSeq: 1, Snapshot: snapText, Events: []store.Record{{Seq: 2, Data: evText}}}
	got := load(t, s)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Load() after the caller reused its buffers (-want +got):\n%s", diff)
	}
	// ...nor hand out its own: what Load returned is the caller's to change,
	got.Snapshot[0], got.Events[0].Data[0] = 'X', 'X'
	checkLoad(t, s, want)
	// and it outlives the store (bbolt's memory does not).
	got = load(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load() result after Close (-want +got):\n%s", diff)
	}
}

func testReopen(t *testing.T, s store.Store, reopen func(*testing.T) store.Store) {
	if reopen == nil {
		t.Skip("this implementation does not persist")
	}
	appendRange(t, s, 1, 10)
	if err := s.SaveSnapshot(7, []byte("state@7")); err != nil {
		t.Fatal(err)
	}
	appendRange(t, s, 11, 12)
	want := load(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = reopen(t)
	checkLoad(t, s, want)
	// Sequence numbers go on where they stopped.
	if err := s.Append(14, event(14)); !errors.Is(err, api.ErrConflict) {
		t.Errorf("Append(14) after reopen at 12: error %v, want one wrapping api.ErrConflict", err)
	}
	appendRange(t, s, 13, 13)
	if err := s.SaveSnapshot(12, []byte("state@12")); err != nil {
		t.Fatal(err)
	}
	want = store.Loaded{SnapshotSeq: 12, Snapshot: []byte("state@12"), Events: records(13, 13)}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkLoad(t, reopen(t), want)
}

func testCloseIdempotent(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	appendRange(t, s, 1, 1)
	for i := range 3 {
		if err := s.Close(); err != nil {
			t.Errorf("Close() #%d: %v", i+1, err)
		}
	}
}

func testUseAfterClose(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	appendRange(t, s, 1, 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(3, event(3)); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("Append after Close: error %v, want one wrapping api.ErrUnavailable", err)
	}
	if err := s.SaveSnapshot(2, []byte("state@2")); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("SaveSnapshot after Close: error %v, want one wrapping api.ErrUnavailable", err)
	}
	if err := s.AppendBatch(3, [][]byte{event(3), event(4)}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("AppendBatch after Close: error %v, want one wrapping api.ErrUnavailable", err)
	}
	if _, err := s.Load(); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("Load after Close: error %v, want one wrapping api.ErrUnavailable", err)
	}
}

// testConcurrentLoads has readers load while a writer appends and takes
// snapshots: every Load must see a consistent store (events contiguous
// after the snapshot, the snapshot the one saved at its sequence number).
func testConcurrentLoads(t *testing.T, s store.Store, _ func(*testing.T) store.Store) {
	const last = 60
	done := make(chan struct{})
	errs := make(chan error, 1)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				l, err := s.Load()
				if err != nil {
					report(err)
					return
				}
				if l.Snapshot != nil && !bytes.Equal(l.Snapshot, fmt.Appendf(nil, "state@%d", l.SnapshotSeq)) {
					report(fmt.Errorf("snapshot at %d is %q", l.SnapshotSeq, l.Snapshot))
					return
				}
				if diff := cmp.Diff(records(l.SnapshotSeq+1, l.Next()-1), l.Events); diff != "" {
					report(fmt.Errorf("events after the snapshot at %d (-want +got):\n%s", l.SnapshotSeq, diff))
					return
				}
			}
		})
	}
	for seq := uint64(1); seq <= last; seq++ {
		if err := s.Append(seq, event(seq)); err != nil {
			t.Error(err)
			break
		}
		if seq%10 == 0 {
			if err := s.SaveSnapshot(seq-3, fmt.Appendf(nil, "state@%d", seq-3)); err != nil {
				t.Error(err)
				break
			}
		}
	}
	close(done)
	wg.Wait()
	select {
	case err := <-errs:
		t.Error(err)
	default:
	}
	checkLoad(t, s, store.Loaded{SnapshotSeq: last - 3, Snapshot: fmt.Appendf(nil, "state@%d", last-3), Events: records(last-2, last)})
}
