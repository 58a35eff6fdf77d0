package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
)

// FuzzParseManifest feeds random documents to the parsers of indexes,
// manifests and configs: they never panic, refuse with api.ErrInvalid or
// api.ErrCorrupt, and what they accept is what the rest of the code relies
// on: known digests, sizes not negative, one sha256 diff ID per layer.
func FuzzParseManifest(f *testing.F) {
	d := `{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("a", 64) + `","size":3}`
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+d+`]}`), 1)
	f.Add([]byte(`{"schemaVersion":2,"config":`+d+`,"layers":[`+d+`,`+d+`]}`), 2)
	f.Add([]byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:`+strings.Repeat("0", 64)+`"]},"os":"linux"}`), 1)
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"md5:abc","size":-1}]}`), 0)
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha512:`+strings.Repeat("b", 128)+`","size":1}} trailing`), 0)
	f.Fuzz(func(t *testing.T, raw []byte, layers int) {
		if im, err := parseIndex(raw); err == nil {
			for _, m := range im.Manifests {
				if checkDescriptor(m) != nil {
					t.Fatalf("parseIndex accepted %+v", m)
				}
			}
		} else if !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("parseIndex: %v wraps no sentinel", err)
		}
		if m, err := parseManifest(raw); err == nil {
			if checkDescriptor(m.Config) != nil {
				t.Fatalf("parseManifest accepted config %+v", m.Config)
			}
			for _, l := range m.Layers {
				if checkDescriptor(l) != nil || !isLayer(l.MediaType) {
					t.Fatalf("parseManifest accepted layer %+v", l)
				}
			}
		} else if !errors.Is(err, api.ErrInvalid) {
			t.Fatalf("parseManifest: %v wraps no sentinel", err)
		}
		if cfg, err := parseConfig(raw, layers); err == nil {
			if len(cfg.RootFS.DiffIDs) != layers {
				t.Fatalf("parseConfig accepted %d diff IDs for %d layers", len(cfg.RootFS.DiffIDs), layers)
			}
			for _, d := range cfg.RootFS.DiffIDs {
				if validDiffID(d) != nil {
					t.Fatalf("parseConfig accepted diff ID %q", d)
				}
			}
		} else if !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrCorrupt) {
			t.Fatalf("parseConfig: %v wraps no sentinel", err)
		}
		_ = mediaTypeOf("", raw)
	})
}

// FuzzDigestFromName checks the reading of digests out of archive names.
func FuzzDigestFromName(f *testing.F) {
	hex := strings.Repeat("c", 64)
	for _, n := range []string{"sha256:" + hex, hex + ".json", hex + ".tar.gz", "blobs/sha256/" + hex,
		hex + "/layer.tar", "blobs/md5/x", "md5:" + hex, "manifest.json", "blobs/sha256/a/b"} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		h, ok, err := digestFromName(name)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("digestFromName(%q): %v wraps no sentinel", name, err)
			}
			return
		}
		if ok && (checkDigest(h) != nil || !strings.Contains(name, h.Hex)) {
			t.Fatalf("digestFromName(%q) = %v", name, h)
		}
	})
}

// FuzzResolveArchive reads random tar archives as `docker save` ones: no
// panic, no endless link chase, and every refusal tells why.
func FuzzResolveArchive(f *testing.F) {
	tarOf := func(files ...[3]string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range files {
			hdr := &tar.Header{Name: e[0], Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(e[1]))}
			if e[2] != "" {
				hdr = &tar.Header{Name: e[0], Mode: 0o777, Typeflag: tar.TypeSymlink, Linkname: e[2]}
			}
			_ = tw.WriteHeader(hdr)
			_, _ = tw.Write([]byte(e[1]))
		}
		_ = tw.Close()
		return buf.Bytes()
	}
	cfg := `{"rootfs":{"type":"layers","diff_ids":[]},"os":"linux"}`
	f.Add(tarOf([3]string{"manifest.json", `[{"Config":"c.json","Layers":[]}]`, ""}, [3]string{"c.json", cfg, ""}))
	f.Add(tarOf([3]string{"manifest.json", `[{"Config":"a","Layers":["b"]}]`, ""}, [3]string{"a", "", "b"}, [3]string{"b", "", "a"}))
	f.Add(tarOf([3]string{"manifest.json", `[{"Config":"../x","Layers":[]}]`, ""}))
	want, _ := parsePlatform("linux/amd64")
	// One file, rewritten for each input: on tmpfs, where there is one.
	dir := f.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "caisson-fuzz-archive-"); err == nil {
			dir = d
			f.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	p := filepath.Join(dir, "a.tar")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ref, err := parseReference("docker-archive:"+p, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = resolveArchive(ref, want)
		if err != nil && !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrCorrupt) &&
			!errors.Is(err, api.ErrTooLarge) && !errors.Is(err, api.ErrNotFound) {
			t.Fatalf("resolveArchive: %v wraps no sentinel", err)
		}
	})
}
