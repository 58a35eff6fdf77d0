package driver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/mountinfo"
	"github.com/caisson/caisson/internal/testutil"
)

func openDriver(t *testing.T, root string, allow ...string) *Driver {
	t.Helper()
	d, err := New(Config{Root: root, Logger: testutil.Logger(t), BindAllow: allow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(); unmountUnder(t, d.root) })
	return d
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBindAllowList: bind volumes are refused unless the admin allows their
// directory; what is allowed excludes the plugin root, what is inside it
// and what holds it, under any name (symlink, "..", bind mount).
func TestBindAllowList(t *testing.T) {
	testutil.RequiresRoot(t)
	allowed := t.TempDir()
	root := filepath.Join(allowed, "plugin")
	mkdirs(t, filepath.Join(allowed, "ok", "sub"), root)
	for link, to := range map[string]string{"etc": "/etc", "root": root, "ok-link": filepath.Join(allowed, "ok")} {
		if err := os.Symlink(to, filepath.Join(allowed, link)); err != nil {
			t.Fatal(err)
		}
	}
	// Another name for the plugin's volumes, by a bind mount.
	alias := filepath.Join(allowed, "alias")
	mkdirs(t, alias, filepath.Join(root, "volumes"))
	if err := unix.Mount(filepath.Join(root, "volumes"), alias, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(alias, unix.MNT_DETACH) })

	none := openDriver(t, t.TempDir())
	for _, p := range []string{filepath.Join(allowed, "ok"), "/etc", "/"} {
		err := none.Create(&volume.CreateRequest{Name: "b", Options: map[string]string{"type": "bind", "path": p}})
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("with no bind directory allowed, Create(path=%s) = %v, want api.ErrInvalid", p, err)
		}
	}

	d := openDriver(t, root, allowed)
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{filepath.Join(allowed, "ok"), true},
		{filepath.Join(allowed, "ok", "sub"), true},
		{filepath.Join(allowed, "ok-link", "sub"), true},
		{"/etc", false},
		{"/", false},
		{filepath.Join(allowed, "etc"), false},
		{filepath.Join(allowed, "ok", "..", ".."), false},
		{allowed, false}, // holds the root
		{root, false},
		{filepath.Join(allowed, "root"), false},
		{filepath.Join(root, "volumes"), false},
		{alias, false},
		{filepath.Join(allowed, "missing"), false},
	} {
		err := d.Create(&volume.CreateRequest{Name: "b", Options: map[string]string{"type": "bind", "path": tc.path}})
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, api.ErrInvalid)) {
			t.Errorf("Create(path=%s) = %v, want ok %v", tc.path, err, tc.ok)
		} else if err != nil {
			t.Logf("Create(path=%s): %v", tc.path, err)
		}
		if err == nil {
			if err := d.Remove(&volume.RemoveRequest{Name: "b"}); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, allow := range [][]string{{"relative"}, {filepath.Join(allowed, "missing")}, {filepath.Join(root, "volumes")}} {
		_ = d.Close()
		if _, err := New(Config{Root: root, BindAllow: allow}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("New with bind allow list %v = %v, want api.ErrInvalid", allow, err)
		}
	}
}

// TestBindMountChecks: a bind volume's path is opened again at every
// Mount without following symlinks, and checked against the allow list of
// the plugin as it runs now; what containers get is the directory checked,
// bind-mounted under the plugin root, not recursively.
func TestBindMountChecks(t *testing.T) {
	testutil.RequiresRoot(t)
	allowed := t.TempDir()
	root := t.TempDir()
	d := openDriver(t, root, allowed)
	secret := filepath.Join(root, "state.json")

	for _, swap := range []struct {
		name string
		// do replaces (part of) the volume's path dir after Create.
		do func(t *testing.T, dir string)
	}{
		{"dir becomes a symlink to the plugin root", func(t *testing.T, dir string) {
			replaceWithLink(t, dir, root)
		}},
		{"dir becomes a symlink to /etc", func(t *testing.T, dir string) {
			replaceWithLink(t, dir, "/etc")
		}},
		{"a parent becomes a symlink", func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "p")
			mkdirs(t, filepath.Join(other, "x"))
			replaceWithLink(t, filepath.Dir(dir), other)
		}},
	} {
		t.Run(swap.name, func(t *testing.T) {
			dir := filepath.Join(allowed, swap.name, "p", "x")
			mkdirs(t, dir)
			if err := os.WriteFile(filepath.Join(dir, "mine"), []byte("data"), 0o644); err != nil {
				t.Fatal(err)
			}
			mp := mustCreate(t, d, "b", map[string]string{"type": "bind", "path": dir})
			if !isMounted(t, mp) || filepath.Dir(filepath.Dir(mp)) != filepath.Join(d.root, "volumes") {
				t.Errorf("Mountpoint %s: want a mount under the plugin root", mp)
			}
			// Swapped while a container uses it: the container keeps the
			// directory it had; a new Mount is refused.
			swap.do(t, dir)
			if b, err := os.ReadFile(filepath.Join(mp, "mine")); err != nil || string(b) != "data" {
				t.Errorf("mounted volume after the swap: %q, %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(mp, "state.json")); err == nil {
				t.Errorf("the plugin's state is visible in the volume")
			}
			if _, err := d.Mount(&volume.MountRequest{Name: "b", ID: "c2"}); !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Mount after the swap = %v, want api.ErrInvalid", err)
			}
			// Unmounted, then mounted again: refused, nothing mounted.
			mustUnmount(t, d, "b", "c1")
			r, err := d.Mount(&volume.MountRequest{Name: "b", ID: "c3"})
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("Mount after the swap = %v, %v, want api.ErrInvalid", r, err)
			}
			if isMounted(t, mp) {
				t.Errorf("%s mounted after a refused Mount", mp)
			}
			if err := d.Remove(&volume.RemoveRequest{Name: "b"}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(secret); err != nil {
				t.Errorf("plugin state after Remove: %v", err)
			}
		})
	}

	t.Run("not recursive", func(t *testing.T) {
		dir := filepath.Join(allowed, "rec")
		inner := filepath.Join(dir, "inner")
		mkdirs(t, inner)
		if err := unix.Mount("tmpfs", inner, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(inner, unix.MNT_DETACH) })
		if err := os.WriteFile(filepath.Join(inner, "hidden"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		mp := mustCreate(t, d, "r", map[string]string{"type": "bind", "path": dir})
		if _, err := os.Stat(filepath.Join(mp, "inner", "hidden")); err == nil {
			t.Error("a mount below the bind directory is exposed")
		}
		mustUnmount(t, d, "r", "c1")
		if err := d.Remove(&volume.RemoveRequest{Name: "r"}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("allow list changed", func(t *testing.T) {
		dir := filepath.Join(allowed, "later")
		mkdirs(t, dir)
		mustCreate(t, d, "l", map[string]string{"type": "bind", "path": dir})
		mustUnmount(t, d, "l", "c1")
		_ = d.Close()
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("host data"), 0o644); err != nil {
			t.Fatal(err)
		}
		d2 := openDriver(t, root, t.TempDir())
		if _, err := d2.Mount(&volume.MountRequest{Name: "l", ID: "c1"}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Mount of a directory no longer allowed = %v, want api.ErrInvalid", err)
		}
		// Still listed and removable, its directory untouched.
		if _, err := d2.Get(&volume.GetRequest{Name: "l"}); err != nil {
			t.Errorf("Get of a bind volume no longer allowed: %v", err)
		}
		if err := d2.Remove(&volume.RemoveRequest{Name: "l"}); err != nil {
			t.Errorf("Remove of a bind volume no longer allowed: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "host data" {
			t.Errorf("the host directory of a removed bind volume: %q, %v", b, err)
		}
	})
}

// replaceWithLink moves dir aside and puts a symlink to target in its place.
func replaceWithLink(t *testing.T, dir, target string) {
	t.Helper()
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
}

func isMounted(t *testing.T, path string) bool {
	t.Helper()
	ms, err := mountinfo.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	return mountinfo.IsMountPoint(ms, path)
}
