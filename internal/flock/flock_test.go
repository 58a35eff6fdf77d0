package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAcquire(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l, err := Acquire(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(p, false); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("second Acquire = %v, want EWOULDBLOCK", err)
	}
	if _, err := AcquireExisting(p, false); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("AcquireExisting of a held lock = %v, want EWOULDBLOCK", err)
	}
	l.Unlock()
	l.Unlock() // safe twice
	l, err = AcquireExisting(p, false)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
}

// TestAcquireExisting: a missing lock file is not made, and a lock file its
// holder unlinked (removing what it guards) is not taken over.
func TestAcquireExisting(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	if _, err := AcquireExisting(missing, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("AcquireExisting of a missing file = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("AcquireExisting made the file: %v", err)
	}
	// A waiter that opened the file before its holder removed it gets a
	// lock on the unlinked file: that lock guards nothing any more, also
	// once a new file is at the path.
	p := filepath.Join(dir, "lock")
	l, err := Acquire(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if !l.linkedAt(p) {
		t.Fatal("a fresh lock is not linked at its path")
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if l.linkedAt(p) {
		t.Error("a removed lock file counts as linked")
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if l.linkedAt(p) {
		t.Error("a lock file replaced by another counts as linked")
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := AcquireExisting(p, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("AcquireExisting after removal = %v, want fs.ErrNotExist", err)
	}
}

// TestAcquireShared: shared holders do not wait for each other, and an
// exclusive one waits for them all.
func TestAcquireShared(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := AcquireSharedContext(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Unlock()
	b, err := AcquireSharedContext(context.Background(), p)
	if err != nil {
		t.Fatalf("a second shared lock = %v", err)
	}
	if _, err := Acquire(p, false); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("an exclusive lock beside shared ones = %v, want EWOULDBLOCK", err)
	}
	b.Unlock()
	a.Unlock()
	l, err := Acquire(p, false)
	if err != nil {
		t.Fatalf("an exclusive lock once the shared ones are gone = %v", err)
	}
	l.Unlock()
}
