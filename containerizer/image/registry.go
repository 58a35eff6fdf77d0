package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/caisson/caisson/api"
)

// A registry is reached through go-containerregistry's transport (the
// ping, the auth handshake, Docker's credentials), but manifests and blobs
// are fetched and checked here: go-containerregistry checks a blob's
// digest, yet says so in errors that cannot be told apart, reads manifests
// of up to 100 MiB, and does not check a manifest fetched by tag against
// the index that named it.

// acceptManifests is what a pull accepts for a manifest.
var acceptManifests = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
}, ",")

// registryRepo is one repository of a registry, with an authenticated
// client.
type registryRepo struct {
	repo   name.Repository
	client *http.Client
}

// dialRegistry pings the registry and authenticates for pulling from repo.
func (s *Store) dialRegistry(ctx context.Context, repo name.Repository) (*registryRepo, error) {
	auth, err := authn.Resolve(ctx, authn.DefaultKeychain, repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo.RegistryStr(), err)
	}
	base := s.transport
	if base == nil {
		base = remote.DefaultTransport
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, transport.NewUserAgent(base, "caisson"),
		[]string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	return &registryRepo{repo: repo, client: &http.Client{Transport: tr, CheckRedirect: checkRedirect}}, nil
}

// checkRedirect refuses a redirect from a registry to a private or
// link-local address literal elsewhere (a cloud metadata service), as
// go-containerregistry does.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after 10 redirects")
	}
	from, to := via[0].URL.Hostname(), req.URL.Hostname()
	if ip := net.ParseIP(to); ip != nil && to != from && (ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast()) {
		return fmt.Errorf("redirect from %s to the private address %s: %w", from, to, api.ErrInvalid)
	}
	return nil
}

func (r *registryRepo) get(ctx context.Context, kind, id, accept string) (*http.Response, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/%s/%s", r.repo.Registry.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), kind, id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// manifest fetches a manifest or an index by tag or digest, at most
// maxManifestSize bytes, and returns it with its media type and its
// descriptor as the bytes say (sha256, size). The caller checks that
// descriptor against the one it expects.
func (r *registryRepo) manifest(ctx context.Context, id string) ([]byte, v1.Descriptor, error) {
	resp, err := r.get(ctx, "manifests", id, acceptManifests)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > maxManifestSize {
		return nil, v1.Descriptor{}, fmt.Errorf("manifest %s: %d bytes, over the limit of %d: %w", id, resp.ContentLength, maxManifestSize, api.ErrTooLarge)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	if len(raw) > maxManifestSize {
		return nil, v1.Descriptor{}, fmt.Errorf("manifest %s: over the limit of %d bytes: %w", id, maxManifestSize, api.ErrTooLarge)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	sum := sha256.Sum256(raw)
	return raw, v1.Descriptor{
		MediaType: mediaTypeOf(types.MediaType(mt), raw),
		Size:      int64(len(raw)),
		Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])},
	}, nil
}

// blob opens a blob, unchecked but for the size the registry announces.
func (r *registryRepo) blob(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	resp, err := r.get(ctx, "blobs", d.Digest.String(), "")
	if err != nil {
		return nil, err
	}
	if resp.ContentLength >= 0 && resp.ContentLength != d.Size {
		resp.Body.Close()
		return nil, fmt.Errorf("blob %s: the registry sends %d bytes, not the %d its descriptor says: %w", d.Digest, resp.ContentLength, d.Size, api.ErrCorrupt)
	}
	return resp.Body, nil
}

// pull resolves a registry image: its manifest (through an index for the
// wanted platform), checked against the digest that names it, then
// fromManifest's checks.
func (s *Store) pull(ctx context.Context, ref reference, want v1.Platform) (*source, error) {
	r, err := s.dialRegistry(ctx, ref.named.Context())
	if err != nil {
		return nil, remoteError(ref, err)
	}
	raw, desc, err := r.manifest(ctx, ref.named.Identifier())
	if err != nil {
		return nil, remoteError(ref, err)
	}
	if d, ok := ref.named.(name.Digest); ok {
		// The reference names the bytes: check them with its algorithm.
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return nil, fmt.Errorf("image %s: %w: %w", ref, err, api.ErrInvalid)
		}
		if err := verifyBytes(raw, v1.Descriptor{Digest: h, Size: int64(len(raw))}, "manifest"); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		desc.Digest = h
	}
	switch {
	case desc.MediaType.IsIndex():
		im, err := parseIndex(raw)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		d, err := selectManifest(im, want, ref.String())
		if err != nil {
			return nil, err
		}
		raw, _, err := r.manifest(ctx, d.Digest.String())
		if err != nil {
			return nil, remoteError(ref, err)
		}
		return fromManifest(ctx, ref, want, d, raw, r.blob)
	case desc.MediaType.IsImage():
		return fromManifest(ctx, ref, want, desc, raw, r.blob)
	default:
		return nil, fmt.Errorf("image %s: unsupported manifest media type %q: %w", ref, desc.MediaType, api.ErrInvalid)
	}
}
