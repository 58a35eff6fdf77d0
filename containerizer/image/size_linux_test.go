//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/containerizer/image/imagetest"
	"github.com/caisson/caisson/internal/testutil"
)

// ustarBlock is a tar header block, for archives Go's writer will not make.
func ustarBlock(name string, typ byte, size int64) []byte {
	b := make([]byte, tarBlock)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	if r := len(b) % tarBlock; r != 0 {
		b = append(b, make([]byte, tarBlock-r)...)
	}
	return b
}

// sparseTar is a layer with one sparse file (PAX format 1.0, as GNU tar
// writes it) of apparent size size: its data is one block at the end, the
// rest is a hole. The layer is a few KiB.
func sparseTar(t *testing.T, name string, size int64) []byte {
	t.Helper()
	var pax []byte
	for _, kv := range [][2]string{
		{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", name}, {"GNU.sparse.realsize", fmt.Sprint(size)},
	} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		pax = append(pax, fmt.Sprint(n)+rec...)
	}
	sparseMap := padBlock([]byte(fmt.Sprintf("1\n%d\n%d\n", size-tarBlock, tarBlock)))
	data := bytes.Repeat([]byte("x"), tarBlock)
	var out []byte
	out = append(out, ustarBlock("PaxHeaders/"+name, tar.TypeXHeader, int64(len(pax)))...)
	out = append(out, padBlock(pax)...)
	out = append(out, ustarBlock("GNUSparseFile.0/"+name, tar.TypeReg, int64(len(sparseMap)+len(data)))...)
	out = append(out, sparseMap...)
	out = append(out, data...)
	out = append(out, make([]byte, 2*tarBlock)...)
	// Go's reader must see the apparent size, as the extractor will.
	tr := tar.NewReader(bytes.NewReader(out))
	hdr, err := tr.Next()
	if err != nil || hdr.Size != size || hdr.Name != name {
		t.Fatalf("sparse tar: %+v, %v", hdr, err)
	}
	return out
}

// provisionLimited provisions ref in s, and returns the error and the
// container's directory.
func provisionLimited(t *testing.T, s *Store, ref string) error {
	t.Helper()
	_, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{Image: ref, Dir: containerDir(t, s)})
	return err
}

func limitedStore(t *testing.T, limit int64) *Store {
	t.Helper()
	s, err := New(Config{Root: filepath.Join(t.TempDir(), "images"), MaxImageSize: limit})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func layoutOf(t *testing.T, layers ...[]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, dir, "img", imagetest.ImageFromLayers(t, imagetest.Config{Cmd: []string{"sh"}}, true, layers...))
	return "oci:" + dir + ":img"
}

func TestImageSizeLimit(t *testing.T) {
	testutil.RequiresRoot(t)
	const mib = 1 << 20
	file := func(name string, size int) []byte {
		return makeTar(t, ent{name: name, typ: tar.TypeReg, body: strings.Repeat("\x00", size)})
	}
	// A tar end followed by zeros: the stream is long, its entries small.
	padded := append(file("small", 1), make([]byte, 8*mib)...)
	tests := []struct {
		name   string
		limit  int64
		layers [][]byte
		want   error
	}{
		{"sparse 2 GiB file", 64 * mib, [][]byte{sparseTar(t, "sparse", 2<<30)}, api.ErrTooLarge},
		{"sparse 64 MiB file, the default limit", 0, [][]byte{sparseTar(t, "sparse", 64*mib)}, nil},
		{"8 MiB of zeros", 4 * mib, [][]byte{file("zeros", 8*mib)}, api.ErrTooLarge},
		{"8 MiB of zeros, under the limit", 9 * mib, [][]byte{file("zeros", 8*mib)}, nil},
		{"two layers over the limit together", 5 * mib, [][]byte{file("a", 3*mib), file("b", 3*mib)}, api.ErrTooLarge},
		{"one layer twice counts once", 5 * mib, [][]byte{file("a", 3*mib), file("a", 3*mib)}, nil},
		{"long stream of padding", 4 * mib, [][]byte{padded}, api.ErrTooLarge},
		{"no limit", -1, [][]byte{file("zeros", 8*mib)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := limitedStore(t, tt.limit)
			dir := containerDir(t, s)
			_, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{Image: layoutOf(t, tt.layers...), Dir: dir})
			if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Fatalf("Provision: got %v, want %v", err, tt.want)
			}
			if err == nil {
				return
			}
			t.Logf("refused: %v", err)
			checkLeftNothing(t, s, dir)
			// Layers are unpacked topmost first: the one that passes the
			// limit is never in the cache, an earlier one may be.
			if exists(s.layerDir(digestOf(tt.layers[0]))) {
				t.Errorf("the layer over the limit is in the cache")
			}
		})
	}
}

// TestImageSizeLimitExact checks the limit's edge, and that layers in the
// cache count: an image whose new layer fits, but not with the cached one
// it shares, is refused.
func TestImageSizeLimitExact(t *testing.T) {
	testutil.RequiresRoot(t)
	base := makeTar(t, ent{name: "base", typ: tar.TypeReg, body: strings.Repeat("b", 3000)})
	top := makeTar(t, ent{name: "top", typ: tar.TypeReg, body: strings.Repeat("t", 3000)})
	one, both := layoutOf(t, base), layoutOf(t, base, top)

	measure := newStore(t)
	if err := provisionLimited(t, measure, both); err != nil {
		t.Fatal(err)
	}
	list, err := measure.List(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("List: %+v, %v", list, err)
	}
	size := list[0].Size
	if size != int64(len(base)+len(top)) {
		t.Errorf("size %d, want the tars' %d", size, len(base)+len(top))
	}

	if err := provisionLimited(t, limitedStore(t, size), both); err != nil {
		t.Errorf("an image of exactly the limit: %v", err)
	}
	if err := provisionLimited(t, limitedStore(t, size-1), both); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("an image one byte over the limit: got %v, want api.ErrTooLarge", err)
	}
	// The base layer is cached by the first image and counts for the second.
	s := limitedStore(t, int64(len(base)+len(top)/2))
	if err := provisionLimited(t, s, one); err != nil {
		t.Fatal(err)
	}
	if err := provisionLimited(t, s, both); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("an image over the limit with a cached layer: got %v, want api.ErrTooLarge", err)
	}
}

// A layer refused as too large is an error whatever the limit: none, the
// largest there is, or one it passes.
func TestLayerTooLargeIsAnError(t *testing.T) {
	testutil.RequiresRoot(t)
	ref := layoutOf(t, makeTar(t, ent{name: "f", typ: tar.TypeReg, body: "f"}))
	for _, limit := range []int64{-1, math.MaxInt64, math.MaxInt64 - 1, 1 << 30} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			s := limitedStore(t, limit)
			s.unpackHook = func(v1.Hash) error {
				return fmt.Errorf("a bounded read in the layer: %w", api.ErrTooLarge)
			}
			dir := containerDir(t, s)
			if _, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{Image: ref, Dir: dir}); !errors.Is(err, api.ErrTooLarge) {
				t.Fatalf("Provision: got %v, want an error wrapping api.ErrTooLarge", err)
			}
			checkLeftNothing(t, s, dir)
		})
	}
}
