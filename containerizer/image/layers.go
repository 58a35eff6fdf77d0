package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
)

// layerDir is where the layer with this diff ID is unpacked. The caller
// has checked the ID with validDiffID.
func (s *Store) layerDir(diffID v1.Hash) string {
	return filepath.Join(s.root, "layers", "sha256", diffID.Hex)
}

// validDiffID refuses diff IDs that are not sha256 digests: they come from
// the image's configuration and become directory names.
func validDiffID(diffID v1.Hash) error {
	if diffID.Algorithm != "sha256" || !isSHA256Hex(diffID.Hex) {
		return fmt.Errorf("layer diff ID %q is not a sha256 digest: %w", diffID.String(), api.ErrInvalid)
	}
	return nil
}

// layerCached reports whether the layer is unpacked in the cache.
func (s *Store) layerCached(diffID v1.Hash) bool {
	if validDiffID(diffID) != nil {
		return false
	}
	fi, err := os.Lstat(s.layerDir(diffID))
	return err == nil && fi.IsDir()
}

// ensureLayer unpacks the layer into the cache unless it is there already,
// and returns its directory. A lock file per layer makes concurrent
// provisioning of one layer, in this process or another, unpack it once:
// the loser of the race finds the directory in place when it gets the lock.
// The layer is unpacked into a temporary directory under the store's root
// and renamed into place, so a crash never leaves half a layer in the cache.
func (s *Store) ensureLayer(ctx context.Context, l layerSource) (string, error) {
	if err := validDiffID(l.diffID); err != nil {
		return "", err
	}
	dir := s.layerDir(l.diffID)
	if s.layerCached(l.diffID) {
		return dir, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(s.root, "locks", "layer-"+l.diffID.Hex+".lock"))
	if err != nil {
		return "", fmt.Errorf("lock layer %s: %w", l.diffID, err)
	}
	defer unlock()
	if s.layerCached(l.diffID) {
		return dir, nil
	}
	if l.open == nil {
		return "", fmt.Errorf("layer %s is not in the cache: %w", l.diffID, api.ErrNotFound)
	}

	// Temporary directories of this layer can only be left from a crash:
	// whoever unpacks it holds the lock.
	stale, _ := filepath.Glob(filepath.Join(s.root, "tmp", "layer-"+l.diffID.Hex+"-*"))
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			s.log.Warn("removing a partly unpacked layer", "dir", d, "error", err)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "layer-"+l.diffID.Hex+"-")
	if err != nil {
		return "", fmt.Errorf("unpack layer %s: %w", l.diffID, err)
	}
	if err := s.unpack(ctx, l, tmp); err != nil {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			s.log.Warn("removing a partly unpacked layer", "dir", tmp, "error", rerr)
		}
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another writer without the lock (an older Caisson, a hand copy)
		// may have won; its layer is as good as ours.
		if rerr := os.RemoveAll(tmp); rerr != nil {
			s.log.Warn("removing an unpacked layer", "dir", tmp, "error", rerr)
		}
		if s.layerCached(l.diffID) {
			return dir, nil
		}
		return "", fmt.Errorf("unpack layer %s: %w", l.diffID, err)
	}
	syncDir(filepath.Dir(dir))
	return dir, nil
}

func (s *Store) unpack(ctx context.Context, l layerSource, dir string) error {
	rc, err := l.open()
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.diffID, err)
	}
	defer rc.Close()
	s.log.Debug("unpacking layer", "layer", l.diffID.String())
	s.extractions.Add(1)
	if err := extractLayer(ctx, rc, dir, l.diffID, s.log); err != nil {
		return err
	}
	return nil
}

// syncDir makes a rename in dir durable; failures only cost durability.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	_ = d.Sync()
}

// emptyLayerDir is the lower directory of an image with no layers.
func (s *Store) emptyLayerDir() (string, error) {
	dir := filepath.Join(s.root, "layers", "empty")
	if err := mkdirMode(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("empty layer: %w", err)
	}
	return dir, nil
}
