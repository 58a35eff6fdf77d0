package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/internal/testutil"
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

// TestAcquireContext: a wait for a lock that someone else holds ends as
// soon as the waiter's context is done, holding nothing; and a waiter
// gets the lock as soon as its holder lets go.
func TestAcquireContext(t *testing.T) {
	testutil.RequiresLinux(t)
	for _, tc := range []struct {
		name string
		wait func(ctx context.Context, path string) (*Lock, error)
	}{
		{"exclusive", AcquireContext},
		{"shared", AcquireSharedContext},
		{"existing", AcquireExistingContext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "lock")
			target := p
			hold := func() *Lock {
				t.Helper()
				l, err := Acquire(p, false)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			holder := hold()
			t.Cleanup(holder.Unlock)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan error, 1)
			go func() {
				l, err := tc.wait(ctx, p)
				l.Unlock()
				got <- err
			}()
			testutil.WaitForLockWaiter(t, os.Getpid(), target)
			cancel()
			if err := <-got; !errors.Is(err, context.Canceled) {
				t.Fatalf("a wait cancelled while the lock is held = %v, want context.Canceled", err)
			}
			if _, err := tc.wait(ctx, p); !errors.Is(err, context.Canceled) {
				t.Fatalf("a wait with a done context = %v, want context.Canceled", err)
			}

			// The abandoned waiter lets go of the lock once it gets it: a
			// new waiter gets it as soon as the holder lets go.
			go func() {
				l, err := tc.wait(context.Background(), p)
				l.Unlock()
				got <- err
			}()
			testutil.WaitForLockWaiter(t, os.Getpid(), target)
			holder.Unlock()
			if err := <-got; err != nil {
				t.Fatalf("a wait once the holder let go = %v", err)
			}
			again := hold()
			again.Unlock()
		})
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
