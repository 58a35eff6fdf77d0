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
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/internal/atomicfile"
)

// indexVersion is the version of images.json this code writes.
const indexVersion = 1

// imageIndex is images.json: what was pulled from registries, so that an
// image can be provisioned again without asking the registry.
type imageIndex struct {
	Version int `json:"version"`
	// Images maps a canonical reference, then a platform (os/arch[/variant]),
	// to what it resolved to.
	Images map[string]map[string]indexEntry `json:"images"`
}

// indexEntry is one pulled image.
type indexEntry struct {
	Manifest string `json:"manifest"` // manifest digest
	Config   string `json:"config"`   // config digest
	// RawConfig is the config blob as pulled; its diff IDs name the layers
	// in the cache.
	RawConfig []byte `json:"rawConfig"`
}

func (s *Store) indexPath() string { return filepath.Join(s.root, "images.json") }

// readIndex reads images.json; a missing file is an empty index.
func (s *Store) readIndex() (*imageIndex, error) {
	idx := &imageIndex{Version: indexVersion, Images: map[string]map[string]indexEntry{}}
	data, err := os.ReadFile(s.indexPath())
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

// record adds a pulled image to images.json, under a lock so that
// concurrent processes do not lose each other's entries.
func (s *Store) record(ctx context.Context, src *source) error {
	unlock, err := lockFile(ctx, filepath.Join(s.root, "locks", "images.lock"))
	if err != nil {
		return fmt.Errorf("lock image index: %w", err)
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	// Under the reference asked for and under the manifest's digest, so
	// that REPO@DIGEST finds the image without asking the registry.
	keys := []string{src.ref.String()}
	if src.ref.named != nil {
		keys = append(keys, src.ref.named.Context().Digest(src.manifest.String()).Name())
	}
	for _, key := range keys {
		if idx.Images[key] == nil {
			idx.Images[key] = map[string]indexEntry{}
		}
		idx.Images[key][platformString(&src.platform)] = indexEntry{
			Manifest:  src.manifest.String(),
			Config:    src.configID.String(),
			RawConfig: src.rawConfig,
		}
	}
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("encode image index: %w", err)
	}
	return atomicfile.Write(s.indexPath(), data, 0o600, true)
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
	if err != nil {
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
