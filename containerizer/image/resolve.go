package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/caisson/caisson/api"
)

// annotationRefName is the OCI layout annotation that names a manifest.
const annotationRefName = "org.opencontainers.image.ref.name"

// source is a resolved image: what provisioning needs from it. Everything
// in it was checked against the digest that names it (see fromManifest).
type source struct {
	ref       reference
	platform  v1.Platform
	manifest  v1.Hash // the image manifest's digest
	configID  v1.Hash // the config blob's digest, the image ID
	rawConfig []byte
	config    *v1.ConfigFile
	layers    []layerSource // bottom first
}

// layerSource is one layer of a source.
type layerSource struct {
	diffID v1.Hash
	// desc is the layer blob's descriptor, checked as the blob is read. A
	// zero digest (a `docker save` layer whose file name is no digest)
	// leaves only the diff ID to check.
	desc v1.Descriptor
	// open returns the layer blob, compressed or not, unchecked. It is nil
	// for an image read from images.json, whose layers must already be in
	// the cache.
	open func(ctx context.Context) (io.ReadCloser, error)
}

// resolve finds the image ref names for the wanted platform.
func (s *Store) resolve(ctx context.Context, ref reference, want v1.Platform) (*source, error) {
	switch ref.kind {
	case kindOCI:
		return resolveLayout(ctx, ref, want)
	case kindDockerArchive:
		return resolveArchive(ref, want)
	default:
		return s.resolveRemote(ctx, ref, want)
	}
}

// fromManifest reads an image from its manifest, raw, which mdesc names:
// the manifest is checked against mdesc (digest and size), the config
// blob against the manifest's descriptor, the config's diff IDs against
// the number of layers, and the config's platform against want. Layer
// blobs are checked as they are unpacked: each against its descriptor,
// its uncompressed content against its diff ID.
func fromManifest(ctx context.Context, ref reference, want v1.Platform, mdesc v1.Descriptor, raw []byte, open blobOpener) (*source, error) {
	if err := verifyBytes(raw, mdesc, "manifest"); err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	m, err := parseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	rawConfig, err := readBlob(ctx, open, m.Config, maxConfigSize, "config")
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	cfg, err := parseConfig(rawConfig, len(m.Layers))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if err := checkConfigPlatform(cfg, want, ref.String()); err != nil {
		return nil, err
	}
	src := &source{
		ref: ref, platform: want, manifest: mdesc.Digest, configID: m.Config.Digest,
		rawConfig: rawConfig, config: cfg,
	}
	for i, l := range m.Layers {
		src.layers = append(src.layers, layerSource{
			diffID: cfg.RootFS.DiffIDs[i],
			desc:   l,
			open: func(ctx context.Context) (io.ReadCloser, error) {
				if l.Data != nil {
					return io.NopCloser(bytes.NewReader(l.Data)), nil
				}
				return open(ctx, l)
			},
		})
	}
	return src, nil
}

// resolveRemote asks the registry. When the registry cannot be reached, an
// image pulled before (recorded in images.json, with its layers in the
// cache) is used instead; a digest reference is served from the cache
// without asking at all, since it cannot change.
func (s *Store) resolveRemote(ctx context.Context, ref reference, want v1.Platform) (*source, error) {
	if ref.isRegistryDigest() {
		if src := s.cachedSource(ref, want); src != nil {
			return src, nil
		}
	}
	src, err := s.pull(ctx, ref, want)
	if err == nil {
		return src, nil
	}
	if !unreachable(err) || ctx.Err() != nil {
		return nil, err
	}
	if cached := s.cachedSource(ref, want); cached != nil {
		s.log.Warn("registry unreachable; using the image pulled before", "image", ref.String(), "error", err)
		return cached, nil
	}
	return nil, err
}

// remoteError marks registry answers that say the image does not exist.
func remoteError(ref reference, err error) error {
	if isAnswer(err) {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode == http.StatusNotFound {
			return fmt.Errorf("image %s: %w: %w", ref, err, api.ErrNotFound)
		}
		for _, d := range terr.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode ||
				d.Code == transport.BlobUnknownErrorCode {
				return fmt.Errorf("image %s: %w: %w", ref, err, api.ErrNotFound)
			}
		}
	}
	return fmt.Errorf("image %s: %w", ref, err)
}

// isAnswer reports whether err is a verdict on what the registry sent,
// rather than a failure to reach it.
func isAnswer(err error) bool {
	return errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInvalid) ||
		errors.Is(err, api.ErrCorrupt) || errors.Is(err, api.ErrTooLarge)
}

// unreachable reports whether err says the registry could not be reached,
// as opposed to an answer from it.
func unreachable(err error) bool {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode >= 500
	}
	return !isAnswer(err)
}

// notFound wraps api.ErrNotFound into a missing-file error.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", err, api.ErrNotFound)
	}
	return err
}
