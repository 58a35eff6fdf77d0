//go:build linux

package containerizer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// TestResolveUserHostileFiles puts in place of the image's passwd and group
// files what a hostile image can: each must be refused (or, for links
// that leave the image, not found) without blocking or reading without
// end.
func TestResolveUserHostileFiles(t *testing.T) {
	const passwd = "root:x:0:0:root:/root:/bin/sh\n"
	tests := []struct {
		name string
		// make puts something at path, inside root.
		make    func(t *testing.T, root, path string)
		user    string
		wantErr error
		// wantID, checked when there is no error, is the uid for passwd
		// and the gid for group.
		wantID uint32
		root   bool
	}{
		{name: "fifo", make: func(t *testing.T, _, p string) { must(t, unix.Mkfifo(p, 0o644)) }, wantErr: api.ErrInvalid},
		{name: "link to a fifo", make: func(t *testing.T, root, p string) {
			must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
			must(t, os.Symlink("/fifo", p))
		}, wantErr: api.ErrInvalid},
		{name: "directory", make: func(t *testing.T, _, p string) { must(t, os.Mkdir(p, 0o755)) }, wantErr: api.ErrInvalid},
		{name: "socket", make: func(t *testing.T, _, p string) {
			must(t, unix.Mknod(p, unix.S_IFSOCK|0o644, 0))
		}, wantErr: api.ErrInvalid},
		{name: "dev zero", make: func(t *testing.T, _, p string) {
			must(t, unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
		}, wantErr: api.ErrInvalid, root: true},
		{name: "dev urandom", make: func(t *testing.T, _, p string) {
			must(t, unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 9))))
		}, wantErr: api.ErrInvalid, root: true},
		{name: "block device", make: func(t *testing.T, _, p string) {
			must(t, unix.Mknod(p, unix.S_IFBLK|0o644, int(unix.Mkdev(7, 0))))
		}, wantErr: api.ErrInvalid, root: true},
		{name: "huge sparse file", make: func(t *testing.T, _, p string) {
			f, err := os.Create(p)
			must(t, err)
			must(t, f.Truncate(1<<40))
			must(t, f.Close())
		}, wantErr: api.ErrTooLarge},
		{name: "just over the limit", make: func(t *testing.T, _, p string) {
			data := make([]byte, maxDBFile+1)
			for i := range data {
				data[i] = '\n'
			}
			copy(data, passwd)
			must(t, os.WriteFile(p, data, 0o644))
		}, wantErr: api.ErrTooLarge},
		{name: "at the limit", make: func(t *testing.T, _, p string) {
			data := make([]byte, maxDBFile)
			for i := range data {
				data[i] = '\n'
			}
			copy(data, "app:x:1000:1000::/:/bin/sh\n")
			must(t, os.WriteFile(p, data, 0o644))
		}, user: "app", wantID: 1000},
		// Links to the host's files resolve inside the image, where there
		// is nothing: root is not found by name, a number still works.
		{name: "absolute link to the host", make: func(t *testing.T, _, p string) {
			must(t, os.Symlink("/etc/hostname", p))
		}, user: "root", wantErr: api.ErrNotFound},
		{name: "relative link to the host", make: func(t *testing.T, _, p string) {
			must(t, os.Symlink("../../../../../../../../../../etc/hostname", p))
		}, user: "root", wantErr: api.ErrNotFound},
		{name: "link loop", make: func(t *testing.T, _, p string) { must(t, os.Symlink(filepath.Base(p), p)) }, wantErr: unix.ELOOP},
	}
	for _, file := range []string{"etc/passwd", "etc/group"} {
		for _, tt := range tests {
			t.Run(file+"/"+tt.name, func(t *testing.T) {
				if tt.root {
					testutil.RequiresRoot(t)
				}
				root := t.TempDir()
				must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
				if file == "etc/group" {
					must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644))
				}
				p := filepath.Join(root, file)
				tt.make(t, root, p)
				user := tt.user
				if file == "etc/group" {
					user = "0:" + user
					if tt.user == "" {
						user = "0"
					}
				}
				var (
					u   *execUser
					err error
				)
				testutil.NeverOpened(t, root, func() { u, err = resolveUser(root, user) })
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("resolveUser: got %+v, %v; want an error wrapping %v", u, err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got := u.UID
				if file == "etc/group" {
					got = u.GID
				}
				if got != tt.wantID {
					t.Errorf("%s: id %d, want %d", file, got, tt.wantID)
				}
			})
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
