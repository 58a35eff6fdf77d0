package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/safefile"
)

// indexVersion is the version of images.json this code writes.
const indexVersion = 1

// imageIndex is images.json: every image provisioned, by reference. A
// registry image's entry lets it be provisioned again without asking the
// registry; every entry is what image ls shows, and keeps the image's
// layers from image prune.
type imageIndex struct {
	Version int `json:"version"`
	// Images maps a canonical reference, then a platform (os/arch[/variant]),
	// to what it resolved to.
	Images map[string]map[string]indexEntry `json:"images"`
}

// indexEntry is one image. Manifest is empty for a `docker save`
// archive's, which has no manifest digest.
type indexEntry struct {
	Manifest string `json:"manifest"` // manifest digest
	Config   string `json:"config"`   // config digest
	// RawConfig is the config blob as pulled; its diff IDs name the layers
	// in the cache.
	RawConfig []byte `json:"rawConfig"`
}

func (s *Store) indexPath() string { return filepath.Join(s.root, "images.json") }

// maxIndexFile bounds images.json: some thousands of images.
const maxIndexFile = 256 << 20

// readIndex reads images.json; a missing file is an empty index.
func (s *Store) readIndex() (*imageIndex, error) {
	idx := &imageIndex{Version: indexVersion, Images: map[string]map[string]indexEntry{}}
	data, err := safefile.ReadFile(s.indexPath(), maxIndexFile)
	if errors.Is(err, fs.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	if err := json.Unmarshal(data, idx); err != nil {
		return nil, fmt.Errorf("read image index %s: %w", s.indexPath(), err)
	}
	if idx.Version != indexVersion {
		return nil, fmt.Errorf("image index %s has version %d, not %d", s.indexPath(), idx.Version, indexVersion)
	}
	if idx.Images == nil {
		idx.Images = map[string]map[string]indexEntry{}
	}
	return idx, nil
}

// record adds an image to images.json, under a lock so that concurrent
// processes do not lose each other's entries.
func (s *Store) record(ctx context.Context, src *source) error {
	return s.updateIndex(ctx, func(idx *imageIndex) error {
		addEntry(idx, src)
		return nil
	})
}

// updateIndex applies change to images.json under its lock, and writes it
// back when change succeeds.
func (s *Store) updateIndex(ctx context.Context, change func(*imageIndex) error) error {
	unlock, err := lockFile(ctx, filepath.Join(s.root, "locks", "images.lock"), true)
	if err != nil {
		return fmt.Errorf("lock image index: %w", err)
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	if err := change(idx); err != nil {
		return err
	}
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("encode image index: %w", err)
	}
	return atomicfile.Write(s.indexPath(), data, 0o600, true)
}

// addEntry records src under its reference and, for a registry image,
// under REPO@DIGEST too, so that a digest reference finds it without
// asking the registry.
func addEntry(idx *imageIndex, src *source) {
	keys := []string{src.ref.String()}
	if src.ref.named != nil && !src.ref.isRegistryDigest() {
		keys = append(keys, src.ref.named.Context().Digest(src.manifest.String()).Name())
	}
	manifest := ""
	if src.manifest != (v1.Hash{}) {
		manifest = src.manifest.String()
	}
	for _, key := range keys {
		if idx.Images[key] == nil {
			idx.Images[key] = map[string]indexEntry{}
		}
		idx.Images[key][platformString(&src.platform)] = indexEntry{
			Manifest:  manifest,
			Config:    src.configID.String(),
			RawConfig: src.rawConfig,
		}
	}
}

// cachedSource returns the image recorded for ref and platform, when its
// record is intact and every layer is in the cache; nil otherwise.
func (s *Store) cachedSource(ref reference, want v1.Platform) *source {
	idx, err := s.readIndex()
	if err != nil {
		s.log.Warn("ignoring the image index", "error", err)
		return nil
	}
	e, ok := idx.Images[ref.String()][platformString(&want)]
	if !ok {
		return nil
	}
	sum := sha256.Sum256(e.RawConfig)
	if e.Config != "sha256:"+hex.EncodeToString(sum[:]) {
		s.log.Warn("ignoring a corrupt image index entry", "image", ref.String())
		return nil
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(e.RawConfig))
	if err != nil || validDiffIDs(cfg) != nil {
		return nil
	}
	configID, err := v1.NewHash(e.Config)
	if err != nil {
		return nil
	}
	manifest, err := v1.NewHash(e.Manifest)
	if err != nil {
		return nil
	}
	src := &source{
		ref:       ref,
		platform:  want,
		manifest:  manifest,
		configID:  configID,
		rawConfig: e.RawConfig,
		config:    cfg,
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if !s.layerCached(d) {
			return nil
		}
		src.layers = append(src.layers, layerSource{diffID: d})
	}
	return src
}

// validDiffIDs checks every diff ID of a config recorded in images.json.
func validDiffIDs(cfg *v1.ConfigFile) error {
	for _, d := range cfg.RootFS.DiffIDs {
		if err := validDiffID(d); err != nil {
			return err
		}
	}
	return nil
}
