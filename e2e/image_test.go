//go:build linux

package e2e

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/caisson/caisson/containerizer/image/imagetest"
)

// The image's configuration supplies the default command, environment,
// working directory and user.
var testImageConfig = imagetest.Config{
	Cmd:        []string{"sh", "-c", `echo "$GREETING from $(pwd) as $(id -u)"`},
	Env:        []string{"GREETING=hello", "PATH=/bin"},
	WorkingDir: "/srv/app",
	User:       "app",
}

func layerDirs(t *testing.T, e *env) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.root, "images", "layers", "sha256"))
	if err != nil {
		t.Fatalf("layer cache: %v", err)
	}
	n := 0
	for _, d := range entries {
		if d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
	}
	return n
}

func TestImageSources(t *testing.T) {
	e := newEnv(t)
	registry := imagetest.Registry(t)
	for _, tc := range []struct {
		name string
		ref  string
	}{
		{"oci layout", imagetest.OCILayout(t, e.rootfs, testImageConfig)},
		{"docker archive", imagetest.DockerArchive(t, e.rootfs, testImageConfig)},
		{"registry", imagetest.Push(t, registry, "tools/busybox", e.rootfs, testImageConfig)},
		{"registry with scheme", "docker://" + imagetest.Push(t, registry, "tools/other", e.rootfs, testImageConfig)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.ok("run", "--rm", tc.ref); got != "hello from /srv/app as 1000\n" {
				t.Fatalf("image defaults: got %q", got)
			}
			if got := e.ok("run", "--rm", "-u", "0", "-w", "/", "-e", "GREETING=hi", tc.ref); got != "hi from / as 0\n" {
				t.Fatalf("overridden defaults: got %q", got)
			}
			if got := e.ok("run", "--rm", tc.ref, "echo", "explicit"); got != "explicit\n" {
				t.Fatalf("explicit command: got %q", got)
			}
		})
	}
	// Every image above has the same single layer: unpacked once, shared.
	if n := layerDirs(t, e); n != 1 {
		t.Errorf("%d layer directories in the cache, want 1 shared by all", n)
	}
}

func markerLayer(t *testing.T, content string) []byte {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "platform"), []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return imagetest.LayerTar(t, dir)
}

// A multi-arch index: the image for the requested platform is chosen. Both
// images carry this host's busybox, plus a marker file saying which is which.
func TestImagePlatformSelection(t *testing.T) {
	e := newEnv(t)
	base := imagetest.LayerTar(t, e.rootfs)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "ppc64le"}, {OS: "linux", Architecture: "arm64"}} {
		cfg := imagetest.Config{Cmd: []string{"cat", "/platform"}, Platform: p.OS + "/" + p.Architecture}
		img := imagetest.ImageFromLayers(t, cfg, true, base, markerLayer(t, p.Architecture))
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	dir := filepath.Join(t.TempDir(), "layout")
	writeLayoutIndex(t, dir, imagetest.Tag, idx)
	ref := "oci:" + dir + ":" + imagetest.Tag
	registry := imagetest.Registry(t)
	remoteRef := registry + "/multi/arch:" + imagetest.Tag
	pushIndex(t, remoteRef, idx)

	for _, r := range []string{ref, remoteRef} {
		if got := e.ok("run", "--rm", r); got != hostArch()+"\n" {
			t.Errorf("%s on this host: got %q, want %s", r, got, hostArch())
		}
		if got := e.ok("run", "--rm", "--platform", "linux/ppc64le", r); got != "ppc64le\n" {
			t.Errorf("%s --platform linux/ppc64le: got %q", r, got)
		}
		res := e.caisson("run", "--rm", "--platform", "linux/s390x", r)
		if res.code != 125 || !strings.Contains(res.stderr, "linux/ppc64le") {
			t.Errorf("%s --platform linux/s390x: %s; want 125 and the platforms that exist", r, res)
		}
	}
	// The base layer is shared by the three platforms' images.
	if n := layerDirs(t, e); n != 3 {
		t.Errorf("%d layer directories, want 3 (the shared base and two markers)", n)
	}
}

func writeLayoutIndex(t *testing.T, dir, tag string, idx v1.ImageIndex) {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		t.Fatal(err)
	}
}

func pushIndex(t *testing.T, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
}

// A layer that tries to write outside its directory is refused with a clear
// error, nothing is written outside, and nothing of the launch is left.
func TestMaliciousLayersRefused(t *testing.T) {
	e := newEnv(t)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	base := imagetest.LayerTar(t, e.rootfs)
	for _, tc := range []struct {
		name    string
		entries []tarEntry
	}{
		{"dot-dot", []tarEntry{{name: "../../../../../../.." + outside + "/dotdot", body: "x"}}},
		{"through a symlink", []tarEntry{{name: "link", link: outside, symlink: true}, {name: "link/via-symlink", body: "x"}}},
		{"hard link out", []tarEntry{{name: "hard", link: "../../../../../../.." + outside + "/target", hard: true}}},
		{"whiteout climbing", []tarEntry{{name: "dir/.wh...", body: ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := imagetest.ImageFromLayers(t, imagetest.Config{Cmd: []string{"true"}}, true, base, craftTar(t, tc.entries))
			dir := filepath.Join(t.TempDir(), "layout")
			imagetest.WriteLayout(t, dir, imagetest.Tag, img)
			r := e.caisson("run", "--rm", "oci:"+dir+":"+imagetest.Tag)
			if r.code != 125 || !strings.HasPrefix(r.stderr, "caisson: ") {
				t.Fatalf("%s", r)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Fatalf("the layer wrote outside its directory: %v", entries)
			}
			if left := e.leftovers(); len(left) > 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

type tarEntry struct {
	name, body, link string
	symlink, hard    bool
}

func craftTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, en := range entries {
		h := &tar.Header{Name: en.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(en.body))}
		switch {
		case en.symlink:
			h = &tar.Header{Name: en.name, Mode: 0o777, Typeflag: tar.TypeSymlink, Linkname: en.link}
		case en.hard:
			h = &tar.Header{Name: en.name, Mode: 0o644, Typeflag: tar.TypeLink, Linkname: en.link}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(en.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
