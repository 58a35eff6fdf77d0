package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/caisson/caisson/api"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// formatVersion is the layout this build reads and writes (see doc.go).
// Change it, and teach Open to migrate, when the layout changes.
const formatVersion = 1

// DefaultLockTimeout is how long Open waits for another holder of the
// file when Options.LockTimeout is zero.
const DefaultLockTimeout = time.Second

var (
	bucketMeta     = []byte("meta")
	bucketSnapshot = []byte("snapshot")
	bucketLog      = []byte("log")
	keyVersion     = []byte("version")
)

// Options tune Open.
type Options struct {
	// NoSync skips the fsync after each write. A crash of the process
	// still loses nothing that was written; a crash of the machine can
	// lose the latest writes. For the simulator and benchmarks.
	NoSync bool
	// LockTimeout is how long Open waits while another process holds the
	// file before it gives up; zero means DefaultLockTimeout.
	LockTimeout time.Duration
}

// Bolt is the Store on one bbolt file.
type Bolt struct {
	db   *bolt.DB
	path string
}

var _ Store = (*Bolt)(nil)

// Open opens the store at path, creating the file if it does not exist.
// A file held by another process is an error wrapping api.ErrConflict; a
// file of another format or format version one wrapping api.ErrInvalid.
func Open(path string, opts Options) (*Bolt, error) {
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: opts.NoSync})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: another process holds it (waited %s): %w", path, timeout, api.ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(initialize); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Bolt{db: db, path: path}, nil
}

// initialize lays out a new file and checks the format of an existing one.
func initialize(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if k, _ := tx.Cursor().First(); k != nil {
			return fmt.Errorf("not a scheduler store: bucket %q without %q: %w", k, bucketMeta, api.ErrInvalid)
		}
		for _, name := range [][]byte{bucketMeta, bucketSnapshot, bucketLog} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %q: %w", name, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, encode(formatVersion))
	}
	v := meta.Get(keyVersion)
	if v == nil {
		return fmt.Errorf("no format version in bucket %q: %w", bucketMeta, api.ErrInvalid)
	}
	version, err := decode(v)
	if err != nil {
		return fmt.Errorf("format version %x: %w", v, api.ErrInvalid)
	}
	if version != formatVersion {
		return fmt.Errorf("format version %d, this build reads %d: %w", version, formatVersion, api.ErrInvalid)
	}
	for _, name := range [][]byte{bucketSnapshot, bucketLog} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("no bucket %q: %w", name, api.ErrInvalid)
		}
	}
	return nil
}

// state is where the store stands: its snapshot, if any, and its last
// log entry (0 when the log is empty).
type state struct {
	hasSnap bool
	snapSeq uint64
	lastLog uint64
}

// last is the sequence number of the newest event the store accounts for.
func (s state) last() uint64 { return max(s.snapSeq, s.lastLog) }

func readState(tx *bolt.Tx) (state, error) {
	var s state
	if k, _ := tx.Bucket(bucketSnapshot).Cursor().First(); k != nil {
		seq, err := decode(k)
		if err != nil {
			return s, fmt.Errorf("snapshot key: %w", err)
		}
		s.hasSnap, s.snapSeq = true, seq
	}
	if k, _ := tx.Bucket(bucketLog).Cursor().Last(); k != nil {
		seq, err := decode(k)
		if err != nil {
			return s, fmt.Errorf("log key: %w", err)
		}
		s.lastLog = seq
	}
	return s, nil
}

// Append implements Store.
func (b *Bolt) Append(seq uint64, event []byte) error {
	return b.AppendBatch(seq, [][]byte{event})
}

// AppendBatch implements Store.
func (b *Bolt) AppendBatch(first uint64, events [][]byte) error {
	if len(events) == 0 {
		return nil
	}
	err := b.db.Update(func(tx *bolt.Tx) error {
		s, err := readState(tx)
		if err != nil {
			return err
		}
		if err := checkAppend(first, s.last()); err != nil {
			return err
		}
		log := tx.Bucket(bucketLog)
		// Keys only ever grow: fill pages instead of splitting them in half.
		log.FillPercent = 0.9
		for i, ev := range events {
			if err := log.Put(encode(first+uint64(i)), ev); err != nil {
				return err
			}
		}
		return nil
	})
	return b.wrap(err, "%s", eventsText(first, len(events)))
}

// SaveSnapshot implements Store.
func (b *Bolt) SaveSnapshot(seq uint64, snapshot []byte) error {
	err := b.db.Update(func(tx *bolt.Tx) error {
		s, err := readState(tx)
		if err != nil {
			return err
		}
		if err := checkSnapshot(seq, s.snapSeq, s.hasSnap, s.last()); err != nil {
			return err
		}
		snaps := tx.Bucket(bucketSnapshot)
		if s.hasSnap {
			if err := snaps.Delete(encode(s.snapSeq)); err != nil {
				return err
			}
		}
		if err := snaps.Put(encode(seq), snapshot); err != nil {
			return err
		}
		return compact(tx, seq, s.lastLog)
	})
	return b.wrap(err, "save snapshot at %d", seq)
}

// compact drops the log entries up to seq.
func compact(tx *bolt.Tx, seq, lastLog uint64) error {
	if lastLog == 0 {
		return nil
	}
	if seq >= lastLog {
		// All of it: dropping the bucket frees its pages at once.
		if err := tx.DeleteBucket(bucketLog); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketLog)
		return err
	}
	upTo := encode(seq)
	c := tx.Bucket(bucketLog).Cursor()
	// Back to First after each Delete: a bbolt cursor may skip an entry
	// when Next follows Delete.
	for k, _ := c.First(); k != nil && bytes.Compare(k, upTo) <= 0; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Load implements Store.
func (b *Bolt) Load() (Loaded, error) {
	var l Loaded
	err := b.db.View(func(tx *bolt.Tx) error {
		if k, v := tx.Bucket(bucketSnapshot).Cursor().First(); k != nil {
			seq, err := decode(k)
			if err != nil {
				return fmt.Errorf("snapshot key: %w", err)
			}
			l.SnapshotSeq, l.Snapshot = seq, clone(v)
		}
		want := l.SnapshotSeq + 1
		return tx.Bucket(bucketLog).ForEach(func(k, v []byte) error {
			seq, err := decode(k)
			if err != nil {
				return fmt.Errorf("log key: %w", err)
			}
			if seq != want {
				return fmt.Errorf("log holds event %d where %d belongs", seq, want)
			}
			want++
			// bbolt's bytes live only as long as the transaction: copy.
			l.Events = append(l.Events, Record{Seq: seq, Data: clone(v)})
			return nil
		})
	})
	if err != nil {
		return Loaded{}, b.wrap(err, "load")
	}
	return l, nil
}

// Close implements Store.
func (b *Bolt) Close() error {
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", b.path, err)
	}
	return nil
}

// wrap puts err, if any, in the context of the operation, and says that a
// closed store is closed.
func (b *Bolt) wrap(err error, format string, args ...any) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen):
		err = errClosed
	case errors.Is(err, api.ErrConflict):
		// Already says what was asked (checkAppend, checkSnapshot).
		return err
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}

func encode(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decode(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("want 8 bytes, got %d", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
