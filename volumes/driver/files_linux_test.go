package driver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// TestOwnFilesUntrusted: the markers the plugin reads back from its root
// are read only if they are regular files of a bounded size, without
// following a symlink or blocking on a FIFO (see TestRootLeavesOthersAlone
// for the state file): a kept-data marker that is a FIFO, a symlink or a
// directory makes Create refuse (api.ErrInvalid); a trash entry whose
// marker is a FIFO or a symlink is emptied like any debris.
func TestOwnFilesUntrusted(t *testing.T) {
	for name, plant := range map[string]func(t *testing.T, path string){
		"FIFO": func(t *testing.T, path string) {
			if err := unix.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"symlink": func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "kept.json")
			if err := os.WriteFile(target, []byte(`{"name":"v","options":{"type":"dir"}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		},
		"directory": func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run("kept marker "+name, func(t *testing.T) {
			d := newDriverNoRoot(t, t.TempDir())
			if err := os.MkdirAll(d.volDir("v"), 0o700); err != nil {
				t.Fatal(err)
			}
			plant(t, d.keptMarker("v"))
			if err := d.Create(&volume.CreateRequest{Name: "v"}); !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Create over a kept marker that is a %s = %v, want api.ErrInvalid", name, err)
			}
		})
		if name == "directory" {
			continue
		}
		t.Run("trash marker "+name, func(t *testing.T) {
			root := t.TempDir()
			d := newDriverNoRoot(t, root)
			entry := filepath.Join(d.trashDir(), "v.1")
			if err := os.MkdirAll(entry, 0o700); err != nil {
				t.Fatal(err)
			}
			plant(t, filepath.Join(entry, removedMarker))
			_ = d.Close()
			newDriverNoRoot(t, root)
			if _, err := os.Lstat(entry); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a trash entry whose marker is a %s: %v, want it emptied", name, err)
			}
		})
	}
}
