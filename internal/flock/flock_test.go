package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

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
		{"directory", func(ctx context.Context, path string) (*Lock, error) { return AcquireDir(ctx, filepath.Dir(path)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "lock")
			target := p
			hold := func() *Lock {
				t.Helper()
				l, err := Acquire(p, false)
				if tc.name == "directory" {
					l, err = AcquireDir(context.Background(), dir)
				}
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			if tc.name == "directory" {
				target = dir
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
			// new waiter gets it once the holder lets go.
			go func() {
				l, err := tc.wait(context.Background(), p)
				l.Unlock()
				got <- err
			}()
			testutil.WaitForLockWaiter(t, os.Getpid(), target)
			holder.Unlock()
			select {
			case err := <-got:
				if err != nil {
					t.Fatalf("a wait once the holder let go = %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("a wait once the holder let go did not get the lock in a minute")
			}
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

// TestAcquireDir: a directory is locked without a file in it, and one its
// holder moved away or removed is not locked once it is gone.
func TestAcquireDir(t *testing.T) {
	parent := t.TempDir()
	for _, tc := range []struct {
		name string
		// change is what the holder does to dir before letting go.
		change func(t *testing.T, dir string)
	}{
		{"moved", func(t *testing.T, dir string) { must(t, os.Rename(dir, dir+".moved")) }},
		{"removed", func(t *testing.T, dir string) { must(t, os.Remove(dir)) }},
		{"replaced", func(t *testing.T, dir string) {
			must(t, os.Rename(dir, dir+".old"))
			must(t, os.Mkdir(dir, 0o700))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(parent, tc.name)
			must(t, os.Mkdir(dir, 0o700))
			held, err := AcquireDir(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("locking made %v in the directory", entries)
			}
			got := make(chan error, 1)
			go func() {
				l, err := AcquireDir(context.Background(), dir)
				l.Unlock()
				got <- err
			}()
			testutil.WaitForLockWaiter(t, os.Getpid(), dir)
			tc.change(t, dir)
			held.Unlock()
			if err := <-got; !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the waiter for a directory %s meanwhile = %v, want fs.ErrNotExist", tc.name, err)
			}
		})
	}
	if _, err := AcquireDir(context.Background(), filepath.Join(parent, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("AcquireDir of a missing directory = %v, want fs.ErrNotExist", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
