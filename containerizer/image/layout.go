package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/safefile"
)

// resolveLayout reads an OCI image layout directory. Its index.json is
// the root of trust (a layout is not signed); every blob read from it is
// checked against the descriptor that names it. Files are read as untrusted
// (internal/safefile): inside the layout, regular, and bounded.
func resolveLayout(ctx context.Context, ref reference, want v1.Platform) (*source, error) {
	fi, err := os.Stat(ref.path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, notFound(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("image %s: not an OCI image layout: not a directory: %w", ref, api.ErrInvalid)
	}
	raw, err := safefile.ReadFileInRoot(ref.path, "index.json", maxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s: not an OCI image layout: no index.json: %w", ref, api.ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	im, err := parseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("image %s: index.json: %w", ref, err)
	}
	open := layoutBlobs(ref.path)

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
		raw, err := readBlob(ctx, open, desc, maxManifestSize, "index")
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		child, err := parseIndex(raw)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		d, err := selectManifest(child, want, ref.String())
		if err != nil {
			return nil, err
		}
		return layoutImage(ctx, ref, want, d, open)
	case desc.MediaType.IsImage():
		return layoutImage(ctx, ref, want, desc, open)
	default:
		return nil, fmt.Errorf("image %s: unsupported manifest media type %q: %w", ref, desc.MediaType, api.ErrInvalid)
	}
}

// layoutImage reads the image whose manifest desc names.
func layoutImage(ctx context.Context, ref reference, want v1.Platform, desc v1.Descriptor, open blobOpener) (*source, error) {
	raw, err := readBlob(ctx, open, desc, maxManifestSize, "manifest")
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return fromManifest(ctx, ref, want, desc, raw, open)
}

// layoutBlobs opens blobs/ALGORITHM/HEX in the layout at root. A blob
// whose size is not its descriptor's is refused before it is read.
func layoutBlobs(root string) blobOpener {
	return func(_ context.Context, d v1.Descriptor) (io.ReadCloser, error) {
		if err := checkDescriptor(d); err != nil {
			return nil, err
		}
		name := path.Join("blobs", d.Digest.Algorithm, d.Digest.Hex)
		f, err := safefile.OpenInRoot(root, name)
		if err != nil {
			return nil, notFound(err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if fi.Size() != d.Size {
			f.Close()
			return nil, fmt.Errorf("%s: %d bytes, not the %d its descriptor says: %w", name, fi.Size(), d.Size, api.ErrCorrupt)
		}
		return f, nil
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
