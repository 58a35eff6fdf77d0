//go:build linux

package safefile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// hostileRoot makes a root directory holding every kind of file an image
// can put where a regular file is expected. Device nodes need root.
func hostileRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc/dir"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/regular"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644))
	must(unix.Mkfifo(filepath.Join(root, "etc/fifo"), 0o644))
	sparse, err := os.Create(filepath.Join(root, "etc/sparse"))
	must(err)
	must(sparse.Truncate(1 << 40))
	must(sparse.Close())
	// Links that would reach the host's files if followed naively.
	must(os.Symlink("/etc/hostname", filepath.Join(root, "etc/abs-host")))
	must(os.Symlink("../../../../../../../../etc/hostname", filepath.Join(root, "etc/rel-host")))
	must(os.Symlink("/etc/regular", filepath.Join(root, "etc/abs-in-root")))
	must(os.Symlink("fifo", filepath.Join(root, "etc/to-fifo")))
	must(os.Symlink("loop", filepath.Join(root, "etc/loop")))
	l, err := net.Listen("unix", filepath.Join(root, "etc/socket"))
	must(err)
	t.Cleanup(func() { l.Close() })
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(root, "etc/zero"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))))
		must(unix.Mknod(filepath.Join(root, "etc/tty"), unix.S_IFCHR|0o644, int(unix.Mkdev(5, 0))))
		must(unix.Mknod(filepath.Join(root, "etc/block"), unix.S_IFBLK|0o644, int(unix.Mkdev(7, 0))))
		must(os.Symlink("zero", filepath.Join(root, "etc/to-zero")))
	}
	return root
}

func TestReadFileInRoot(t *testing.T) {
	root := hostileRoot(t)
	tests := []struct {
		name    string
		want    string
		wantErr error
		root    bool
	}{
		{name: "etc/regular", want: "root:x:0:0::/:/bin/sh\n"},
		{name: "/etc/regular", want: "root:x:0:0::/:/bin/sh\n"},
		{name: "../../etc/regular", want: "root:x:0:0::/:/bin/sh\n"},
		{name: "etc/abs-in-root", want: "root:x:0:0::/:/bin/sh\n"},
		{name: "etc/dir", wantErr: api.ErrInvalid},
		{name: "etc/fifo", wantErr: api.ErrInvalid},
		{name: "etc/to-fifo", wantErr: api.ErrInvalid},
		{name: "etc/socket", wantErr: api.ErrInvalid},
		{name: "etc/sparse", wantErr: api.ErrTooLarge},
		{name: "etc/abs-host", wantErr: fs.ErrNotExist},
		{name: "etc/rel-host", wantErr: fs.ErrNotExist},
		{name: "etc/missing", wantErr: fs.ErrNotExist},
		{name: "etc/loop", wantErr: unix.ELOOP},
		{name: "etc/zero", wantErr: api.ErrInvalid, root: true},
		{name: "etc/to-zero", wantErr: api.ErrInvalid, root: true},
		{name: "etc/tty", wantErr: api.ErrInvalid, root: true},
		{name: "etc/block", wantErr: api.ErrInvalid, root: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testutil.RequiresRoot(t)
			}
			got, err := ReadFileInRoot(root, tt.name, 1<<20)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReadFileInRoot(%s): got %q, %v; want an error wrapping %v", tt.name, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("ReadFileInRoot(%s) (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	root := hostileRoot(t)
	tests := []struct {
		name    string
		limit   int64
		wantErr error
		root    bool
	}{
		{name: "etc/regular", limit: 1 << 20},
		{name: "etc/abs-in-root", wantErr: fs.ErrNotExist},
		{name: "etc/regular", limit: 4, wantErr: api.ErrTooLarge},
		{name: "etc/fifo", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/to-fifo", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/dir", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/sparse", limit: 1 << 20, wantErr: api.ErrTooLarge},
		{name: "etc/zero", limit: 1 << 20, wantErr: api.ErrInvalid, root: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testutil.RequiresRoot(t)
			}
			_, err := ReadFile(filepath.Join(root, tt.name), tt.limit)
			if tt.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadFile(%s): got %v, want an error wrapping %v", tt.name, err, tt.wantErr)
			}
		})
	}
}
