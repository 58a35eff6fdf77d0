// Package imagetest builds container images for tests: from a directory
// (such as testutil.BusyboxRootfs) into an OCI image layout, a `docker
// save` archive, or an in-process registry on 127.0.0.1. Each builder
// returns the reference that ProvisionRequest.Image takes, and cleans up
// with the test.
package imagetest

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Tag is the tag the builders give their images.
const Tag = "latest"

// ArchiveName is the repository and tag of DockerArchive's image.
const ArchiveName = "caisson.test/image:" + Tag

// Config is what an image says about running it, and its platform.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	// Platform is "os/arch[/variant]"; empty means linux and this host's
	// architecture.
	Platform string
}

// LayerTar returns the uncompressed layer tar of the directory dir: names
// relative to it, owners, modes and times preserved, hard links kept.
func LayerTar(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			if fi.Mode().IsRegular() && st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				} else {
					inodes[st.Ino] = hdr.Name
				}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tar %s: %v", dir, err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Layer makes a gzip-compressed layer from an uncompressed layer tar.
func Layer(t testing.TB, tarData []byte, mt types.MediaType) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarData)), nil
	}, tarball.WithMediaType(mt))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image makes a one-layer image of rootfsDir with cfg, with OCI media
// types when oci is set and Docker's otherwise.
func Image(t testing.TB, rootfsDir string, cfg Config, oci bool) v1.Image {
	t.Helper()
	return ImageFromLayers(t, cfg, oci, LayerTar(t, rootfsDir))
}

// ImageFromLayers makes an image of the given uncompressed layer tars,
// bottom first.
func ImageFromLayers(t testing.TB, cfg Config, oci bool, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	layerType := types.DockerLayer
	if oci {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		layerType = types.OCILayer
	}
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, Layer(t, l, layerType)); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	p := platform(t, cfg.Platform)
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	cf.Config.Env = cfg.Env
	cf.Config.WorkingDir = cfg.WorkingDir
	cf.Config.User = cfg.User
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func platform(t testing.TB, s string) v1.Platform {
	t.Helper()
	if s == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		t.Fatal(err)
	}
	return *p
}

// OCILayout writes a one-layer image of rootfsDir into a new OCI image
// layout, tagged Tag, and returns its reference, "oci:DIR:latest".
func OCILayout(t testing.TB, rootfsDir string, cfg Config) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	WriteLayout(t, dir, Tag, Image(t, rootfsDir, cfg, true))
	return "oci:" + dir + ":" + Tag
}

// WriteLayout adds img to the OCI image layout at dir (made if missing),
// named tag.
func WriteLayout(t testing.TB, dir, tag string, img v1.Image) {
	t.Helper()
	p := openLayout(t, dir)
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
	})); err != nil {
		t.Fatal(err)
	}
}

func openLayout(t testing.TB, dir string) layout.Path {
	t.Helper()
	if p, err := layout.FromPath(dir); err == nil {
		return p
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// MultiArch makes an image index with one image of rootfsDir per platform
// ("os/arch[/variant]"); each image's config names its platform.
func MultiArch(t testing.TB, rootfsDir string, cfg Config, platforms ...string) v1.ImageIndex {
	t.Helper()
	layer := LayerTar(t, rootfsDir)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, ps := range platforms {
		c := cfg
		c.Platform = ps
		p := platform(t, ps)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        ImageFromLayers(t, c, true, layer),
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx
}

// MultiArchLayout writes MultiArch's index into a new OCI image layout,
// tagged Tag, and returns its reference.
func MultiArchLayout(t testing.TB, rootfsDir string, cfg Config, platforms ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p := openLayout(t, dir)
	if err := p.AppendIndex(MultiArch(t, rootfsDir, cfg, platforms...), layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": Tag,
	})); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir + ":" + Tag
}

// DockerArchive writes a one-layer image of rootfsDir as a `docker save`
// tarball named ArchiveName and returns its reference,
// "docker-archive:PATH".
func DockerArchive(t testing.TB, rootfsDir string, cfg Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "image.tar")
	tag, err := name.NewTag(ArchiveName)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, Image(t, rootfsDir, cfg, false)); err != nil {
		t.Fatal(err)
	}
	return "docker-archive:" + path
}

// RegistryServer starts an in-memory registry on 127.0.0.1, stopped when
// the test ends (or earlier by Close, to test working without it).
func RegistryServer(t testing.TB) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	if err := srv.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// Registry starts an in-memory registry and returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	return strings.TrimPrefix(RegistryServer(t).URL, "http://")
}

// Push pushes a one-layer image of rootfsDir to host/repo:latest and
// returns that reference.
func Push(t testing.TB, host, repo, rootfsDir string, cfg Config) string {
	t.Helper()
	ref := host + "/" + repo + ":" + Tag
	PushImage(t, ref, Image(t, rootfsDir, cfg, false))
	return ref
}

// PushImage pushes img to ref.
func PushImage(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// PushMultiArch pushes MultiArch's index to host/repo:latest and returns
// that reference.
func PushMultiArch(t testing.TB, host, repo, rootfsDir string, cfg Config, platforms ...string) string {
	t.Helper()
	ref := host + "/" + repo + ":" + Tag
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, MultiArch(t, rootfsDir, cfg, platforms...)); err != nil {
		t.Fatal(err)
	}
	return ref
}
