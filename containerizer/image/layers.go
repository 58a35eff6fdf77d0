package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/safefile"
)

// maxZstdWindow bounds the memory a zstd layer may ask for: 128 MiB, the
// window of `zstd --long`.
const maxZstdWindow = 128 << 20

// layerDir is where the layer with this diff ID is unpacked. The caller
// has checked the ID with validDiffID.
func (s *Store) layerDir(diffID v1.Hash) string {
	return filepath.Join(s.root, "layers", "sha256", diffID.Hex)
}

// layerMetaPath is the file that records a cached layer's size.
func (s *Store) layerMetaPath(diffID v1.Hash) string {
	return filepath.Join(s.root, "layers", "meta", diffID.Hex+".json")
}

// layerMeta is what the cache records about an unpacked layer.
type layerMeta struct {
	// Size is the layer's uncompressed size (see extractLayer).
	Size int64 `json:"size"`
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

// layerSize returns a cached layer's size. A layer unpacked by an older
// Caisson has no record: it is measured once and recorded.
func (s *Store) layerSize(diffID v1.Hash) (int64, error) {
	data, err := safefile.ReadFile(s.layerMetaPath(diffID), 4096)
	if err == nil {
		var m layerMeta
		if err := json.Unmarshal(data, &m); err == nil && m.Size >= 0 {
			return m.Size, nil
		}
	}
	size, err := measureTree(s.layerDir(diffID))
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := s.writeLayerMeta(diffID, size); err != nil {
		s.log.Warn("recording a layer's size", "layer", diffID.String(), "error", err)
	}
	return size, nil
}

func (s *Store) writeLayerMeta(diffID v1.Hash, size int64) error {
	data, err := json.Marshal(layerMeta{Size: size})
	if err != nil {
		return err
	}
	return atomicfile.Write(s.layerMetaPath(diffID), data, 0o600, false)
}

// measureTree sizes an unpacked layer as extractLayer counts: a 512-byte
// header per entry, and each regular file's apparent size rounded up to
// 512 bytes.
func measureTree(dir string) (int64, error) {
	var size int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		size += tarBlock
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size += roundBlock(fi.Size())
		}
		return nil
	})
	return size, err
}

// ensureLayer unpacks the layer into the cache unless it is there already,
// and returns its directory and size. budget is what the image may still
// take (negative: no limit); a layer that needs more is refused, with an
// error wrapping api.ErrTooLarge, before it is unpacked further.
//
// A lock file per layer makes concurrent provisioning of one layer, in this
// process or another, unpack it once: the loser of the race finds the
// directory in place when it gets the lock. The layer is unpacked into a
// temporary directory under the store's root and renamed into place, so a
// crash never leaves half a layer in the cache, and a layer that fails its
// checks leaves nothing.
func (s *Store) ensureLayer(ctx context.Context, l layerSource, budget int64) (string, int64, error) {
	if err := validDiffID(l.diffID); err != nil {
		return "", 0, err
	}
	dir := s.layerDir(l.diffID)
	if s.layerCached(l.diffID) {
		size, err := s.layerSize(l.diffID)
		return dir, size, err
	}
	unlock, err := lockFile(ctx, s.layerLockPath(l.diffID), true)
	if err != nil {
		return "", 0, fmt.Errorf("lock layer %s: %w", l.diffID, err)
	}
	defer unlock()
	if s.layerCached(l.diffID) {
		size, err := s.layerSize(l.diffID)
		return dir, size, err
	}
	if l.open == nil {
		return "", 0, fmt.Errorf("layer %s is not in the cache: %w", l.diffID, api.ErrNotFound)
	}

	// Temporary directories of this layer can only be left from a crash:
	// whoever unpacks it holds the lock.
	s.removeStaleTmp(l.diffID)
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "layer-"+l.diffID.Hex+"-")
	if err != nil {
		return "", 0, fmt.Errorf("unpack layer %s: %w", l.diffID, err)
	}
	size, err := s.unpack(ctx, l, tmp, budget)
	if err == nil {
		err = s.writeLayerMeta(l.diffID, size)
	}
	if err != nil {
		if rerr := os.RemoveAll(tmp); rerr != nil {
			s.log.Warn("removing a partly unpacked layer", "dir", tmp, "error", rerr)
		}
		return "", 0, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another writer without the lock (an older Caisson, a hand copy)
		// may have won; its layer is as good as ours.
		if rerr := os.RemoveAll(tmp); rerr != nil {
			s.log.Warn("removing an unpacked layer", "dir", tmp, "error", rerr)
		}
		if s.layerCached(l.diffID) {
			return dir, size, nil
		}
		return "", 0, fmt.Errorf("unpack layer %s: %w", l.diffID, err)
	}
	_ = atomicfile.SyncDir(filepath.Dir(dir)) // failures only cost durability
	return dir, size, nil
}

func (s *Store) layerLockPath(diffID v1.Hash) string {
	return filepath.Join(s.root, "locks", "layer-"+diffID.Hex+".lock")
}

// removeStaleTmp removes what a crash left of unpacking a layer. The
// caller holds the layer's lock.
func (s *Store) removeStaleTmp(diffID v1.Hash) {
	stale, _ := filepath.Glob(filepath.Join(s.root, "tmp", "layer-"+diffID.Hex+"-*"))
	for _, d := range stale {
		if err := os.RemoveAll(d); err != nil {
			s.log.Warn("removing a partly unpacked layer", "dir", d, "error", err)
		}
	}
}

// unpack reads the layer blob, checks it against its descriptor (when it
// has one), decompresses it and unpacks it into dir, checking its diff ID.
// When unpacking fails, the rest of the blob is read to tell a corrupt blob
// (api.ErrCorrupt) from a well-formed but refused one.
func (s *Store) unpack(ctx context.Context, l layerSource, dir string, budget int64) (int64, error) {
	rc, err := l.open(ctx)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", l.diffID, err)
	}
	defer rc.Close()
	var (
		r io.Reader = rc
		v *verifier
	)
	if l.desc.Digest != (v1.Hash{}) {
		if v, err = newVerifier(rc, l.desc, "layer blob"); err != nil {
			return 0, fmt.Errorf("layer %s: %w", l.diffID, err)
		}
		r = v
	}
	s.log.Debug("unpacking layer", "layer", l.diffID.String())
	s.extractions.Add(1)
	if s.unpackHook != nil {
		if err := s.unpackHook(l.diffID); err != nil {
			return 0, err
		}
	}
	size, err := s.decompressAndExtract(ctx, r, dir, l.diffID, budget)
	if v == nil || errors.Is(err, api.ErrTooLarge) || ctx.Err() != nil {
		return size, err
	}
	// A well-formed layer was read to its end, and its blob with it.
	if verr := v.drain(); verr != nil {
		return 0, fmt.Errorf("layer %s: %w", l.diffID, verr)
	}
	return size, err
}

func (s *Store) decompressAndExtract(ctx context.Context, r io.Reader, dir string, diffID v1.Hash, budget int64) (int64, error) {
	ur, closeFn, err := decompress(r)
	if err != nil {
		return 0, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer closeFn()
	return extractLayer(ctx, ur, dir, diffID, budget, s.log)
}

// decompress returns the uncompressed stream of a layer blob, which is a
// tar compressed with gzip or zstd, or not compressed: the first bytes
// tell, whatever the media type says. A stream that does not decompress is
// corrupt.
func decompress(r io.Reader) (io.Reader, func(), error) {
	src := &errRecorder{r: r}
	br := bufio.NewReader(src)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, src.classify(fmt.Errorf("gzip: %w", err))
		}
		return decompressErrors{zr, src}, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, nil, src.classify(fmt.Errorf("zstd: %w", err))
		}
		return decompressErrors{zr, src}, zr.Close, nil
	default:
		return br, func() {}, nil
	}
}

// errRecorder remembers the error of the stream below a decompressor.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

// classify returns the stream's own error when it failed, and otherwise
// marks err, the decompressor's, as corruption: the data did not
// decompress.
func (e *errRecorder) classify(err error) error {
	if e.err != nil {
		return e.err
	}
	return fmt.Errorf("%w: %w", err, api.ErrCorrupt)
}

// decompressErrors marks a decompressor's format errors as corruption.
type decompressErrors struct {
	r   io.Reader
	src *errRecorder
}

func (d decompressErrors) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = d.src.classify(fmt.Errorf("decompress: %w", err))
	}
	return n, err
}

// emptyLayerDir is the lower directory of an image with no layers.
func (s *Store) emptyLayerDir() (string, error) {
	dir := filepath.Join(s.root, "layers", "empty")
	if err := mkdirMode(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("empty layer: %w", err)
	}
	return dir, nil
}
