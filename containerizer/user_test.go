package containerizer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// FuzzLookupUser parses random passwd and group files and resolves a
// random user against them: no panic, and what it finds is consistent.
func FuzzLookupUser(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"),
		[]byte("root:x:0:\napp:x:1000:\nextra:x:2000:app,other\n"), "app")
	f.Add([]byte("a:x:1:1::/:\n# comment\n\n::::::\n"), []byte("g:x:notanumber:a\ng:x:7:a\n"), "a:g")
	f.Add([]byte("x:x:4294967296:0::/:/bin/sh\n"), []byte(""), "4294967295:0")
	f.Add([]byte("\x00:\n:::\n"), []byte("::\n"), ":")
	f.Fuzz(func(t *testing.T, passwd, group []byte, spec string) {
		p, err := parseDB(passwd)
		if err != nil {
			return
		}
		g, err := parseDB(group)
		if err != nil {
			return
		}
		u, err := lookupUser(p, g, spec)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrNotFound) {
				t.Fatalf("lookupUser(%q): error %v wraps neither ErrInvalid nor ErrNotFound", spec, err)
			}
			return
		}
		if len(u.Additional) == 0 || u.Additional[0] != u.GID {
			t.Fatalf("lookupUser(%q) = %+v: the primary group must come first", spec, u)
		}
		userPart, groupPart, _ := strings.Cut(spec, ":")
		if id, ok := parseID(userPart); ok && id != u.UID {
			t.Fatalf("lookupUser(%q) = uid %d, want %d", spec, u.UID, id)
		}
		if id, ok := parseID(groupPart); ok && id != u.GID {
			t.Fatalf("lookupUser(%q) = gid %d, want %d", spec, u.GID, id)
		}
	})
}
