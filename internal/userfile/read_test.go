package userfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
)

// TestReadFile reads each kind of input a user may name, with a limit of
// 16 bytes.
func TestReadFile(t *testing.T) {
	const limit = 16
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string
		want  string
		err   error // errors.Is
		limit bool  // a *LimitError
	}{
		{name: "small file", setup: func(t *testing.T, dir string) string {
			return file(t, dir, "0123456789")
		}, want: "0123456789"},
		{name: "file at the limit", setup: func(t *testing.T, dir string) string {
			return file(t, dir, strings.Repeat("x", limit))
		}, want: strings.Repeat("x", limit)},
		{name: "file one byte over", setup: func(t *testing.T, dir string) string {
			return file(t, dir, strings.Repeat("x", limit+1))
		}, err: api.ErrInvalid, limit: true},
		{name: "sparse file of a terabyte", setup: func(t *testing.T, dir string) string {
			p := file(t, dir, "")
			if err := os.Truncate(p, 1<<40); err != nil {
				t.Skipf("this filesystem holds no sparse terabyte: %v", err)
			}
			return p
		}, err: api.ErrInvalid, limit: true},
		{name: "/dev/zero", setup: func(*testing.T, string) string { return "/dev/zero" }, err: api.ErrInvalid, limit: true},
		{name: "/dev/null", setup: func(*testing.T, string) string { return "/dev/null" }, want: ""},
		{name: "FIFO with a small writer", setup: func(t *testing.T, dir string) string {
			return testutil.FIFO(t, dir, "through a pipe", false)
		}, want: "through a pipe"},
		{name: "FIFO with an endless writer", setup: func(t *testing.T, dir string) string {
			return testutil.FIFO(t, dir, "yyyy", true)
		}, err: api.ErrInvalid, limit: true},
		{name: "directory", setup: func(t *testing.T, dir string) string { return dir }, err: api.ErrInvalid},
		{name: "socket", setup: func(t *testing.T, dir string) string {
			return testutil.Socket(t, filepath.Join(dir, "sock"))
		}, err: api.ErrInvalid},
		{name: "missing", setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "nope") }, err: os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFile(tc.setup(t, t.TempDir()), limit)
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, string(got)); diff != "" {
					t.Errorf("content (-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			var le *LimitError
			if errors.As(err, &le) != tc.limit || tc.limit && le.Limit != limit {
				t.Errorf("got %#v, want a *LimitError (%v) of %d bytes", err, tc.limit, limit)
			}
		})
	}
}

// TestOpenStreams checks that the reader of a device gives limit bytes
// before it fails, so a streaming parser sees the data, then the error.
func TestOpenStreams(t *testing.T) {
	testutil.RequiresLinux(t)
	r, err := Open("/dev/zero", 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	var le *LimitError
	if n != 1000 || !errors.As(err, &le) {
		t.Errorf("read %d bytes, %v; want 1000 and a *LimitError", n, err)
	}
}

func file(t *testing.T, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "f")
	writeFile(t, p, content)
	return p
}
