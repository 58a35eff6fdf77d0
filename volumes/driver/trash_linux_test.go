package driver

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// TestTrashRace: a Remove empties the trash while another's removal, of a
// volume made since the first looked at the state, is being undone (its
// state save failed: a full disk): the trash entry of the volume being put
// back is not the first one's to delete, so the volume the state still
// lists keeps its data.
func TestTrashRace(t *testing.T) {
	testutil.RequiresRoot(t)
	d := newDriver(t, t.TempDir())
	mustCreate(t, d, "a", nil)
	var (
		mu                       sync.Mutex
		failSave                 bool
		aUnlocked, goOn, aAtLock = make(chan struct{}), make(chan struct{}), make(chan struct{})
		aFinished                = make(chan struct{})
		onceUnlocked, onceAtLock sync.Once
		aErr                     error
	)
	full := errors.New("no space left on device (injected)")
	d.testHook = func(step string) error {
		mu.Lock()
		fail := failSave
		mu.Unlock()
		switch {
		case step == "remove:unlocked":
			onceUnlocked.Do(func() { close(aUnlocked); <-goOn })
		case step == "trash:lock" && !fail:
			// A, about to decide what to delete: B is mid-removal.
			onceAtLock.Do(func() { close(aAtLock) })
		case step == "save" && fail:
			// B's save, its volume already in the trash: A empties the
			// trash now (or has done so), then the save fails.
			mu.Lock()
			failSave = false
			mu.Unlock()
			close(goOn)
			select {
			case <-aAtLock:
			case <-aFinished:
			}
			return full
		}
		return nil
	}
	go func() {
		defer close(aFinished)
		aErr = d.Remove(&volume.RemoveRequest{Name: "a"})
	}()
	<-aUnlocked
	// x is made after a's removal looked at the state.
	mp := mustCreate(t, d, "x", nil)
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("x's data"), 0o644); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	failSave = true
	mu.Unlock()
	if err := d.Remove(&volume.RemoveRequest{Name: "x"}); !errors.Is(err, full) {
		t.Errorf("Remove of x with its save failing = %v, want the save's error", err)
	}
	<-aFinished
	d.testHook = nil
	if aErr != nil {
		t.Errorf("Remove of a: %v", aErr)
	}
	if _, err := d.Get(&volume.GetRequest{Name: "x"}); err != nil {
		t.Errorf("x after its failed removal: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(b) != "x's data" {
		t.Errorf("x's data after its failed removal while a's removal emptied the trash: %q, %v", b, err)
	}
	checkGone(t, d, "a", false)
}

// TestTrashGenerations: a trash entry belongs to one volume, not to a name:
// a crash leaves a removed volume's data in the trash, a volume of the same
// name is created again (with a directory of its own, or, bind, with none
// yet), and the next start deletes the old data rather than keep it for
// ever or move it into the new volume.
func TestTrashGenerations(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, again := range []struct {
		name string
		opts func(t *testing.T) map[string]string
	}{
		{"dir", func(*testing.T) map[string]string { return nil }},
		{"bind", func(t *testing.T) map[string]string { return map[string]string{"type": "bind", "path": t.TempDir()} }},
	} {
		t.Run(again.name, func(t *testing.T) {
			root := t.TempDir()
			d := newDriver(t, root)
			mp := mustCreate(t, d, "x", nil)
			if err := os.WriteFile(filepath.Join(mp, "old"), []byte("the earlier x's"), 0o644); err != nil {
				t.Fatal(err)
			}
			mustUnmount(t, d, "x", "c1")
			crashInRemove(t, d, "x", true) // removed, the trash not emptied yet
			if err := d.Create(&volume.CreateRequest{Name: "x", Options: again.opts(t)}); err != nil {
				t.Fatal(err)
			}
			_ = d.Close()
			d = newDriver(t, root)
			if entries, _ := os.ReadDir(d.trashDir()); len(entries) != 0 {
				t.Errorf("trash after the restart: %v, want the earlier x's data deleted", entries)
			}
			mp = mustMount(t, d, "x", "c2")
			if _, err := os.Stat(filepath.Join(mp, "old")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the earlier x's data in the new x: %v", err)
			}
			if _, err := os.Stat(d.dataDir("x")); again.name == "bind" && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the earlier x's data dir in the new bind volume's dir: %v", err)
			}
			mustUnmount(t, d, "x", "c2")
			if err := d.Remove(&volume.RemoveRequest{Name: "x"}); err != nil {
				t.Fatal(err)
			}
			if err := unix.Rmdir(d.volDir("x")); err != nil && !errors.Is(err, unix.ENOENT) {
				t.Errorf("the new x's dir after its removal: %v", err)
			}
			if _, err := d.Get(&volume.GetRequest{Name: "x"}); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Get after Remove = %v", err)
			}
		})
	}
}
