package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/safefile"
)

// Bounds on the index of a `docker save` archive kept in memory: a few
// entries per layer are expected.
const (
	maxArchiveEntries   = 1 << 16
	maxArchiveNameBytes = 16 << 20
	maxArchiveLinkHops  = 16
)

// archive is a `docker save` tarball: its regular files and symbolic links
// by name, found in one pass over the headers.
type archive struct {
	path    string
	file    os.FileInfo // the file scanned, so that a replaced one is noticed
	entries map[string]archiveEntry
}

type archiveEntry struct {
	off, size int64
	link      string // a symbolic link's target
	isLink    bool
	sparse    bool // a sparse entry's data is not its content
}

// archiveManifest is one image of manifest.json.
type archiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// openArchive indexes the archive at p, which must be a regular file.
func openArchive(p string) (*archive, error) {
	f, err := safefile.Open(p)
	if err != nil {
		return nil, notFound(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	a := &archive{path: p, file: fi, entries: map[string]archiveEntry{}}
	nameBytes := 0
	// An *os.File seeks: the reader skips file data without reading it, and
	// the offset after a header is where the entry's data begins.
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && (hdr == nil || !errors.Is(err, tar.ErrInsecurePath)) {
			return nil, fmt.Errorf("not a tar archive: %w: %w", err, api.ErrInvalid)
		}
		rel, err := cleanEntryName(hdr.Name)
		if err != nil || rel == "" {
			continue // nothing an image refers to
		}
		if len(a.entries) >= maxArchiveEntries || nameBytes > maxArchiveNameBytes {
			return nil, fmt.Errorf("more than %d entries or %d bytes of names: %w", maxArchiveEntries, maxArchiveNameBytes, api.ErrTooLarge)
		}
		nameBytes += len(rel) + len(hdr.Linkname)
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			a.entries[rel] = archiveEntry{off: off, size: hdr.Size, sparse: isSparse(hdr)}
		case tar.TypeSymlink:
			a.entries[rel] = archiveEntry{isLink: true, link: hdr.Linkname}
		case tar.TypeLink:
			target, err := cleanEntryName(hdr.Linkname)
			if e, ok := a.entries[target]; err == nil && ok {
				a.entries[rel] = e
			}
		}
	}
	return a, nil
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// lookup finds the regular file name stands for, following symbolic links
// inside the archive (older `docker save` links a layer seen twice).
func (a *archive) lookup(name string) (archiveEntry, error) {
	cur, err := cleanEntryName(name)
	if err != nil {
		return archiveEntry{}, fmt.Errorf("%q: %w", name, err)
	}
	for range maxArchiveLinkHops {
		e, ok := a.entries[cur]
		if !ok {
			return archiveEntry{}, fmt.Errorf("%q is not in the archive: %w", name, api.ErrInvalid)
		}
		if !e.isLink {
			if e.sparse {
				return archiveEntry{}, fmt.Errorf("%q is a sparse entry: %w", name, api.ErrInvalid)
			}
			return e, nil
		}
		target := e.link
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(cur), target)
		}
		if cur, err = cleanEntryName(target); err != nil {
			return archiveEntry{}, fmt.Errorf("%q links out of the archive: %w", name, err)
		}
	}
	return archiveEntry{}, fmt.Errorf("%q: too many symbolic links: %w", name, api.ErrInvalid)
}

// open opens an entry's content. The archive is opened again, and must be
// the file that was indexed.
func (a *archive) open(name string) (io.ReadCloser, int64, error) {
	e, err := a.lookup(name)
	if err != nil {
		return nil, 0, err
	}
	f, err := safefile.Open(a.path)
	if err != nil {
		return nil, 0, err
	}
	if fi, err := f.Stat(); err != nil || !os.SameFile(fi, a.file) {
		f.Close()
		return nil, 0, fmt.Errorf("%s changed while it was read: %w", a.path, api.ErrCorrupt)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, e.off, e.size), f}, e.size, nil
}

// read reads an entry whole, at most limit bytes.
func (a *archive) read(name string, limit int64) ([]byte, error) {
	rc, size, err := a.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > limit {
		return nil, fmt.Errorf("%q: %d bytes, over the limit of %d: %w", name, size, limit, api.ErrTooLarge)
	}
	return io.ReadAll(rc)
}

// digestFromName returns the digest a blob's name in an archive states,
// if it states one: "sha256:HEX" (go-containerregistry), "HEX.json" (a
// config, from `docker save`), "HEX.tar.gz" and "HEX.tar"
// (go-containerregistry's layers), "blobs/ALGORITHM/HEX" (Docker 25 and
// later). Older `docker save` layers, ID/layer.tar, state none: their ID is
// no digest of their content. A name with an unknown algorithm is refused.
func digestFromName(name string) (v1.Hash, bool, error) {
	if rest, ok := strings.CutPrefix(name, "blobs/"); ok {
		algo, hexPart, ok := strings.Cut(rest, "/")
		if !ok || strings.Contains(hexPart, "/") {
			return v1.Hash{}, false, nil
		}
		h := v1.Hash{Algorithm: algo, Hex: hexPart}
		return h, true, checkDigest(h)
	}
	if strings.Contains(name, "/") {
		return v1.Hash{}, false, nil
	}
	base := name
	for _, ext := range []string{".json", ".tar.gz", ".tar"} {
		base = strings.TrimSuffix(base, ext)
	}
	if algo, hexPart, ok := strings.Cut(base, ":"); ok {
		h := v1.Hash{Algorithm: algo, Hex: hexPart}
		return h, true, checkDigest(h)
	}
	if len(base) == 64 && isLowerHex(base) {
		return v1.Hash{Algorithm: "sha256", Hex: base}, true, nil
	}
	return v1.Hash{}, false, nil
}

// resolveArchive reads a `docker save` tarball. Its manifest.json is the
// root of trust; the config is checked against the digest its name states
// and gives the image ID, its diff IDs are checked against the number of
// layers, and each layer against the digest its name states, if any, and
// against its diff ID, as it is unpacked.
func resolveArchive(ref reference, want v1.Platform) (*source, error) {
	a, err := openArchive(ref.path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	raw, err := a.read("manifest.json", maxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: not a docker-archive: %w", ref, err)
	}
	var ms []archiveManifest
	if err := unmarshal(raw, &ms); err != nil {
		return nil, fmt.Errorf("image %s: manifest.json: %w", ref, err)
	}
	m, err := selectArchiveImage(ms, ref)
	if err != nil {
		return nil, err
	}

	rawConfig, err := a.read(m.Config, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", ref, err)
	}
	sum := sha256.Sum256(rawConfig)
	configID := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if h, ok, err := digestFromName(m.Config); err != nil {
		return nil, fmt.Errorf("image %s: config %q: %w", ref, m.Config, err)
	} else if ok {
		if err := verifyBytes(rawConfig, v1.Descriptor{Digest: h, Size: int64(len(rawConfig))}, "config"); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		configID = h
	}
	cfg, err := parseConfig(rawConfig, len(m.Layers))
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if err := checkConfigPlatform(cfg, want, ref.String()); err != nil {
		return nil, err
	}
	src := &source{ref: ref, platform: want, configID: configID, rawConfig: rawConfig, config: cfg}
	for i, layer := range m.Layers {
		e, err := a.lookup(layer)
		if err != nil {
			return nil, fmt.Errorf("image %s: layer: %w", ref, err)
		}
		ls := layerSource{
			diffID: cfg.RootFS.DiffIDs[i],
			open: func(context.Context) (io.ReadCloser, error) {
				rc, _, err := a.open(layer)
				return rc, err
			},
		}
		if h, ok, err := digestFromName(layer); err != nil {
			return nil, fmt.Errorf("image %s: layer %q: %w", ref, layer, err)
		} else if ok {
			ls.desc = v1.Descriptor{Digest: h, Size: e.size}
		}
		src.layers = append(src.layers, ls)
	}
	return src, nil
}

// selectArchiveImage picks the image ref names, or the only one.
func selectArchiveImage(ms []archiveManifest, ref reference) (archiveManifest, error) {
	var names []string
	for _, m := range ms {
		names = append(names, m.RepoTags...)
	}
	if ref.selector == "" {
		if len(ms) != 1 {
			return archiveManifest{}, fmt.Errorf("image %s: the archive holds %d images; name one as docker-archive:PATH:REPO:TAG (names: %s): %w",
				ref, len(ms), joinOrNone(names), api.ErrInvalid)
		}
		return ms[0], nil
	}
	want, err := name.NewTag(ref.selector)
	if err != nil {
		return archiveManifest{}, fmt.Errorf("image %s: %w: %w", ref, err, api.ErrInvalid)
	}
	for _, m := range ms {
		if slices.ContainsFunc(m.RepoTags, func(n string) bool {
			t, err := name.NewTag(n)
			return err == nil && t.Name() == want.Name()
		}) {
			return m, nil
		}
	}
	return archiveManifest{}, fmt.Errorf("image %s: no image named %s in the archive (names: %s): %w",
		ref, ref.selector, joinOrNone(names), api.ErrNotFound)
}

func joinOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
