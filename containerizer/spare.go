package containerizer

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/caisson/caisson/internal/atomicfile"
)

// Each container keeps two spare files that hold room for the checkpoints
// recording its end, made at its reservation and grown with its checkpoint
// (by its launch and by an update) to twice the checkpoint's size, and at
// least 64 KiB. When the state dir's filesystem is full, the monitor
// recording the exit (or recovery recording a lost container) writes the
// checkpoint over a spare's own blocks, cuts it to size and renames it
// over container.json: that needs no free space, and frees none first for
// another writer (another container's writable layer) to take before the
// checkpoint is written. There are two because an end takes up to two
// checkpoints: the termination, then the cleanup done. Nothing else uses
// them: a kill proceeds without its checkpoint, and an update is refused,
// so the room is there when the container ends.

const minSpareSize = 64 << 10

func (c *Containerizer) sparePaths(id string) []string {
	dir := c.containerDir(id)
	return []string{filepath.Join(dir, "spare"), filepath.Join(dir, "spare.2")}
}

// spareSize is the size of each spare file for a checkpoint of n bytes: a
// final checkpoint only adds the termination to it.
func spareSize(n int) int64 { return max(minSpareSize, 2*int64(n)) }

// ensureSpares makes each spare file of container id large enough for a
// checkpoint of n bytes, creating or growing it. Something other than a
// regular file in a spare's place is replaced.
func (c *Containerizer) ensureSpares(id string, n int) error {
	for _, p := range c.sparePaths(id) {
		if err := growSpare(p, spareSize(n)); err != nil {
			return fmt.Errorf("reserve room for the checkpoints of container %s: %w", id, err)
		}
	}
	return nil
}

// growSpare makes the file at path at least size bytes long, with data a
// compressing filesystem cannot shrink.
func growSpare(path string, size int64) error {
	st, err := os.Lstat(path)
	switch {
	case err == nil && st.Mode().IsRegular() && st.Size() >= size:
		return nil
	case err == nil && !st.Mode().IsRegular():
		if err := os.Remove(path); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	f, err := openSpare(path, os.O_CREATE)
	if err != nil {
		return err
	}
	st, err = f.Stat()
	if err == nil && st.Size() < size {
		b := make([]byte, size-st.Size())
		_, _ = rand.Read(b)
		_, err = f.WriteAt(b, st.Size())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// openSpare opens a spare file for writing, never through a link, and
// only if it is a regular file (opening a FIFO for writing could block).
func openSpare(path string, flags int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|flags|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("spare %s is not a regular file: %w", path, fs.ErrInvalid)
	}
	return f, nil
}

// saveFinalRecord saves a checkpoint that records a container's end,
// using a spare file's room when the filesystem is full.
func (c *Containerizer) saveFinalRecord(r *record) error {
	err := c.saveRecord(r)
	if !noSpace(err) {
		return err
	}
	data, derr := encodeCheckpoint(r)
	if derr != nil {
		return derr
	}
	for _, p := range c.sparePaths(r.ID) {
		if c.writeOverSpare(p, r.ID, data) == nil {
			c.log.Warn("the state dir is full: the container's checkpoint took the room of one of its spare files", "container", r.ID)
			return nil
		}
	}
	// A copy-on-write filesystem needs free blocks even to overwrite: free
	// a spare's, and write anew.
	for _, p := range c.sparePaths(r.ID) {
		if os.Remove(p) == nil {
			if err = c.saveRecord(r); !noSpace(err) {
				return err
			}
		}
	}
	return err
}

// writeOverSpare writes data, a checkpoint of container id, over the spare
// file at path, which must be large enough, cuts it to size and renames it
// over the checkpoint: no block is allocated, and none freed before the
// checkpoint is in place.
func (c *Containerizer) writeOverSpare(path, id string, data []byte) error {
	f, err := openSpare(path, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil && st.Size() < int64(len(data)) {
		err = fmt.Errorf("spare %s: %d bytes, too small for a checkpoint of %d", path, st.Size(), len(data))
	}
	if err == nil {
		_, err = f.WriteAt(data, 0)
	}
	if err == nil {
		err = f.Truncate(int64(len(data)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(path, c.recordPath(id)); err != nil {
		return err
	}
	_ = atomicfile.SyncDir(c.containerDir(id)) // in place; only its durability is uncertain
	return nil
}
