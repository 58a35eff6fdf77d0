package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func openBolt(t *testing.T, path string, opts Options) *Bolt {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestBoltLocked: a second opener of a held file gets an error, not a
// wait without end; once the holder closes, the file opens.
func TestBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scheduler.db")
	first := openBolt(t, path, Options{})
	if err := first.Append(1, []byte("one")); err != nil {
		t.Fatal(err)
	}

	// flock(2) locks belong to the open file, so a second Open in this
	// process contends like another process would.
	if s, err := Open(path, Options{LockTimeout: time.Millisecond}); !errors.Is(err, api.ErrConflict) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open of a held store: error %v, want one wrapping api.ErrConflict", err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := openBolt(t, path, Options{LockTimeout: time.Millisecond})
	l, err := second.Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Loaded{Events: []Record{{Seq: 1, Data: []byte("one")}}}, l); diff != "" {
		t.Errorf("Load() after the holder closed (-want +got):\n%s", diff)
	}
}

// TestBoltFormat: Open refuses files it cannot read, and leaves them be.
func TestBoltFormat(t *testing.T) {
	tests := []struct {
		name string
		// prepare writes the file at path.
		prepare func(t *testing.T, path string)
		want    error // nil: any error
	}{
		{
			name:    "unknown version",
			prepare: editBolt(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, encode(formatVersion+1)) }),
			want:    api.ErrInvalid,
		},
		{
			name:    "version of the wrong size",
			prepare: editBolt(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte{1}) }),
			want:    api.ErrInvalid,
		},
		{
			name:    "no version",
			prepare: editBolt(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyVersion) }),
			want:    api.ErrInvalid,
		},
		{
			name:    "no log bucket",
			prepare: editBolt(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketLog) }),
			want:    api.ErrInvalid,
		},
		{
			name: "another program's bbolt file",
			prepare: func(t *testing.T, path string) {
				db, err := bolt.Open(path, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err }); err != nil {
					t.Fatal(err)
				}
			},
			want: api.ErrInvalid,
		},
		{
			name: "not a bbolt file",
			prepare: func(t *testing.T, path string) {
				data := make([]byte, 16<<10)
				for i := range data {
					data[i] = byte(i * 31)
				}
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scheduler.db")
			tt.prepare(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Open(path, Options{})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Open: error %v, want one wrapping %v", err, tt.want)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(before) != len(after) {
				t.Errorf("Open changed the size of a file it refused: %d bytes, then %d", len(before), len(after))
			}
		})
	}
}

// editBolt makes a store at path, then changes it with edit behind the
// store's back.
func editBolt(edit func(tx *bolt.Tx) error) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Append(1, []byte("one")); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Update(edit); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBoltCorruptLog: a log that does not follow on from the snapshot is
// reported by Load, not replayed with a hole.
func TestBoltCorruptLog(t *testing.T) {
	tests := []struct {
		name string
		edit func(tx *bolt.Tx) error
	}{
		{"gap", func(tx *bolt.Tx) error { return tx.Bucket(bucketLog).Delete(encode(2)) }},
		{"event the snapshot holds", func(tx *bolt.Tx) error { return tx.Bucket(bucketLog).Put(encode(1), []byte("one")) }},
		{"short key", func(tx *bolt.Tx) error { return tx.Bucket(bucketLog).Put([]byte{9}, []byte("nine")) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openBolt(t, filepath.Join(t.TempDir(), "scheduler.db"), Options{NoSync: true})
			for seq := uint64(1); seq <= 3; seq++ {
				if err := s.Append(seq, []byte("event")); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.SaveSnapshot(1, []byte("state@1")); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Update(tt.edit); err != nil {
				t.Fatal(err)
			}
			if l, err := s.Load(); err == nil {
				t.Errorf("Load() of a corrupt store = %+v, want an error", l)
			}
		})
	}
}

// The crash helper's environment: the store's path, whether to skip
// fsync, and what to write.
const (
	crashEnvPath   = "CAISSON_STORE_CRASH_PATH"
	crashEnvNoSync = "CAISSON_STORE_CRASH_NOSYNC"
	crashEvents    = 50 // events appended
	crashSnapshot  = 20 // sequence number of the snapshot taken among them
	crashExitCode  = 42 // the helper exits with it, without Close, after its last write
)

// TestBoltCrash: everything a process wrote is there after it dies
// without closing the store.
func TestBoltCrash(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := Loaded{SnapshotSeq: crashSnapshot, Snapshot: crashState(crashSnapshot)}
	for seq := uint64(crashSnapshot + 1); seq <= crashEvents; seq++ {
		want.Events = append(want.Events, Record{Seq: seq, Data: crashEvent(seq)})
	}
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("nosync=%t", noSync), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "scheduler.db")
			cmd := exec.Command(exe, "-test.run=^TestBoltCrashHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvNoSync+"="+strconv.FormatBool(noSync))
			out, err := cmd.CombinedOutput()
			if errors.Is(err, syscall.ENOEXEC) {
				t.Skipf("this machine cannot run the test binary as a child (as under qemu-user without binfmt_misc): %v", err)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != crashExitCode {
				t.Fatalf("crash helper: %v, want exit status %d\n%s", err, crashExitCode, out)
			}

			s := openBolt(t, path, Options{})
			l, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, l); diff != "" {
				t.Errorf("Load() after the writer died (-want +got):\n%s", diff)
			}
			if err := s.Append(crashEvents+1, crashEvent(crashEvents+1)); err != nil {
				t.Errorf("Append after the writer died: %v", err)
			}
		})
	}
}

// TestBoltCrashHelper is TestBoltCrash's child: it writes to the store
// and exits without closing it. Run alone, it does nothing.
func TestBoltCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnvPath)
	if path == "" {
		return
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	noSync, err := strconv.ParseBool(os.Getenv(crashEnvNoSync))
	if err != nil {
		fail(err)
	}
	s, err := Open(path, Options{NoSync: noSync})
	if err != nil {
		fail(err)
	}
	for seq := uint64(1); seq <= crashEvents; seq++ {
		if err := s.Append(seq, crashEvent(seq)); err != nil {
			fail(err)
		}
		if seq == crashSnapshot {
			if err := s.SaveSnapshot(seq, crashState(seq)); err != nil {
				fail(err)
			}
		}
	}
	os.Exit(crashExitCode) // no Close, no deferred calls: a crash
}

func crashEvent(seq uint64) []byte { return fmt.Appendf(nil, "event %d", seq) }
func crashState(seq uint64) []byte { return fmt.Appendf(nil, "state@%d", seq) }
