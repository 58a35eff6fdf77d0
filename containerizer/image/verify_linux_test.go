//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/containerizer/image/imagetest"
	"github.com/caisson/caisson/internal/testutil"
)

// The tests here damage images the ways a hostile or careless supplier
// can, for each source (an OCI layout, a `docker save` archive, a registry
// on 127.0.0.1), and check that each is refused with an error that
// errors.Is can tell, leaving nothing behind: no mount, no container
// directory, no layer (whole or partial) in the cache, no record.

// rawImages builds the images the tests damage: a one-layer busybox image
// and a two-layer one (busybox, then a small layer on top).
type rawImages struct {
	one, two func(oci bool) *imagetest.Raw
}

func newRawImages(t *testing.T) rawImages {
	t.Helper()
	bb := imagetest.LayerTar(t, testutil.BusyboxRootfs(t))
	top := makeTar(t, ent{name: "etc/motd", typ: tar.TypeReg, body: "top layer\n"})
	cfg := imagetest.Config{Cmd: []string{"sh"}}
	return rawImages{
		one: func(oci bool) *imagetest.Raw { return imagetest.NewRaw(t, cfg, oci, bb) },
		two: func(oci bool) *imagetest.Raw { return imagetest.NewRaw(t, cfg, oci, bb, top) },
	}
}

// diffIDCases make a config's diff IDs wrong, and the image consistent
// again around it: digests and sizes all match, only the diff IDs lie.
var diffIDCases = []struct {
	name string
	edit func(ids []v1.Hash) []v1.Hash
}{
	{"diff IDs all zero", func(ids []v1.Hash) []v1.Hash {
		out := make([]v1.Hash, len(ids))
		for i := range out {
			out[i] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
		}
		return out
	}},
	{"too few diff IDs", func(ids []v1.Hash) []v1.Hash { return ids[:len(ids)-1] }},
	{"too many diff IDs", func(ids []v1.Hash) []v1.Hash { return append(ids, ids[0]) }},
	{"no diff IDs", func([]v1.Hash) []v1.Hash { return nil }},
	{"diff IDs swapped", func(ids []v1.Hash) []v1.Hash { return []v1.Hash{ids[1], ids[0]} }},
	{"a diff ID of another layer", func(ids []v1.Hash) []v1.Hash { return []v1.Hash{ids[0], ids[0]} }},
}

// withDiffIDs returns the two-layer image with its diff IDs edited.
func withDiffIDs(t *testing.T, imgs rawImages, oci bool, edit func([]v1.Hash) []v1.Hash) *imagetest.Raw {
	t.Helper()
	r := imgs.two(oci)
	cf := r.ConfigFile(t)
	cf.RootFS.DiffIDs = edit(cf.RootFS.DiffIDs)
	r.SetConfig(t, cf)
	return r
}

// flip changes one byte in the middle of data, in a copy.
func flip(data []byte) []byte {
	out := bytes.Clone(data)
	out[len(out)/2] ^= 0x20
	return out
}

// refused provisions ref in a fresh store, expects an error wrapping want,
// and checks that nothing is left behind.
func refused(t *testing.T, ref string, want error) {
	t.Helper()
	s := newStore(t)
	dir := containerDir(t, s)
	rfs, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{ContainerID: "hostile", Image: ref, Dir: dir})
	if !errors.Is(err, want) {
		t.Fatalf("Provision: got %+v, %v; want an error wrapping %v", rfs, err, want)
	}
	t.Logf("refused: %v", err)
	checkLeftNothing(t, s, dir)
}

// checkLeftNothing checks that a refused provision left nothing: no mount,
// no directory under the container's, no lease, no record, and nothing in
// the cache but whole layers that passed their checks (an image whose
// second layer is refused may leave its first, as it is: prune removes it).
func checkLeftNothing(t *testing.T, s *Store, dir string) {
	t.Helper()
	if left := mountedUnder(t, dir); len(left) > 0 {
		t.Errorf("mounted after a refused Provision: %v", left)
	}
	for _, n := range []string{"rootfs", "upper", "work"} {
		if exists(filepath.Join(dir, n)) {
			t.Errorf("%s left behind", n)
		}
	}
	for _, d := range []string{"tmp", "leases"} {
		if entries, _ := os.ReadDir(filepath.Join(s.root, d)); len(entries) != 0 {
			t.Errorf("%s not empty after a refused Provision: %v", d, entries)
		}
	}
	layers, _ := os.ReadDir(filepath.Join(s.root, "layers", "sha256"))
	for _, l := range layers {
		if !exists(filepath.Join(s.root, "layers", "meta", l.Name()+".json")) {
			t.Errorf("layer %s was not unpacked whole", l.Name())
		}
	}
	if idx, err := s.readIndex(); err != nil || len(idx.Images) != 0 {
		t.Errorf("images.json after a refused Provision: %+v, %v", idx, err)
	}
}

func TestHostileLayout(t *testing.T) {
	testutil.RequiresRoot(t)
	imgs := newRawImages(t)
	type tc struct {
		name string
		// make writes the layout into dir and returns its reference.
		make func(t *testing.T, dir string) string
		want error
	}
	write := func(r *imagetest.Raw) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string { return imagetest.WriteRawLayout(t, dir, "hostile", r) }
	}
	// damage writes the one-layer image, then changes a file of it.
	damage := func(fn func(t *testing.T, dir string, r *imagetest.Raw)) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			r := imgs.one(true)
			ref := imagetest.WriteRawLayout(t, dir, "hostile", r)
			fn(t, dir, r)
			return ref
		}
	}
	blob := func(dir string, data []byte) string { return imagetest.BlobPath(dir, imagetest.Digest(data)) }
	rewrite := func(t *testing.T, path string, data []byte) {
		t.Helper()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []tc{
		{"tampered layer", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			rewrite(t, blob(dir, r.Layers[0]), flip(r.Layers[0]))
		}), api.ErrCorrupt},
		{"tampered config", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			rewrite(t, blob(dir, r.Config), bytes.Replace(r.Config, []byte(`"sh"`), []byte(`"id"`), 1))
		}), api.ErrCorrupt},
		{"tampered manifest", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			rewrite(t, blob(dir, r.Manifest), flip(r.Manifest))
		}), api.ErrCorrupt},
		{"manifest with a space added", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			rewrite(t, blob(dir, r.Manifest), bytes.Replace(r.Manifest, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":2 `), 1))
		}), api.ErrCorrupt},
		{"edited config and manifest", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			// The config changes, under its new name; the manifest names
			// it, but stays where the index expects the old manifest.
			old := blob(dir, r.Manifest)
			cf := r.ConfigFile(t)
			cf.Config.Cmd = []string{"id"}
			r.SetConfig(t, cf)
			if err := os.WriteFile(blob(dir, r.Config), r.Config, 0o644); err != nil {
				t.Fatal(err)
			}
			rewrite(t, old, r.Manifest)
		}), api.ErrCorrupt},
		{"layer blob longer than its size", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			rewrite(t, blob(dir, r.Layers[0]), append(bytes.Clone(r.Layers[0]), 0))
		}), api.ErrCorrupt},
		{"layer blob shorter than its size", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			rewrite(t, blob(dir, r.Layers[0]), r.Layers[0][:len(r.Layers[0])-1])
		}), api.ErrCorrupt},
		{"manifest states a wrong layer size", func(t *testing.T, dir string) string {
			r := imgs.one(true)
			r.EditManifest(t, func(m *v1.Manifest) { m.Layers[0].Size++ })
			return imagetest.WriteRawLayout(t, dir, "hostile", r)
		}, api.ErrCorrupt},
		{"manifest states a wrong config size", func(t *testing.T, dir string) string {
			r := imgs.one(true)
			r.EditManifest(t, func(m *v1.Manifest) { m.Config.Size-- })
			return imagetest.WriteRawLayout(t, dir, "hostile", r)
		}, api.ErrCorrupt},
		{"index states a wrong manifest size", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			d := imagetest.Descriptor(r.Manifest, types.OCIManifestSchema1)
			d.Annotations = map[string]string{annotationRefName: "hostile"}
			d.Size += 10
			imagetest.WriteIndex(t, dir, d)
		}), api.ErrCorrupt},
		{"unknown digest algorithm in the index", damage(func(t *testing.T, dir string, r *imagetest.Raw) {
			data, _ := os.ReadFile(filepath.Join(dir, "index.json"))
			rewrite(t, filepath.Join(dir, "index.json"), bytes.Replace(data, []byte(`"sha256:`), []byte(`"md5:`), 1))
		}), api.ErrInvalid},
		{"config named by an absent sha512 digest", func(t *testing.T, dir string) string {
			r := imgs.one(true)
			r.EditManifest(t, func(m *v1.Manifest) {
				m.Config.Digest = v1.Hash{Algorithm: "sha512", Hex: strings.Repeat("ab", 64)}
			})
			return imagetest.WriteRawLayout(t, dir, "hostile", r)
		}, api.ErrNotFound},
		{"uppercase digest", func(t *testing.T, dir string) string {
			r := imgs.one(true)
			r.EditManifest(t, func(m *v1.Manifest) { m.Layers[0].Digest.Hex = strings.ToUpper(m.Layers[0].Digest.Hex) })
			return imagetest.WriteRawLayout(t, dir, "hostile", r)
		}, api.ErrInvalid},
		{"sha512 diff ID", func(t *testing.T, dir string) string {
			r := imgs.one(true)
			cf := r.ConfigFile(t)
			cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha512", Hex: strings.Repeat("ab", 64)}
			r.SetConfig(t, cf)
			return imagetest.WriteRawLayout(t, dir, "hostile", r)
		}, api.ErrInvalid},
		{"foreign layer", func(t *testing.T, dir string) string {
			r := imgs.one(true)
			r.LayerTypes[0] = types.DockerForeignLayer
			r.Seal(t)
			return imagetest.WriteRawLayout(t, dir, "hostile", r)
		}, api.ErrInvalid},
	}
	for _, d := range diffIDCases {
		tests = append(tests, tc{d.name, func(t *testing.T, dir string) string {
			return write(withDiffIDs(t, imgs, true, d.edit))(t, dir)
		}, api.ErrCorrupt})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused(t, tt.make(t, filepath.Join(t.TempDir(), "layout")), tt.want)
		})
	}
}

// TestHostileLayoutFiles puts in place of a layout's files what the class
// of defect 5 covers: FIFOs, devices, directories, huge sparse files and
// links out of the layout. Nothing may block or be read without bound.
func TestHostileLayoutFiles(t *testing.T) {
	testutil.RequiresRoot(t)
	imgs := newRawImages(t)
	type target int
	const (
		index target = iota
		manifest
		config
		layer
	)
	kinds := []struct {
		name string
		make func(t *testing.T, p string)
		want error
	}{
		{"fifo", func(t *testing.T, p string) { must(t, unix.Mkfifo(p, 0o644)) }, api.ErrInvalid},
		{"dev zero", func(t *testing.T, p string) {
			must(t, unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
		}, api.ErrInvalid},
		{"directory", func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o755)) }, api.ErrInvalid},
		{"huge sparse file", func(t *testing.T, p string) {
			f, err := os.Create(p)
			must(t, err)
			must(t, f.Truncate(1<<40))
			must(t, f.Close())
		}, nil}, // over the limit for index.json, the wrong size for a blob
		{"link to a host file", func(t *testing.T, p string) { must(t, os.Symlink("/etc/hostname", p)) }, api.ErrNotFound},
		{"link out of the layout", func(t *testing.T, p string) {
			must(t, os.Symlink("../../../../../../../../../etc/hostname", p))
		}, api.ErrNotFound},
	}
	for _, k := range kinds {
		for _, tgt := range []struct {
			name string
			t    target
		}{{"index.json", index}, {"manifest", manifest}, {"config", config}, {"layer", layer}} {
			t.Run(tgt.name+"/"+k.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "layout")
				r := imgs.one(true)
				ref := imagetest.WriteRawLayout(t, dir, "hostile", r)
				var p string
				switch tgt.t {
				case index:
					p = filepath.Join(dir, "index.json")
				case manifest:
					p = imagetest.BlobPath(dir, imagetest.Digest(r.Manifest))
				case config:
					p = imagetest.BlobPath(dir, imagetest.Digest(r.Config))
				case layer:
					p = imagetest.BlobPath(dir, imagetest.Digest(r.Layers[0]))
				}
				must(t, os.Remove(p))
				k.make(t, p)
				want := k.want
				switch {
				case want == nil && tgt.t == index:
					want = api.ErrTooLarge
				case want == nil:
					want = api.ErrCorrupt
				case want == api.ErrNotFound && tgt.t == index:
					want = api.ErrInvalid // no index.json: not a layout
				}
				testutil.NeverOpened(t, dir, func() { refused(t, ref, want) })
			})
		}
	}
}

func TestHostileArchive(t *testing.T) {
	testutil.RequiresRoot(t)
	imgs := newRawImages(t)
	type tc struct {
		name  string
		files func(t *testing.T) []imagetest.ArchiveFile
		want  error
	}
	// edit returns the one-layer image's files with fn applied.
	edit := func(fn func(files []imagetest.ArchiveFile, r *imagetest.Raw)) func(t *testing.T) []imagetest.ArchiveFile {
		return func(t *testing.T) []imagetest.ArchiveFile {
			r := imgs.one(false)
			files := imagetest.RawArchive(t, r)
			fn(files, r)
			return files
		}
	}
	// Files are: manifest.json, the config, the layers.
	tests := []tc{
		{"tampered layer", edit(func(f []imagetest.ArchiveFile, _ *imagetest.Raw) { f[2].Data = flip(f[2].Data) }), api.ErrCorrupt},
		{"tampered config", edit(func(f []imagetest.ArchiveFile, _ *imagetest.Raw) {
			f[1].Data = bytes.Replace(f[1].Data, []byte(`"sh"`), []byte(`"id"`), 1)
		}), api.ErrCorrupt},
		{"truncated layer", edit(func(f []imagetest.ArchiveFile, _ *imagetest.Raw) { f[2].Data = f[2].Data[:len(f[2].Data)/2] }), api.ErrCorrupt},
		{"layer with trailing bytes", edit(func(f []imagetest.ArchiveFile, _ *imagetest.Raw) {
			f[2].Data = append(bytes.Clone(f[2].Data), "trailing"...)
		}), api.ErrCorrupt},
		{"manifest lists the layers swapped", func(t *testing.T) []imagetest.ArchiveFile {
			files := imagetest.RawArchive(t, imgs.two(false))
			editArchiveManifest(t, files, func(m map[string]any) {
				l := m["Layers"].([]any)
				l[0], l[1] = l[1], l[0]
			})
			return files
		}, api.ErrCorrupt},
		{"manifest lists a layer twice", func(t *testing.T) []imagetest.ArchiveFile {
			files := imagetest.RawArchive(t, imgs.two(false))
			editArchiveManifest(t, files, func(m map[string]any) {
				l := m["Layers"].([]any)
				l[0] = l[1]
			})
			return files
		}, api.ErrCorrupt},
		{"legacy layer name, tampered", func(t *testing.T) []imagetest.ArchiveFile {
			// `docker save` before Docker 25: ID/layer.tar, uncompressed,
			// and no digest in the name: only the diff ID can tell.
			r := imgs.one(false)
			files := imagetest.RawArchive(t, r)
			layerTar := imagetest.LayerTar(t, testutil.BusyboxRootfs(t))
			files[2] = imagetest.ArchiveFile{Name: strings.Repeat("a", 64) + "/layer.tar", Data: flip(layerTar)}
			editArchiveManifest(t, files, func(m map[string]any) { m["Layers"] = []any{files[2].Name} })
			return files
		}, api.ErrCorrupt},
		{"unknown digest algorithm in a name", edit(func(f []imagetest.ArchiveFile, _ *imagetest.Raw) {
			f[1].Name = "md5:" + strings.Repeat("a", 32)
			var m []map[string]any
			_ = json.Unmarshal(f[0].Data, &m)
			m[0]["Config"] = f[1].Name
			f[0].Data, _ = json.Marshal(m)
		}), api.ErrInvalid},
		{"config linked out of the archive", edit(func(f []imagetest.ArchiveFile, _ *imagetest.Raw) {
			var m []map[string]any
			_ = json.Unmarshal(f[0].Data, &m)
			m[0]["Config"] = "../../../../etc/hostname"
			f[0].Data, _ = json.Marshal(m)
		}), api.ErrInvalid},
		{"huge manifest.json", edit(func(f []imagetest.ArchiveFile, _ *imagetest.Raw) {
			f[0].Data = append(f[0].Data, bytes.Repeat([]byte(" "), maxManifestSize)...)
		}), api.ErrTooLarge},
	}
	for _, d := range diffIDCases {
		tests = append(tests, tc{d.name, func(t *testing.T) []imagetest.ArchiveFile {
			return imagetest.RawArchive(t, withDiffIDs(t, imgs, false, d.edit))
		}, api.ErrCorrupt})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refused(t, imagetest.WriteArchive(t, filepath.Join(t.TempDir(), "image.tar"), tt.files(t)), tt.want)
		})
	}
	// The archive itself may be anything.
	for _, k := range []struct {
		name string
		make func(t *testing.T, p string)
		want error
	}{
		{"archive is a fifo", func(t *testing.T, p string) { must(t, unix.Mkfifo(p, 0o644)) }, api.ErrInvalid},
		{"archive is dev zero", func(t *testing.T, p string) {
			must(t, unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
		}, api.ErrInvalid},
		{"archive is a directory", func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o755)) }, api.ErrInvalid},
		{"archive is a huge sparse file", func(t *testing.T, p string) {
			f, err := os.Create(p)
			must(t, err)
			must(t, f.Truncate(1<<40))
			must(t, f.Close())
		}, api.ErrInvalid},
	} {
		t.Run(k.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "image.tar")
			k.make(t, p)
			testutil.NeverOpened(t, filepath.Dir(p), func() { refused(t, "docker-archive:"+p, k.want) })
		})
	}
}

// editArchiveManifest edits the one image of an archive's manifest.json.
func editArchiveManifest(t *testing.T, files []imagetest.ArchiveFile, fn func(map[string]any)) {
	t.Helper()
	var m []map[string]any
	must(t, json.Unmarshal(files[0].Data, &m))
	fn(m[0])
	data, err := json.Marshal(m)
	must(t, err)
	files[0].Data = data
}

func TestHostileRegistry(t *testing.T) {
	testutil.RequiresRoot(t)
	imgs := newRawImages(t)
	type tc struct {
		name string
		// push pushes to host through the tampering registry's pushes,
		// and returns the reference to provision; tamper says what the
		// registry then serves.
		push   func(t *testing.T, host string, r *imagetest.Raw) string
		tamper func(r *imagetest.Raw) imagetest.Tamper
		want   error
	}
	pushOne := func(t *testing.T, host string, r *imagetest.Raw) string {
		return imagetest.PushRaw(t, host, "hostile/image", "latest", r)
	}
	serve := func(blob func(r *imagetest.Raw) []byte, change func([]byte) []byte, chunked bool) func(r *imagetest.Raw) imagetest.Tamper {
		return func(r *imagetest.Raw) imagetest.Tamper {
			d := imagetest.Digest(blob(r)).String()
			return func(path string, body []byte) ([]byte, bool) {
				if strings.HasSuffix(path, "/"+d) {
					return change(body), chunked
				}
				return body, false
			}
		}
	}
	layer0 := func(r *imagetest.Raw) []byte { return r.Layers[0] }
	config := func(r *imagetest.Raw) []byte { return r.Config }
	manifest := func(r *imagetest.Raw) []byte { return r.Manifest }
	longer := func(b []byte) []byte { return append(bytes.Clone(b), 0) }
	shorter := func(b []byte) []byte { return b[:len(b)-1] }
	tests := []tc{
		{"tampered layer", pushOne, serve(layer0, flip, false), api.ErrCorrupt},
		{"tampered layer, chunked", pushOne, serve(layer0, flip, true), api.ErrCorrupt},
		{"tampered config", pushOne, serve(config, flip, false), api.ErrCorrupt},
		{"layer longer than its size", pushOne, serve(layer0, longer, false), api.ErrCorrupt},
		{"layer longer than its size, chunked", pushOne, serve(layer0, longer, true), api.ErrCorrupt},
		{"layer shorter than its size, chunked", pushOne, serve(layer0, shorter, true), api.ErrCorrupt},
		{"config longer than its size, chunked", pushOne, serve(config, longer, true), api.ErrCorrupt},
		{"tampered manifest, by digest", func(t *testing.T, host string, r *imagetest.Raw) string {
			pushOne(t, host, r)
			return host + "/hostile/image@" + imagetest.Digest(r.Manifest).String()
		}, serve(manifest, func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":2 `), 1)
		}, false), api.ErrCorrupt},
		{"tampered manifest, through an index", func(t *testing.T, host string, r *imagetest.Raw) string {
			pushOne(t, host, r)
			d := imagetest.Descriptor(r.Manifest, r.ManifestType)
			d.Platform = &v1.Platform{OS: "linux", Architecture: hostArch()}
			return imagetest.PushIndex(t, host, "hostile/image", "multi", d)
		}, serve(manifest, func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":2 `), 1)
		}, false), api.ErrCorrupt},
		{"huge manifest", pushOne, func(r *imagetest.Raw) imagetest.Tamper {
			return func(path string, body []byte) ([]byte, bool) {
				if strings.Contains(path, "/manifests/") {
					return append(body, bytes.Repeat([]byte(" "), maxManifestSize)...), true
				}
				return body, false
			}
		}, api.ErrTooLarge},
	}
	for _, d := range diffIDCases {
		tests = append(tests, tc{d.name, func(t *testing.T, host string, _ *imagetest.Raw) string {
			return pushOne(t, host, withDiffIDs(t, imgs, false, d.edit))
		}, func(*imagetest.Raw) imagetest.Tamper {
			return func(_ string, body []byte) ([]byte, bool) { return body, false }
		}, api.ErrCorrupt})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := imgs.one(false)
			var tamper imagetest.Tamper
			host := imagetest.TamperingRegistry(t, func(path string, body []byte) ([]byte, bool) {
				return tamper(path, body)
			})
			tamper = func(_ string, body []byte) ([]byte, bool) { return body, false }
			ref := tt.push(t, host, r)
			tamper = tt.tamper(r)
			refused(t, ref, tt.want)
		})
	}
}

func hostArch() string {
	p, _ := parsePlatform("")
	return p.Architecture
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
