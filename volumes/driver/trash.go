package driver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/internal/loopdev"
	"github.com/caisson/caisson/internal/mountinfo"
	"github.com/caisson/caisson/internal/safefile"
)

// trashDir holds the data of removed volumes until it is deleted, so a
// crash never leaves a removed volume's data where a new volume of the same
// name would find it.
func (d *Driver) trashDir() string { return filepath.Join(d.root, "trash") }

// trashPrefix is how much of a volume's name its trash entry keeps: the
// entry's name must stay one path component whatever the name's length.
const trashPrefix = 64

// trashName names the try-th trash entry for a volume: the start of its
// name, for people, and a time that sets it apart.
func trashName(name string, nanos int64, try int) string {
	if len(name) > trashPrefix {
		name = name[:trashPrefix]
	}
	n := name + "." + strconv.FormatInt(nanos, 10)
	if try > 0 {
		n += "." + strconv.Itoa(try)
	}
	return n
}

// removedMarker, in a trash entry, holds the name and generation of the
// volume whose directory it was: a crash between the move to the trash and
// the save of the state leaves a volume the state still lists, whose
// directory the next start moves back (restoreTrash). The generation tells
// that volume from a later one of its name.
const removedMarker = "removed"

// trashMarker is what a removed marker holds; the markers of earlier
// versions hold the name alone, and match a record without a generation.
type trashMarker struct {
	Name       string `json:"name"`
	Generation string `json:"generation,omitempty"`
}

// deletingPrefix starts the name of a trash entry that a pass of emptyTrash
// decided to delete: nothing moves it back.
const deletingPrefix = ".deleting-"

// readMarker reads a trash entry's removed marker.
func readMarker(entry string) (trashMarker, error) {
	b, err := safefile.ReadFileNoFollow(filepath.Join(entry, removedMarker), 1<<10)
	if err != nil {
		return trashMarker{}, err
	}
	if !bytes.HasPrefix(b, []byte("{")) { // a name alone (names start with a letter or digit)
		return trashMarker{Name: string(b)}, nil
	}
	var m trashMarker
	if err := json.Unmarshal(b, &m); err != nil {
		return trashMarker{}, fmt.Errorf("marker of trash entry %s: %w", filepath.Base(entry), err)
	}
	return m, nil
}

// listed reports whether the state lists the very volume whose directory a
// trash entry with marker m was: the same name and generation. The caller
// holds d.mu (or has the driver to itself, at start).
func (d *Driver) listed(m trashMarker) bool {
	v, ok := d.st.Volumes[m.Name]
	return ok && v.Generation == m.Generation
}

// toTrash moves a volume's directory into the trash and returns where it
// went ("" when the volume had none), never over another entry.
func (d *Driver) toTrash(v *record) (string, error) {
	if _, err := os.Lstat(d.volDir(v.Name)); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err := os.MkdirAll(d.trashDir(), 0o700); err != nil {
		return "", err
	}
	data, err := json.Marshal(trashMarker{Name: v.Name, Generation: v.Generation})
	if err != nil {
		return "", err
	}
	marker := filepath.Join(d.volDir(v.Name), removedMarker)
	if err := os.WriteFile(marker, data, 0o600); err != nil {
		return "", err
	}
	nanos := d.now().UnixNano()
	for try := 0; ; try++ {
		dst := filepath.Join(d.trashDir(), trashName(v.Name, nanos, try))
		err := renameNoReplace(d.volDir(v.Name), dst)
		if errors.Is(err, unix.EEXIST) && try < 100 {
			continue
		}
		if err != nil {
			_ = os.Remove(marker)
			return "", fmt.Errorf("move %s to the trash: %w", d.volDir(v.Name), err)
		}
		return dst, nil
	}
}

// fromTrash puts back a volume's directory that toTrash moved to trash.
func (d *Driver) fromTrash(name, trash string) error {
	if err := renameNoReplace(trash, d.volDir(name)); err != nil {
		return fmt.Errorf("move %s back from the trash: %w", d.volDir(name), err)
	}
	return os.Remove(filepath.Join(d.volDir(name), removedMarker))
}

// restoreTrash moves back, at start, the directories of volumes that the
// state still lists, the same generation: their removal was cut short by a
// crash before the state was saved. The data of an earlier volume of the
// name stays in the trash, to be deleted.
func (d *Driver) restoreTrash() {
	entries, _ := os.ReadDir(d.trashDir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), deletingPrefix) {
			continue
		}
		dir := filepath.Join(d.trashDir(), e.Name())
		m, err := readMarker(dir)
		if err != nil || !d.listed(m) {
			continue
		}
		if _, err := os.Lstat(d.volDir(m.Name)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := d.fromTrash(m.Name, dir); err != nil {
			d.log.Error("a crash cut short the removal of a volume; its data stays in the trash", "volume", m.Name, "dir", e.Name(), "err", err)
			continue
		}
		d.log.Warn("a crash cut short the removal of a volume: its data is back", "volume", m.Name)
	}
}

// emptyTrash deletes removed volumes' data, except what something still
// uses (see deleteTree): those entries stay, for a later pass. Which
// entries go is decided under d.mu against the state (see doomTrash); the
// deletion, which takes a while for a big volume, runs outside it.
func (d *Driver) emptyTrash() {
	d.at("trash:lock")
	for _, dir := range d.doomTrash() {
		err := d.deleteTree(dir)
		if err != nil {
			d.log.Warn("a removed volume's data stays in the trash", "dir", filepath.Base(dir), "err", err)
		}
		d.mu.Lock()
		delete(d.deleting, dir)
		d.mu.Unlock()
	}
}

// doomTrash picks, under d.mu, the trash entries to delete and renames each
// to a name that nothing moves back: every entry but those whose marker
// names a volume the state lists, the same generation (a removal being
// undone, or cut short by a crash: restoreTrash moves those back), and
// those another pass is deleting now.
func (d *Driver) doomTrash() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	entries, _ := os.ReadDir(d.trashDir())
	var doomed []string
	for _, e := range entries {
		dir := filepath.Join(d.trashDir(), e.Name())
		if d.deleting[dir] {
			continue
		}
		if !strings.HasPrefix(e.Name(), deletingPrefix) {
			if m, err := readMarker(dir); err == nil && d.listed(m) {
				continue
			}
			to := filepath.Join(d.trashDir(), deletingPrefix+e.Name())
			if err := renameNoReplace(dir, to); err != nil {
				d.log.Warn("a removed volume's data stays in the trash", "dir", e.Name(), "err", err)
				continue
			}
			dir = to
		}
		d.deleting[dir] = true
		doomed = append(doomed, dir)
	}
	return doomed
}

// deleteTree deletes a volume's directory (in the trash or not), unless
// something still uses what is in it: something mounted below it in the
// plugin's namespace (a delete would cross into it), a loop device attached
// to its image, a mount of anything inside it in any mount namespace.
func (d *Driver) deleteTree(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if mps, err := mountinfo.Under(dir); err != nil {
		return err
	} else if len(mps) > 0 {
		return inUse(dir, []string{"mounted at " + mps[0]})
	}
	ms, err := mountinfo.Read(0)
	if err != nil {
		return err
	}
	t, err := d.dirTarget(ms, dir)
	if err != nil {
		return err
	}
	loops, err := loopdev.FindBound(filepath.Join(dir, "disk.img"))
	if err != nil {
		return err
	}
	if len(loops) > 0 {
		return inUse(dir, []string{"its image is still attached to " + loops[0].Path})
	}
	uses, err := d.uses(t, true)
	if err != nil {
		return fmt.Errorf("cannot tell whether %s is in use: %w", dir, err)
	}
	if len(uses) > 0 {
		return inUse(dir, uses)
	}
	return os.RemoveAll(dir)
}

// removeMntDir removes the empty directories a bind volume was mounted on:
// rmdir only, which never deletes what a mount there shows.
func (d *Driver) removeMntDir(v *record) {
	for _, dir := range []string{d.mntDir(v.Name), d.volDir(v.Name)} {
		if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
			d.log.Warn("leaving a bind volume's directory", "dir", dir, "err", err)
			return
		}
	}
}
