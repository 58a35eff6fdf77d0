//go:build linux

package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/caisson/caisson/internal/testutil"
)

// These tests act on a waiter once /proc/locks shows it waiting.

// TestAcquireContext: a wait for a lock that someone else holds ends as
// soon as the waiter's context is done, holding nothing; and a waiter
// gets the lock as soon as its holder lets go.
func TestAcquireContext(t *testing.T) {
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
