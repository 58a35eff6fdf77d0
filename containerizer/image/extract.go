package image

import (
	"archive/tar"
	"fmt"
	"math"
	"path"
	"strings"

	"github.com/caisson/caisson/api"
)

const (
	whiteoutPrefix = ".wh."
	// whiteoutMetaPrefix marks AUFS bookkeeping entries (.wh..wh.plnk and
	// the like); only the opaque marker among them means anything to us.
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
)

// cleanEntryName turns a tar entry name into a clean path relative to the
// layer root: a leading "/" is dropped (tar convention), "." and empty
// components vanish, and ".." is resolved lexically. A name that climbs
// above the root is refused. The root itself is "".
func cleanEntryName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("name contains a NUL byte: %w", api.ErrInvalid)
	}
	p := path.Clean("/" + name)
	// path.Clean of a rooted path cannot climb above "/", so check the raw
	// components instead: "a/../../x" must be refused, not turned into "x".
	depth := 0
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", fmt.Errorf("name climbs out of the layer: %w", api.ErrInvalid)
			}
		default:
			depth++
		}
	}
	return strings.TrimPrefix(p, "/"), nil
}

// whiteoutTarget returns, for the base name of a whiteout entry (".wh.NAME"),
// the NAME it removes. It refuses names that are not one path component.
func whiteoutTarget(base string) (string, error) {
	target := strings.TrimPrefix(base, whiteoutPrefix)
	switch {
	case target == "", target == ".", target == "..", strings.ContainsAny(target, "/\x00"):
		return "", fmt.Errorf("whiteout %q names no file: %w", base, api.ErrInvalid)
	}
	return target, nil
}

// tarBlock is the size of a tar header, and the unit of its data.
const tarBlock = 512

// entrySize is what an entry counts toward a layer's size: its header, and
// a regular file's apparent size rounded up to whole blocks, as it would
// take in a tar that is not sparse.
func entrySize(hdr *tar.Header) int64 {
	if hdr.Typeflag != tar.TypeReg || hdr.Size <= 0 {
		return tarBlock
	}
	return addSize(tarBlock, roundBlock(hdr.Size))
}

// roundBlock rounds n up to whole tar blocks, saturating.
func roundBlock(n int64) int64 {
	if n > math.MaxInt64-tarBlock {
		return math.MaxInt64
	}
	return (n + tarBlock - 1) / tarBlock * tarBlock
}

// addSize adds sizes that are not negative, saturating.
func addSize(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
