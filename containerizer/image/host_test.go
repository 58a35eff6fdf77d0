package image

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func tmpfsMask(p string) specs.Mount {
	return specs.Mount{Destination: p, Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec", "size=4k", "mode=755"}}
}

// TestProvisionHostFake provisions the host mode against a made-up host
// tree, so that the whole list of mounts is known.
func TestProvisionHostFake(t *testing.T) {
	host := t.TempDir()
	mkdirs(t, host, "usr/bin", "etc", "var/lib/caisson", "run/caisson", "proc", "sys", "dev", "tmp",
		"lost+found", "mnt/data", "mnt/sandbox", "home/user")
	symlink(t, "usr/bin", filepath.Join(host, "bin"))
	symlink(t, "data", filepath.Join(host, "mnt/link"))
	writeFile(t, filepath.Join(host, "file.txt"), "not shown")
	writeFile(t, filepath.Join(host, "mnt/file"), "not shown")
	// A hidden path reached through a symbolic link is hidden where it is.
	symlink(t, "var/lib/caisson", filepath.Join(host, "state"))

	s, err := New(Config{
		Root: filepath.Join(host, "var/lib/caisson/images"),
		HideHostPaths: []string{
			filepath.Join(host, "state"),            // /var/lib/caisson, holding Root
			filepath.Join(host, "run/caisson"),      // in /run: private anyway
			filepath.Join(host, "etc/missing"),      // nothing to hide
			filepath.Join(host, "home/user"),        // hidden too
			filepath.Join(t.TempDir(), "elsewhere"), // not in the host tree
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.hostRoot = host
	dir := filepath.Join(t.TempDir(), "container")
	req := &containerizer.ProvisionRequest{ContainerID: "c1", Dir: dir}
	rfs, err := s.Provision(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Release(context.Background(), dir) })

	want := &containerizer.Rootfs{
		Path:     filepath.Join(dir, "rootfs"),
		Readonly: true,
		Mounts: []specs.Mount{
			bindRO(filepath.Join(host, "etc"), "/etc"),
			bindRO(filepath.Join(host, "home"), "/home"),
			bindRO(filepath.Join(host, "usr"), "/usr"),
			bindRO(filepath.Join(host, "var"), "/var"),
			bindRO(filepath.Join(host, "mnt/data"), "/mnt/data"),
			{Destination: "/mnt/sandbox", Type: "bind", Source: filepath.Join(dir, "sandbox"), Options: []string{"rbind", "rw", "rprivate"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
			{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755"}},
			tmpfsMask("/home/user"),
			tmpfsMask("/var/lib/caisson"),
		},
		Config: containerizer.ImageConfig{WorkingDir: "/mnt/sandbox", Env: []string{"CAISSON_SANDBOX=/mnt/sandbox"}},
	}
	if diff := cmp.Diff(want, rfs); diff != "" {
		t.Errorf("Provision (-want +got):\n%s", diff)
	}

	// The root directory holds the symbolic links and the mount points.
	got := map[string]string{}
	err = filepath.WalkDir(rfs.Path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rfs.Path, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			got[rel] = "-> " + l
		case d.IsDir():
			got[rel] = "dir"
		default:
			got[rel] = d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantTree := map[string]string{
		".": "dir", "bin": "-> usr/bin", "state": "-> var/lib/caisson",
		"etc": "dir", "home": "dir", "usr": "dir", "var": "dir",
		"proc": "dir", "sys": "dir", "dev": "dir", "run": "dir", "tmp": "dir",
		"mnt": "dir", "mnt/data": "dir", "mnt/link": "-> data", "mnt/sandbox": "dir",
	}
	if diff := cmp.Diff(wantTree, got); diff != "" {
		t.Errorf("root directory (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sandbox")); err != nil || !fi.IsDir() {
		t.Errorf("sandbox: %v", err)
	}

	if err := s.Release(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"rootfs", "sandbox"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Release: %v", n, err)
		}
	}
	if err := s.Release(context.Background(), dir); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

// TestProvisionHost provisions the host mode against this host.
func TestProvisionHost(t *testing.T) {
	s, err := New(Config{Root: filepath.Join(t.TempDir(), "images"), HideHostPaths: []string{"/usr/share", "/proc/self"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "container")
	rfs, err := s.Provision(context.Background(), &containerizer.ProvisionRequest{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Release(context.Background(), dir) })

	if !rfs.Readonly || rfs.Path != filepath.Join(dir, "rootfs") {
		t.Errorf("Rootfs: got Path %s, Readonly %v", rfs.Path, rfs.Readonly)
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if slices.Contains(hostPrivate, name) {
			continue
		}
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			want, _ := os.Readlink("/" + name)
			if got, err := os.Readlink(filepath.Join(rfs.Path, name)); err != nil || got != want {
				t.Errorf("symlink %s: got %q (%v), want %q", name, got, err, want)
			}
		case e.IsDir():
			if !slices.ContainsFunc(rfs.Mounts, func(m specs.Mount) bool {
				return cmp.Equal(m, bindRO("/"+name, "/"+name))
			}) {
				t.Errorf("no read-only bind mount of /%s in %v", name, rfs.Mounts)
			}
			if fi, err := os.Lstat(filepath.Join(rfs.Path, name)); err != nil || !fi.IsDir() {
				t.Errorf("no mount point for /%s: %v", name, err)
			}
		}
	}
	var masks []string
	for _, m := range rfs.Mounts {
		if m.Type == "tmpfs" && slices.Contains(m.Options, "ro") {
			masks = append(masks, m.Destination)
		}
	}
	if _, err := os.Stat("/usr/share"); err == nil {
		if diff := cmp.Diff([]string{"/usr/share"}, masks); diff != "" {
			t.Errorf("masks (-want +got):\n%s", diff)
		}
	}
	if err := s.Release(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(rfs.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rootfs after Release: %v", err)
	}
}

func TestProvisionInvalid(t *testing.T) {
	s, err := New(Config{Root: filepath.Join(t.TempDir(), "images")})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "x")
	busy := t.TempDir()
	tests := []struct {
		name    string
		req     *containerizer.ProvisionRequest
		wantErr error
	}{
		{name: "nil", req: nil, wantErr: api.ErrInvalid},
		{name: "no dir", req: &containerizer.ProvisionRequest{}, wantErr: api.ErrInvalid},
		{name: "relative dir", req: &containerizer.ProvisionRequest{Dir: "relative"}, wantErr: api.ErrInvalid},
		{name: "image and rootfs", req: &containerizer.ProvisionRequest{Dir: "/x", Image: "busybox", Rootfs: "/srv"}, wantErr: api.ErrInvalid},
		{name: "missing rootfs", req: &containerizer.ProvisionRequest{Rootfs: "/does/not/exist"}, wantErr: api.ErrNotFound},
		{name: "rootfs is a file", req: &containerizer.ProvisionRequest{Rootfs: file}, wantErr: api.ErrInvalid},
		{name: "rootfs is the host", req: &containerizer.ProvisionRequest{Rootfs: "/"}, wantErr: api.ErrInvalid},
		{name: "rootfs holds the dir", req: &containerizer.ProvisionRequest{Rootfs: busy, Dir: filepath.Join(busy, "c")}, wantErr: api.ErrInvalid},
		{name: "bad image", req: &containerizer.ProvisionRequest{Image: "Not/Valid"}, wantErr: api.ErrInvalid},
		{name: "bad platform", req: &containerizer.ProvisionRequest{Image: "oci:/nowhere", Platform: "linux"}, wantErr: api.ErrInvalid},
		{name: "missing layout", req: &containerizer.ProvisionRequest{Image: "oci:/does/not/exist"}, wantErr: api.ErrNotFound},
		{name: "missing archive", req: &containerizer.ProvisionRequest{Image: "docker-archive:/does/not/exist.tar"}, wantErr: api.ErrNotFound},
		{name: "archive is no archive", req: &containerizer.ProvisionRequest{Image: "docker-archive:" + file}, wantErr: api.ErrInvalid},
		{name: "layout is no layout", req: &containerizer.ProvisionRequest{Image: "oci:" + busy}, wantErr: api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.req != nil && tt.req.Dir == "" && tt.name != "no dir" {
				tt.req.Dir = filepath.Join(t.TempDir(), "container")
			}
			_, err := s.Provision(context.Background(), tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Provision: got %v, want an error wrapping %v", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
			if tt.req == nil || !filepath.IsAbs(tt.req.Dir) {
				return
			}
			for _, n := range []string{"rootfs", "upper", "work", "sandbox"} {
				if _, err := os.Lstat(filepath.Join(tt.req.Dir, n)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s left behind: %v", n, err)
				}
			}
		})
	}
}

func TestReleaseIdempotent(t *testing.T) {
	s, err := New(Config{Root: filepath.Join(t.TempDir(), "images")})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for range 2 {
		if err := s.Release(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Release(context.Background(), filepath.Join(dir, "never-made")); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(context.Background(), ""); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("Release(\"\"): got %v, want an error wrapping api.ErrInvalid", err)
	}
}
