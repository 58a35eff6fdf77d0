package containerizer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func writeRootfsFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolveUser(t *testing.T) {
	root := writeRootfsFiles(t, map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nextra:x:2000:app,other\nwheel:x:10:app\n",
	})
	for _, tc := range []struct {
		in   string
		want execUser
	}{
		{"", execUser{UID: 0, GID: 0, Additional: []uint32{0}, Home: "/root"}},
		{"app", execUser{UID: 1000, GID: 1000, Additional: []uint32{1000, 2000, 10}, Home: "/home/app"}},
		{"1000", execUser{UID: 1000, GID: 1000, Additional: []uint32{1000, 2000, 10}, Home: "/home/app"}},
		{"app:extra", execUser{UID: 1000, GID: 2000, Additional: []uint32{2000}, Home: "/home/app"}},
		{"1000:55", execUser{UID: 1000, GID: 55, Additional: []uint32{55}, Home: "/home/app"}},
		{"4242", execUser{UID: 4242, GID: 0, Additional: []uint32{0}, Home: "/"}},
		{"4242:4242", execUser{UID: 4242, GID: 4242, Additional: []uint32{4242}, Home: "/"}},
	} {
		got, err := resolveUser(root, tc.in)
		if err != nil {
			t.Errorf("resolveUser(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, *got); diff != "" {
			t.Errorf("resolveUser(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"nosuch", api.ErrNotFound}, {"app:nogroup", api.ErrNotFound}, {":1", api.ErrInvalid}, {"app:", api.ErrInvalid},
	} {
		if _, err := resolveUser(root, tc.in); !errors.Is(err, tc.want) {
			t.Errorf("resolveUser(%q) = %v, want %v", tc.in, err, tc.want)
		}
	}
}

// An absolute symlink in the image must resolve inside the root filesystem,
// never to the host's /etc/passwd.
func TestResolveUserSymlinkStaysInRoot(t *testing.T) {
	root := writeRootfsFiles(t, map[string]string{
		"real/passwd": "evil:x:4000:4000::/evil:/bin/sh\n",
	})
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/real/passwd", filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	u, err := resolveUser(root, "evil")
	if err != nil || u.UID != 4000 {
		t.Fatalf("resolveUser through an in-root absolute symlink = %+v, %v; want uid 4000", u, err)
	}
	if _, err := resolveUser(root, "root"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("root must not be found through the host's passwd: %v", err)
	}
}
