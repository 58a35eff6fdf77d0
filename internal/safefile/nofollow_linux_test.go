//go:build linux

package safefile

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// TestReadFileNoFollow: only a regular file is read, of at most the limit;
// a symbolic link is refused, even to a regular file, and nothing blocks.
func TestReadFileNoFollow(t *testing.T) {
	root := hostileRoot(t)
	tests := []struct {
		name    string
		limit   int64
		want    string
		wantErr error
		root    bool
	}{
		{name: "etc/regular", limit: 1 << 20, want: "root:x:0:0::/:/bin/sh\n"},
		{name: "etc/regular", limit: 4, wantErr: api.ErrTooLarge},
		{name: "etc/sparse", limit: 1 << 20, wantErr: api.ErrTooLarge},
		{name: "etc/abs-in-root", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/abs-host", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/to-fifo", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/loop", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/fifo", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/dir", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/socket", limit: 1 << 20, wantErr: api.ErrInvalid},
		{name: "etc/missing", limit: 1 << 20, wantErr: fs.ErrNotExist},
		{name: "etc/zero", limit: 1 << 20, wantErr: api.ErrInvalid, root: true},
		{name: "etc/to-zero", limit: 1 << 20, wantErr: api.ErrInvalid, root: true},
		{name: "etc/block", limit: 1 << 20, wantErr: api.ErrInvalid, root: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testutil.RequiresRoot(t)
			}
			got, err := ReadFileNoFollow(filepath.Join(root, tt.name), tt.limit)
			if tt.wantErr == nil {
				if err != nil || string(got) != tt.want {
					t.Fatalf("ReadFileNoFollow(%s) = %q, %v; want %q", tt.name, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadFileNoFollow(%s): got %q, %v; want an error wrapping %v", tt.name, got, err, tt.wantErr)
			}
		})
	}
}
