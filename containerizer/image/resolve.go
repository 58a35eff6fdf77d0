package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/caisson/caisson/api"
)

// annotationRefName is the OCI layout annotation that names a manifest.
const annotationRefName = "org.opencontainers.image.ref.name"

// source is a resolved image: what provisioning needs from it.
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
	// open returns the uncompressed tar stream. It is nil for an image read
	// from images.json, whose layers must already be in the cache.
	open func() (io.ReadCloser, error)
}

// resolve finds the image ref names for the wanted platform.
func (s *Store) resolve(ctx context.Context, ref reference, want v1.Platform) (*source, error) {
	switch ref.kind {
	case kindOCI:
		return resolveLayout(ref, want)
	case kindDockerArchive:
		return resolveArchive(ref, want)
	default:
		return s.resolveRemote(ctx, ref, want)
	}
}

// fromImage reads what provisioning needs from img and checks that its
// configuration is for the wanted platform.
func fromImage(img v1.Image, ref reference, want v1.Platform) (*source, error) {
	src := &source{ref: ref, platform: want}
	var err error
	if src.manifest, err = img.Digest(); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", ref, err)
	}
	if src.rawConfig, err = img.RawConfigFile(); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", ref, err)
	}
	if src.configID, err = img.ConfigName(); err != nil {
		return nil, fmt.Errorf("image %s: config digest: %w", ref, err)
	}
	if src.config, err = v1.ParseConfigFile(bytes.NewReader(src.rawConfig)); err != nil {
		return nil, fmt.Errorf("image %s: config: %w: %w", ref, err, api.ErrInvalid)
	}
	if err := checkConfigPlatform(src.config, want, ref.String()); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image %s: layers: %w", ref, err)
	}
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("image %s: layer diff ID: %w", ref, err)
		}
		src.layers = append(src.layers, layerSource{diffID: diffID, open: l.Uncompressed})
	}
	return src, nil
}

// resolveLayout reads an OCI image layout directory.
func resolveLayout(ref reference, want v1.Platform) (*source, error) {
	if _, err := os.Stat(ref.path); err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, notFound(err))
	}
	p, err := layout.FromPath(ref.path)
	if err != nil {
		return nil, fmt.Errorf("image %s: not an OCI image layout: %w: %w", ref, err, api.ErrInvalid)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("image %s: not an OCI image layout: %w: %w", ref, err, api.ErrInvalid)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("image %s: index.json: %w: %w", ref, err, api.ErrInvalid)
	}

	var candidates []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case ref.selector == "":
		case ref.isDigest():
			if d.Digest.String() != ref.selector {
				continue
			}
		default:
			if d.Annotations[annotationRefName] != ref.selector {
				continue
			}
		}
		candidates = append(candidates, d)
	}

	var desc v1.Descriptor
	switch {
	case len(candidates) == 1:
		desc = candidates[0]
	case len(candidates) == 0:
		return nil, fmt.Errorf("image %s: no manifest named %q in the layout (names: %s): %w",
			ref, ref.selector, layoutNames(im), api.ErrNotFound)
	case allHavePlatforms(candidates):
		// Several images, one per platform, listed at the top level.
		if desc, err = selectManifest(&v1.IndexManifest{Manifests: candidates}, want, ref.String()); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("image %s: the layout holds %d manifests; name one as oci:PATH:TAG (names: %s): %w",
			ref, len(candidates), layoutNames(im), api.ErrInvalid)
	}

	switch {
	case desc.MediaType.IsIndex():
		child, err := ii.ImageIndex(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		cm, err := child.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w: %w", ref, err, api.ErrInvalid)
		}
		d, err := selectManifest(cm, want, ref.String())
		if err != nil {
			return nil, err
		}
		img, err := child.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return fromImage(img, ref, want)
	case desc.MediaType.IsImage():
		img, err := ii.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		return fromImage(img, ref, want)
	default:
		return nil, fmt.Errorf("image %s: unsupported manifest media type %q: %w", ref, desc.MediaType, api.ErrInvalid)
	}
}

func allHavePlatforms(ds []v1.Descriptor) bool {
	for _, d := range ds {
		if d.Platform == nil {
			return false
		}
	}
	return true
}

// layoutNames lists the ref.name annotations of a layout, for errors.
func layoutNames(im *v1.IndexManifest) string {
	var names []string
	for _, d := range im.Manifests {
		if n := d.Annotations[annotationRefName]; n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ", ")
}

// resolveArchive reads a `docker save` tarball.
func resolveArchive(ref reference, want v1.Platform) (*source, error) {
	if _, err := os.Stat(ref.path); err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, notFound(err))
	}
	opener := func() (io.ReadCloser, error) { return os.Open(ref.path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("image %s: not a docker-archive: %w: %w", ref, err, api.ErrInvalid)
	}
	var names []string
	for _, d := range m {
		names = append(names, d.RepoTags...)
	}
	var tag *name.Tag
	if ref.selector != "" {
		t, err := name.NewTag(ref.selector)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w: %w", ref, err, api.ErrInvalid)
		}
		if !slices.ContainsFunc(names, func(n string) bool {
			nt, err := name.NewTag(n)
			return err == nil && nt.Name() == t.Name()
		}) {
			return nil, fmt.Errorf("image %s: no image named %s in the archive (names: %s): %w",
				ref, ref.selector, joinOrNone(names), api.ErrNotFound)
		}
		tag = &t
	} else if len(m) != 1 {
		return nil, fmt.Errorf("image %s: the archive holds %d images; name one as docker-archive:PATH:REPO:TAG (names: %s): %w",
			ref, len(m), joinOrNone(names), api.ErrInvalid)
	}
	img, err := tarball.Image(opener, tag)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w: %w", ref, err, api.ErrInvalid)
	}
	return fromImage(img, ref, want)
}

func joinOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// resolveRemote asks the registry. When the registry cannot be reached, an
// image pulled before (recorded in images.json, with its layers in the
// cache) is used instead; a digest reference is served from the cache
// without asking at all, since it cannot change.
func (s *Store) resolveRemote(ctx context.Context, ref reference, want v1.Platform) (*source, error) {
	if _, ok := ref.named.(name.Digest); ok {
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

func (s *Store) pull(ctx context.Context, ref reference, want v1.Platform) (*source, error) {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(want),
		remote.WithUserAgent("caisson"),
	}
	if s.transport != nil {
		opts = append(opts, remote.WithTransport(s.transport))
	}
	desc, err := remote.Get(ref.named, opts...)
	if err != nil {
		return nil, remoteError(ref, err)
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, remoteError(ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, remoteError(ref, err)
		}
		d, err := selectManifest(im, want, ref.String())
		if err != nil {
			return nil, err
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, remoteError(ref, err)
		}
		src, err := fromImage(img, ref, want)
		if err != nil {
			return nil, remoteError(ref, err)
		}
		return src, nil
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return nil, remoteError(ref, err)
		}
		src, err := fromImage(img, ref, want)
		if err != nil {
			return nil, remoteError(ref, err)
		}
		return src, nil
	default:
		return nil, fmt.Errorf("image %s: unsupported manifest media type %q: %w", ref, desc.MediaType, api.ErrInvalid)
	}
}

// remoteError marks registry answers that say the image does not exist.
func remoteError(ref reference, err error) error {
	if errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInvalid) {
		return err
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		if terr.StatusCode == http.StatusNotFound {
			return fmt.Errorf("image %s: %w: %w", ref, err, api.ErrNotFound)
		}
		for _, d := range terr.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return fmt.Errorf("image %s: %w: %w", ref, err, api.ErrNotFound)
			}
		}
	}
	return fmt.Errorf("image %s: %w", ref, err)
}

// unreachable reports whether err says the registry could not be reached,
// as opposed to an answer from it.
func unreachable(err error) bool {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode >= 500
	}
	return !errors.Is(err, api.ErrNotFound) && !errors.Is(err, api.ErrInvalid)
}

// notFound wraps api.ErrNotFound into a missing-file error.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", err, api.ErrNotFound)
	}
	return err
}
