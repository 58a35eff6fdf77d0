//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/containerizer/image/imagetest"
	"github.com/caisson/caisson/internal/mountinfo"
	"github.com/caisson/caisson/internal/testutil"
)

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// newStore makes a Store under a temporary root. Every mount made under
// the test's directories is undone when the test ends, whatever happens.
func newStore(t *testing.T) *Store {
	t.Helper()
	root := filepath.Join(t.TempDir(), "images")
	s, err := New(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// containerDir returns a fresh container directory, released (and checked
// for leftover mounts) when the test ends.
func containerDir(t *testing.T, s *Store) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "container")
	t.Cleanup(func() {
		if err := s.Release(context.Background(), dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if left := mountedUnder(t, dir); len(left) > 0 {
			t.Errorf("cleanup: still mounted: %v", left)
			for _, m := range left {
				_ = unix.Unmount(m, unix.MNT_DETACH)
			}
		}
	})
	return dir
}

func mountedUnder(t *testing.T, dir string) []string {
	t.Helper()
	m, err := mountinfo.Under(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func provision(t *testing.T, s *Store, req *containerizer.ProvisionRequest) *containerizer.Rootfs {
	t.Helper()
	rfs, err := s.Provision(context.Background(), req)
	if err != nil {
		t.Fatalf("Provision %+v: %v", req, err)
	}
	return rfs
}

func release(t *testing.T, s *Store, dir string) {
	t.Helper()
	if err := s.Release(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if left := mountedUnder(t, dir); len(left) > 0 {
		t.Errorf("mounted after Release: %v", left)
	}
	for _, n := range []string{"rootfs", "upper", "work", "sandbox"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Release: %v", n, err)
		}
	}
}

func inode(t *testing.T, p string) (uint64, int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino, st.Mtim.Nano()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// layerDirs lists the layer cache.
func layerDirs(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.root, "layers", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		dirs = append(dirs, filepath.Join(s.root, "layers", "sha256", e.Name()))
	}
	return dirs
}

func TestProvisionDir(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	bb := testutil.BusyboxRootfs(t)
	link := filepath.Join(t.TempDir(), "link")
	symlink(t, bb, link)
	dir := containerDir(t, s)

	rfs := provision(t, s, &containerizer.ProvisionRequest{ContainerID: "c1", Rootfs: link, Dir: dir})
	if diff := cmp.Diff(&containerizer.Rootfs{Path: filepath.Join(dir, "rootfs")}, rfs); diff != "" {
		t.Errorf("Provision (-want +got):\n%s", diff)
	}
	if !exists(filepath.Join(rfs.Path, "bin/busybox")) {
		t.Errorf("bin/busybox is not in the root filesystem")
	}
	if got := mountedUnder(t, dir); len(got) != 1 {
		t.Errorf("mounts under the container: %v, want the overlay", got)
	}
	// Writes land in upper, never in the user's directory.
	writeFile(t, filepath.Join(rfs.Path, "new"), "written")
	if err := os.Remove(filepath.Join(rfs.Path, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(bb, "new")) || !exists(filepath.Join(bb, "bin/sh")) {
		t.Errorf("the container's writes reached the user's directory")
	}
	if !exists(filepath.Join(dir, "upper/new")) {
		t.Errorf("the container's write is not in upper")
	}
	// A second Provision on the same directory is refused and harms nothing.
	if _, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{Rootfs: bb, Dir: dir}); !errors.Is(err, api.ErrAlreadyExists) {
		t.Errorf("second Provision: got %v, want an error wrapping api.ErrAlreadyExists", err)
	}
	if !exists(filepath.Join(rfs.Path, "new")) {
		t.Errorf("the refused Provision disturbed the first")
	}
	release(t, s, dir)
	release(t, s, dir)
}

func TestProvisionImage(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := testutil.BusyboxRootfs(t)
	cfg := imagetest.Config{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{"echo hello"},
		Env:        []string{"PATH=/bin", "GREETING=hello"},
		WorkingDir: "/home/app",
		User:       "app",
	}
	wantConfig := containerizer.ImageConfig{
		Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, Env: cfg.Env, WorkingDir: cfg.WorkingDir, User: cfg.User,
	}
	tests := []struct {
		name string
		ref  func(t *testing.T) (ref, canonical string)
	}{
		{"oci layout", func(t *testing.T) (string, string) {
			r := imagetest.OCILayout(t, bb, cfg)
			return r, r
		}},
		{"oci layout without tag", func(t *testing.T) (string, string) {
			r := strings.TrimSuffix(imagetest.OCILayout(t, bb, cfg), ":"+imagetest.Tag)
			return r, r
		}},
		{"docker archive", func(t *testing.T) (string, string) {
			r := imagetest.DockerArchive(t, bb, cfg)
			return r, r
		}},
		{"docker archive by name", func(t *testing.T) (string, string) {
			r := imagetest.DockerArchive(t, bb, cfg) + ":" + imagetest.ArchiveName
			return r, r
		}},
		{"registry", func(t *testing.T) (string, string) {
			r := imagetest.Push(t, imagetest.Registry(t), "test/busybox", bb, cfg)
			return r, r
		}},
		{"registry with docker://", func(t *testing.T) (string, string) {
			r := imagetest.Push(t, imagetest.Registry(t), "test/busybox", bb, cfg)
			return "docker://" + r, r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ref, canonical := tt.ref(t)
			dirA, dirB := containerDir(t, s), containerDir(t, s)

			a := provision(t, s, &containerizer.ProvisionRequest{ContainerID: "a", Image: ref, Dir: dirA})
			if diff := cmp.Diff(wantConfig, a.Config); diff != "" {
				t.Errorf("Config (-want +got):\n%s", diff)
			}
			if a.Image != canonical || !digestRE.MatchString(a.Digest) || a.Readonly || len(a.Mounts) != 0 || a.Path != filepath.Join(dirA, "rootfs") {
				t.Errorf("Rootfs: got %+v, want Image %s and a digest", a, canonical)
			}
			if data, err := os.ReadFile(filepath.Join(a.Path, "etc/group")); err != nil || !strings.Contains(string(data), "app:x:1000") {
				t.Errorf("etc/group in the image: %q, %v", data, err)
			}
			if fi, err := os.Stat(filepath.Join(a.Path, "bin/busybox")); err != nil || fi.Mode()&0o111 == 0 {
				t.Fatalf("bin/busybox in the image: %v", err)
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(a.Path, "home/app"), &st); err != nil || st.Uid != 1000 {
				t.Errorf("home/app owner: %d, %v; want 1000", st.Uid, err)
			}

			layers := layerDirs(t, s)
			if len(layers) != 1 {
				t.Fatalf("layer cache: %v, want one layer", layers)
			}
			ino, mtime := inode(t, layers[0])

			b := provision(t, s, &containerizer.ProvisionRequest{ContainerID: "b", Image: ref, Dir: dirB})
			if diff := cmp.Diff(a.Config, b.Config); diff != "" {
				t.Errorf("second container's Config (-first +second):\n%s", diff)
			}
			if a.Digest != b.Digest {
				t.Errorf("digests differ: %s, %s", a.Digest, b.Digest)
			}
			if n := s.extractions.Load(); n != 1 {
				t.Errorf("layers unpacked: %d, want 1", n)
			}
			if i, m := inode(t, layers[0]); i != ino || m != mtime {
				t.Errorf("the layer directory changed for the second container")
			}

			// One container's writes reach neither the layer nor the other.
			writeFile(t, filepath.Join(a.Path, "new"), "written")
			writeFile(t, filepath.Join(a.Path, "etc/passwd"), "changed\n")
			if err := os.Remove(filepath.Join(a.Path, "bin/sh")); err != nil {
				t.Fatal(err)
			}
			if exists(filepath.Join(layers[0], "new")) || exists(filepath.Join(b.Path, "new")) {
				t.Errorf("a new file leaked out of its container")
			}
			for _, root := range []string{layers[0], b.Path} {
				data, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
				if err != nil || strings.Contains(string(data), "changed") {
					t.Errorf("%s/etc/passwd changed: %q, %v", root, data, err)
				}
				if !exists(filepath.Join(root, "bin/sh")) {
					t.Errorf("%s/bin/sh removed", root)
				}
			}

			if ref == canonical && strings.HasPrefix(ref, "oci:") {
				checkLayoutDigest(t, ref, a.Digest)
			}

			release(t, s, dirA)
			if !exists(filepath.Join(b.Path, "bin/busybox")) {
				t.Errorf("releasing one container disturbed the other")
			}
			release(t, s, dirB)
			if !exists(filepath.Join(layers[0], "bin/busybox")) {
				t.Errorf("Release removed the cached layer")
			}
		})
	}
}

// checkLayoutDigest checks Rootfs.Digest against the config digest that
// go-containerregistry reads from the layout.
func checkLayoutDigest(t *testing.T, ref, digest string) {
	t.Helper()
	path, _, _ := strings.Cut(strings.TrimPrefix(ref, "oci:"), ":")
	ii, err := layout.ImageIndexFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := ii.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if digest != want.String() {
		t.Errorf("Digest: got %s, want the config digest %s", digest, want)
	}
}

// otherArch is an architecture that is not this host's.
func otherArch() string {
	if runtime.GOARCH == "s390x" {
		return "riscv64"
	}
	return "s390x"
}

func TestProvisionPlatforms(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := testutil.BusyboxRootfs(t)
	host := "linux/" + runtime.GOARCH
	tests := []struct {
		name     string
		ref      func(t *testing.T) string
		platform string
		wantArch string // the provisioned image's architecture
		wantErr  error
	}{
		{"index, host", func(t *testing.T) string {
			return imagetest.MultiArchLayout(t, bb, imagetest.Config{}, "linux/amd64", "linux/ppc64le", host)
		}, "", runtime.GOARCH, nil},
		{"index, ppc64le", func(t *testing.T) string {
			return imagetest.MultiArchLayout(t, bb, imagetest.Config{}, "linux/amd64", "linux/ppc64le")
		}, "linux/ppc64le", "ppc64le", nil},
		{"index, missing", func(t *testing.T) string {
			return imagetest.MultiArchLayout(t, bb, imagetest.Config{}, "linux/amd64", "linux/ppc64le")
		}, "linux/s390x", "", api.ErrNotFound},
		{"registry index, ppc64le", func(t *testing.T) string {
			return imagetest.PushMultiArch(t, imagetest.Registry(t), "multi", bb, imagetest.Config{}, "linux/amd64", "linux/ppc64le")
		}, "linux/ppc64le", "ppc64le", nil},
		{"registry index, missing", func(t *testing.T) string {
			return imagetest.PushMultiArch(t, imagetest.Registry(t), "multi", bb, imagetest.Config{}, "linux/amd64", "linux/ppc64le")
		}, "linux/riscv64", "", api.ErrNotFound},
		{"single image, other arch", func(t *testing.T) string {
			return imagetest.OCILayout(t, bb, imagetest.Config{Platform: "linux/" + otherArch()})
		}, "", "", api.ErrNotFound},
		{"single image, asked arch", func(t *testing.T) string {
			return imagetest.OCILayout(t, bb, imagetest.Config{Platform: "linux/" + otherArch()})
		}, "linux/" + otherArch(), otherArch(), nil},
		{"registry image, other arch", func(t *testing.T) string {
			return imagetest.Push(t, imagetest.Registry(t), "single", bb, imagetest.Config{Platform: "linux/" + otherArch()})
		}, "", "", api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			dir := containerDir(t, s)
			rfs, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{Image: tt.ref(t), Platform: tt.platform, Dir: dir})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Provision: got %v, want an error wrapping %v", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				if left := mountedUnder(t, dir); len(left) > 0 {
					t.Errorf("mounted after a failed Provision: %v", left)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !exists(filepath.Join(rfs.Path, "bin/busybox")) {
				t.Errorf("bin/busybox is not in the root filesystem")
			}
			// The digest names the config, which names the architecture.
			got := configArch(t, s, rfs)
			if got != tt.wantArch {
				t.Errorf("provisioned architecture %s, want %s", got, tt.wantArch)
			}
		})
	}
}

// configArch finds the architecture of the provisioned image by resolving
// its reference again for each platform the tests use.
func configArch(t *testing.T, s *Store, rfs *containerizer.Rootfs) string {
	t.Helper()
	ref, err := parseReference(rfs.Image, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"linux/amd64", "linux/ppc64le", "linux/s390x", "linux/riscv64"} {
		want, _ := parsePlatform(p)
		src, err := s.resolve(context.Background(), ref, want)
		if err == nil && src.configID.String() == rfs.Digest {
			return src.config.Architecture
		}
	}
	return "unknown"
}

func TestProvisionRegistryOffline(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := testutil.BusyboxRootfs(t)
	srv := imagetest.RegistryServer(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := imagetest.Push(t, host, "offline/busybox", bb, imagetest.Config{Cmd: []string{"sh"}})
	s := newStore(t)

	dir := containerDir(t, s)
	first := provision(t, s, &containerizer.ProvisionRequest{Image: ref, Dir: dir})
	release(t, s, dir)
	if _, err := os.Stat(filepath.Join(s.root, "images.json")); err != nil {
		t.Fatalf("images.json: %v", err)
	}

	srv.Close()
	// A tag: the registry is asked, cannot be reached, and images.json
	// answers.
	second := provision(t, s, &containerizer.ProvisionRequest{Image: ref, Dir: dir})
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("offline Provision (-online +offline):\n%s", diff)
	}
	if !exists(filepath.Join(second.Path, "bin/busybox")) {
		t.Errorf("bin/busybox is not in the root filesystem")
	}
	if n := s.extractions.Load(); n != 1 {
		t.Errorf("layers unpacked: %d, want 1", n)
	}
	release(t, s, dir)

	// A digest reference is served from the cache without asking.
	idx, err := s.readIndex()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := parsePlatform("")
	entry, ok := idx.Images[ref][platformString(&want)]
	if !ok {
		t.Fatalf("images.json has no entry for %s: %+v", ref, idx)
	}
	byDigest := host + "/offline/busybox@" + entry.Manifest
	third := provision(t, s, &containerizer.ProvisionRequest{Image: byDigest, Dir: dir})
	if third.Digest != first.Digest || third.Image != byDigest {
		t.Errorf("Provision by digest: got %+v", third)
	}
	release(t, s, dir)

	// An image never pulled cannot be had.
	_, err = s.Provision(context.Background(), &containerizer.ProvisionRequest{Image: host + "/offline/other:1", Dir: dir})
	if err == nil {
		t.Fatalf("Provision of an image never pulled, with the registry gone: no error")
	}
}

func TestProvisionRegistryNotFound(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	host := imagetest.Registry(t)
	dir := containerDir(t, s)
	_, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{Image: host + "/no/such:image", Dir: dir})
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Provision: got %v, want an error wrapping api.ErrNotFound", err)
	}
}

// TestProvisionLayers checks whiteouts, opaque directories and a layer
// that comes twice, through a real overlay.
func TestProvisionLayers(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := testutil.BusyboxRootfs(t)
	base := imagetest.LayerTar(t, bb)
	top := makeTar(t,
		ent{name: "bin/.wh.sh", typ: tar.TypeReg},
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "etc/.wh..wh..opq", typ: tar.TypeReg},
		ent{name: "etc/passwd", typ: tar.TypeReg, body: "root:x:0:0::/:/bin/sh\n"},
		ent{name: "added", typ: tar.TypeReg, body: "top"},
	)
	dup := makeTar(t, ent{name: "dup", typ: tar.TypeReg, body: "dup"})
	img := imagetest.ImageFromLayers(t, imagetest.Config{}, true, dup, base, top, dup)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layoutDir, "layers", img)

	s := newStore(t)
	dir := containerDir(t, s)
	rfs := provision(t, s, &containerizer.ProvisionRequest{Image: "oci:" + layoutDir + ":layers", Dir: dir})
	for p, want := range map[string]bool{
		"bin/busybox": true, "bin/sh": false, "bin/ls": true,
		"etc/passwd": true, "etc/group": false, "added": true, "dup": true,
	} {
		if got := exists(filepath.Join(rfs.Path, p)); got != want {
			t.Errorf("%s exists: %v, want %v", p, got, want)
		}
	}
	if data, err := os.ReadFile(filepath.Join(rfs.Path, "etc/passwd")); err != nil || !bytes.HasPrefix(data, []byte("root:x:0:0::/")) {
		t.Errorf("etc/passwd: %q, %v; want the top layer's", data, err)
	}
	if n := len(layerDirs(t, s)); n != 3 {
		t.Errorf("layers in the cache: %d, want 3", n)
	}
	release(t, s, dir)
}

func TestProvisionEmptyImage(t *testing.T) {
	testutil.RequiresRoot(t)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layoutDir, "empty", imagetest.ImageFromLayers(t, imagetest.Config{Cmd: []string{"true"}}, true))
	s := newStore(t)
	dir := containerDir(t, s)
	rfs := provision(t, s, &containerizer.ProvisionRequest{Image: "oci:" + layoutDir, Dir: dir})
	entries, err := os.ReadDir(rfs.Path)
	if err != nil || len(entries) != 0 {
		t.Errorf("root filesystem of an empty image: %v, %v", entries, err)
	}
	release(t, s, dir)
}

// TestProvisionBadLayer checks that a refused layer leaves nothing: no
// mount, no directories, no partial layer.
func TestProvisionBadLayer(t *testing.T) {
	testutil.RequiresRoot(t)
	good := makeTar(t, ent{name: "ok", typ: tar.TypeReg, body: "ok"})
	bad := makeTar(t,
		ent{name: "a", typ: tar.TypeSymlink, link: "/etc"},
		ent{name: "a/caisson-test-escape", typ: tar.TypeReg, body: "x"},
	)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	imagetest.WriteLayout(t, layoutDir, "bad", imagetest.ImageFromLayers(t, imagetest.Config{}, true, good, bad))

	s := newStore(t)
	dir := containerDir(t, s)
	_, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{Image: "oci:" + layoutDir, Dir: dir})
	if !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("Provision: got %v, want an error wrapping api.ErrInvalid", err)
	}
	t.Logf("error: %v", err)
	if exists("/etc/caisson-test-escape") {
		t.Errorf("the layer wrote /etc/caisson-test-escape")
	}
	if left := mountedUnder(t, dir); len(left) > 0 {
		t.Errorf("mounted after a failed Provision: %v", left)
	}
	for _, n := range []string{"rootfs", "upper", "work"} {
		if exists(filepath.Join(dir, n)) {
			t.Errorf("%s left behind", n)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(s.root, "tmp")); len(entries) != 0 {
		t.Errorf("partial layers left behind: %v", entries)
	}
	// The good layer may be cached (layers are unpacked topmost first, so
	// here it is not); the bad one never is.
	for _, d := range layerDirs(t, s) {
		if exists(filepath.Join(d, "a")) {
			t.Errorf("the refused layer is in the cache at %s", d)
		}
	}
}

// TestProvisionConcurrent provisions one image many times at once from two
// Stores sharing a root, as two processes would: the layer is unpacked once.
func TestProvisionConcurrent(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := testutil.BusyboxRootfs(t)
	ref := imagetest.OCILayout(t, bb, imagetest.Config{})
	root := filepath.Join(t.TempDir(), "images")
	var stores []*Store
	for range 2 {
		s, err := New(Config{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	const n = 6
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = containerDir(t, stores[i%2])
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = stores[i%2].Provision(context.Background(), &containerizer.ProvisionRequest{
				ContainerID: fmt.Sprint(i), Image: ref, Dir: dirs[i],
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Provision %d: %v", i, err)
		}
	}
	if got := stores[0].extractions.Load() + stores[1].extractions.Load(); got != 1 {
		t.Errorf("layers unpacked: %d, want 1", got)
	}
	for i, d := range dirs {
		if !exists(filepath.Join(d, "rootfs/bin/busybox")) {
			t.Errorf("container %d has no bin/busybox", i)
		}
		release(t, stores[i%2], d)
	}
}

// TestProvisionThroughSymlink names the container directory through a
// symbolic link: Release must still find and unmount the overlay.
func TestProvisionThroughSymlink(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	bb := testutil.BusyboxRootfs(t)
	real := containerDir(t, s)
	if err := os.MkdirAll(real, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	symlink(t, real, link)
	rfs := provision(t, s, &containerizer.ProvisionRequest{Rootfs: bb, Dir: link})
	if !exists(filepath.Join(rfs.Path, "bin/busybox")) {
		t.Errorf("bin/busybox is not in the root filesystem")
	}
	release(t, s, link)
	if left := mountedUnder(t, real); len(left) > 0 {
		t.Errorf("mounted after Release: %v", left)
	}
	if !exists(filepath.Join(bb, "bin/busybox")) {
		t.Errorf("Release reached into the user's directory")
	}
}

// Unmount leaves no mount and keeps the container's writes, twice over;
// Release removes them afterwards.
func TestUnmountKeepsFiles(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	for _, tc := range []struct {
		name string
		req  containerizer.ProvisionRequest
	}{
		{"directory", containerizer.ProvisionRequest{ContainerID: "c1", Rootfs: testutil.BusyboxRootfs(t)}},
		{"host", containerizer.ProvisionRequest{ContainerID: "c2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := containerDir(t, s)
			req := tc.req
			req.Dir = dir
			rfs := provision(t, s, &req)
			writeFile(t, filepath.Join(rfs.Path, "new"), "written")
			for i := 0; i < 2; i++ {
				if err := s.Unmount(context.Background(), dir); err != nil {
					t.Fatalf("Unmount #%d: %v", i+1, err)
				}
				if left := mountedUnder(t, dir); len(left) > 0 {
					t.Fatalf("mounted after Unmount: %v", left)
				}
			}
			written := filepath.Join(dir, "upper", "new")
			if tc.name == "host" {
				written = filepath.Join(dir, "rootfs", "new")
			}
			if b, err := os.ReadFile(written); err != nil || string(b) != "written" {
				t.Errorf("the container's write after Unmount: %q, %v", b, err)
			}
			release(t, s, dir)
		})
	}
}
