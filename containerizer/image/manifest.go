package image

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/caisson/caisson/api"
)

// The manifests, indexes and configurations of an image are untrusted
// JSON. These parsers refuse what the rest of the code must not meet: a
// descriptor with an unknown digest algorithm or a negative size, a
// document of another kind than the one asked, a configuration whose diff
// IDs are not one sha256 per layer.

// parseIndex parses an image index (or a Docker manifest list, or an OCI
// layout's index.json).
func parseIndex(raw []byte) (*v1.IndexManifest, error) {
	var im v1.IndexManifest
	if err := unmarshal(raw, &im); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if im.SchemaVersion != 2 {
		return nil, fmt.Errorf("index: schema version %d, not 2: %w", im.SchemaVersion, api.ErrInvalid)
	}
	if im.MediaType != "" && !im.MediaType.IsIndex() {
		return nil, fmt.Errorf("index: media type %q is not an index's: %w", im.MediaType, api.ErrInvalid)
	}
	for _, d := range im.Manifests {
		if err := checkDescriptor(d); err != nil {
			return nil, fmt.Errorf("index: manifest: %w", err)
		}
	}
	return &im, nil
}

// parseManifest parses an image manifest.
func parseManifest(raw []byte) (*v1.Manifest, error) {
	var m v1.Manifest
	if err := unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("manifest: schema version %d, not 2: %w", m.SchemaVersion, api.ErrInvalid)
	}
	if m.MediaType != "" && !m.MediaType.IsImage() {
		return nil, fmt.Errorf("manifest: media type %q is not an image manifest's: %w", m.MediaType, api.ErrInvalid)
	}
	if err := checkDescriptor(m.Config); err != nil {
		return nil, fmt.Errorf("manifest: config: %w", err)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l); err != nil {
			return nil, fmt.Errorf("manifest: layer %d: %w", i, err)
		}
		if !isLayer(l.MediaType) {
			return nil, fmt.Errorf("manifest: layer %d: media type %q is not a layer's: %w", i, l.MediaType, api.ErrInvalid)
		}
	}
	return &m, nil
}

// isLayer reports whether a layer's media type is one that can be unpacked:
// a tar, compressed with gzip or zstd or not. Foreign (Windows) layers are
// left out.
func isLayer(mt types.MediaType) bool {
	switch mt {
	case types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer,
		types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		types.DockerLayer, types.DockerUncompressedLayer:
		return true
	}
	return false
}

// parseConfig parses an image configuration and checks its diff IDs
// against the manifest's layers: one sha256 per layer. That the layers'
// uncompressed contents have these digests is checked as they are
// unpacked.
func parseConfig(raw []byte, layers int) (*v1.ConfigFile, error) {
	var cfg v1.ConfigFile
	if err := unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("config: rootfs type %q, not \"layers\": %w", cfg.RootFS.Type, api.ErrInvalid)
	}
	if n := len(cfg.RootFS.DiffIDs); n != layers {
		return nil, fmt.Errorf("config: %d diff IDs for %d layers: %w", n, layers, api.ErrCorrupt)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := validDiffID(d); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return &cfg, nil
}

// unmarshal decodes one JSON value, refusing anything after it. A
// malformed document, or a digest that go-containerregistry cannot parse
// (an unknown algorithm), is invalid.
func unmarshal(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	return nil
}

// mediaTypeOf says what a manifest is when whoever served it did not: by
// its own mediaType field, else by its shape.
func mediaTypeOf(declared types.MediaType, raw []byte) types.MediaType {
	if declared.IsImage() || declared.IsIndex() {
		return declared
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return declared
	}
	switch {
	case probe.MediaType.IsImage() || probe.MediaType.IsIndex():
		return probe.MediaType
	case probe.Manifests != nil:
		return types.OCIImageIndex
	case probe.Config != nil:
		return types.OCIManifestSchema1
	}
	return declared
}
