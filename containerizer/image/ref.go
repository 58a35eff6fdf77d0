package image

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/caisson/caisson/api"
)

// refKind says where an image comes from.
type refKind int

const (
	kindRegistry refKind = iota
	kindOCI
	kindDockerArchive
)

const (
	prefixOCI           = "oci:"
	prefixDockerArchive = "docker-archive:"
	prefixDocker        = "docker://"
)

// reference is a parsed image reference.
type reference struct {
	kind refKind
	// path is the layout directory or the archive file, absolute and clean
	// (kindOCI and kindDockerArchive).
	path string
	// selector is what follows the path: a tag or a digest for a layout, an
	// image name for an archive. Empty when absent.
	selector string
	// named is the registry reference (kindRegistry).
	named name.Reference
}

// String is the canonical form of the reference: the one Rootfs.Image
// carries and images.json is keyed by.
func (r reference) String() string {
	switch r.kind {
	case kindOCI:
		if r.selector == "" {
			return prefixOCI + r.path
		}
		return prefixOCI + r.path + ":" + r.selector
	case kindDockerArchive:
		if r.selector == "" {
			return prefixDockerArchive + r.path
		}
		return prefixDockerArchive + r.path + ":" + r.selector
	default:
		return r.named.Name()
	}
}

// isDigest reports whether the layout selector is a digest rather than a tag.
func (r reference) isDigest() bool {
	return strings.HasPrefix(r.selector, "sha256:")
}

// isRegistryDigest reports whether a registry reference names its image by
// digest (REPO@DIGEST).
func (r reference) isRegistryDigest() bool {
	_, ok := r.named.(name.Digest)
	return ok
}

// parseReference parses the reference forms described in the package
// documentation. insecure lists the registries (host[:port]) reached over
// plain http.
func parseReference(s string, insecure map[string]bool) (reference, error) {
	switch {
	case s == "":
		return reference{}, fmt.Errorf("empty image reference: %w", api.ErrInvalid)
	case strings.HasPrefix(s, prefixOCI):
		return parseLocal(s, prefixOCI, kindOCI)
	case strings.HasPrefix(s, prefixDockerArchive):
		return parseLocal(s, prefixDockerArchive, kindDockerArchive)
	case strings.HasPrefix(s, prefixDocker):
		return parseRegistry(s, strings.TrimPrefix(s, prefixDocker), insecure)
	default:
		return parseRegistry(s, s, insecure)
	}
}

// parseLocal parses "PREFIX PATH[:SELECTOR]". PATH ends at the first colon,
// as in skopeo's transports, so it cannot contain one.
func parseLocal(s, prefix string, k refKind) (reference, error) {
	rest := strings.TrimPrefix(s, prefix)
	path, selector, hasSelector := strings.Cut(rest, ":")
	if path == "" {
		return reference{}, fmt.Errorf("image reference %q: no path: %w", s, api.ErrInvalid)
	}
	if hasSelector && selector == "" {
		return reference{}, fmt.Errorf("image reference %q: empty name after the path: %w", s, api.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return reference{}, fmt.Errorf("image reference %q: %w", s, err)
	}
	r := reference{kind: k, path: abs, selector: selector}
	switch k {
	case kindOCI:
		if r.isDigest() {
			if _, err := parseDigest(selector); err != nil {
				return reference{}, fmt.Errorf("image reference %q: %w", s, err)
			}
		} else if selector != "" && strings.ContainsAny(selector, "/@ \t\n") {
			return reference{}, fmt.Errorf("image reference %q: tag %q is not valid: %w", s, selector, api.ErrInvalid)
		}
	case kindDockerArchive:
		if selector != "" {
			if _, err := name.NewTag(selector); err != nil {
				return reference{}, fmt.Errorf("image reference %q: %w: %w", s, err, api.ErrInvalid)
			}
		}
	}
	return r, nil
}

func parseRegistry(s, ref string, insecure map[string]bool) (reference, error) {
	named, err := name.ParseReference(ref)
	if err != nil {
		return reference{}, fmt.Errorf("image reference %q: %w: %w", s, err, api.ErrInvalid)
	}
	if insecure[named.Context().RegistryStr()] {
		if named, err = name.ParseReference(ref, name.Insecure); err != nil {
			return reference{}, fmt.Errorf("image reference %q: %w: %w", s, err, api.ErrInvalid)
		}
	}
	return reference{kind: kindRegistry, named: named}, nil
}

// parseDigest checks a "sha256:HEX" digest and returns its hex part.
func parseDigest(d string) (string, error) {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || algo != "sha256" || !isSHA256Hex(hex) {
		return "", fmt.Errorf("digest %q is not sha256:<64 hex digits>: %w", d, api.ErrInvalid)
	}
	return hex, nil
}

// isSHA256Hex reports whether s is 64 lowercase hex digits.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
