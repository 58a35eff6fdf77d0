package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/volumes"
)

// nameOf returns a valid volume name of n bytes, starting with first.
func nameOf(n int, first string) string { return first + strings.Repeat("x", n-1) }

// TestNameLengths: every name Create accepts, up to the longest, can be
// mounted and removed, with every backend (a removed volume's trash entry
// once took the name plus a suffix, too long from 236 bytes on).
func TestNameLengths(t *testing.T) {
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "mkfs.xfs")
	d := newDriver(t, t.TempDir())
	bindDir := t.TempDir()
	for i, b := range []struct {
		name string
		opts map[string]string
	}{
		{"dir", nil},
		{"dirkept", map[string]string{"keep": "true"}},
		{"loop", map[string]string{"type": "loop", "size": "4m"}},
		{"loopxfs", map[string]string{"type": "loop", "fs": "xfs", "size": "300m"}},
		{"tmpfs", map[string]string{"type": "tmpfs"}},
		{"bind", map[string]string{"type": "bind", "path": bindDir}},
	} {
		for _, n := range []int{1, trashPrefix, trashPrefix + 1, 235, 236, 254, volumes.MaxNameLen} {
			t.Run(fmt.Sprintf("%s/%d", b.name, n), func(t *testing.T) {
				name := nameOf(n, string(rune('a'+i)))
				mp := mustCreate(t, d, name, b.opts)
				if err := os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
				mustUnmount(t, d, name, "c1")
				if err := d.Remove(&volume.RemoveRequest{Name: name}); err != nil {
					t.Fatalf("Remove of a %d-byte name: %v", n, err)
				}
				kept := b.opts["keep"] == "true"
				checkGone(t, d, name, kept)
				if kept {
					if err := d.deleteTree(d.volDir(name)); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	}
	if err := d.Create(&volume.CreateRequest{Name: nameOf(volumes.MaxNameLen+1, "n")}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Create of a %d-byte name = %v, want api.ErrInvalid", volumes.MaxNameLen+1, err)
	}
}

// FuzzRemovableName: a name Create accepts is one a volume can be created,
// mounted and removed with, leaving nothing behind.
func FuzzRemovableName(f *testing.F) {
	for _, s := range []string{"a", "v.1", nameOf(235, "n"), nameOf(236, "n"), nameOf(volumes.MaxNameLen, "n"), "..", "a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		// A driver of its own for each input: what one input leaves
		// behind is blamed on it, not on the next.
		d, err := New(Config{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		empty := func(after string) {
			t.Helper()
			for _, dir := range []string{filepath.Join(d.root, "volumes"), d.trashDir()} {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Fatalf("after %s, %s holds %v", after, dir, entries)
				}
			}
		}
		if err := d.Create(&volume.CreateRequest{Name: name}); err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("Create(%q) = %v, want success or api.ErrInvalid", name, err)
			}
			empty(fmt.Sprintf("the refused Create(%q)", name)) // a refused name leaves nothing either
			return
		}
		if _, err := d.Mount(&volume.MountRequest{Name: name, ID: "c"}); err != nil {
			t.Fatalf("Mount(%q): %v", name, err)
		}
		if err := d.Unmount(&volume.UnmountRequest{Name: name, ID: "c"}); err != nil {
			t.Fatalf("Unmount(%q): %v", name, err)
		}
		if err := d.Remove(&volume.RemoveRequest{Name: name}); err != nil {
			t.Fatalf("Remove(%q): %v", name, err)
		}
		empty(fmt.Sprintf("Remove(%q)", name))
	})
}
