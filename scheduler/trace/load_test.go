package trace

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/internal/userfile"
)

// TestLoadInputs loads node and pod lists from each kind of input:
// anything that can be read is read, never more than the limit.
func TestLoadInputs(t *testing.T) {
	const limit = 64 << 10
	type loader func(string) (int, error)
	loaders := map[string]struct {
		load      loader
		head, row string
	}{
		"nodes": {func(p string) (int, error) { n, err := LoadNodes(p); return len(n), err }, nodeHeader, nodeRow},
		"pods":  {func(p string) (int, error) { n, err := LoadPods(p); return len(n), err }, podHeader, podRow},
	}
	for what, l := range loaders {
		good := rows(l.head, l.row, 3, 0, "")
		for _, tc := range []struct {
			name  string
			path  func(t *testing.T, dir string) string
			limit int64 // of the *userfile.LimitError; 0: none
			err   error
		}{
			{name: "FIFO", path: func(t *testing.T, dir string) string { return testutil.FIFO(t, dir, good, false) }},
			{name: "/dev/zero", path: func(*testing.T, string) string { return "/dev/zero" }, limit: limit, err: api.ErrInvalid},
			{name: "FIFO of an endless line", path: func(t *testing.T, dir string) string {
				return testutil.FIFO(t, dir, "sn,", true)
			}, limit: limit, err: api.ErrInvalid},
			{name: "file above the limit", path: func(t *testing.T, dir string) string {
				return writeTemp(t, dir, rows(l.head, l.row, limit/len(l.row)+1, 0, ""), 0)
			}, limit: limit, err: api.ErrInvalid},
			{name: "sparse file above MaxFileBytes", path: func(t *testing.T, dir string) string {
				return writeTemp(t, dir, good, MaxFileBytes+1)
			}, limit: MaxFileBytes, err: api.ErrInvalid},
			{name: "directory", path: func(_ *testing.T, dir string) string { return dir }, err: api.ErrInvalid},
		} {
			t.Run(what+" "+tc.name, func(t *testing.T) {
				old := maxFileBytes
				maxFileBytes = limit
				if tc.limit == MaxFileBytes {
					maxFileBytes = MaxFileBytes
				}
				t.Cleanup(func() { maxFileBytes = old })
				n, err := l.load(tc.path(t, t.TempDir()))
				var le *userfile.LimitError
				switch {
				case tc.err == nil && (err != nil || n != 3):
					t.Fatalf("loaded %d rows, %v; want 3", n, err)
				case !errors.Is(err, tc.err):
					t.Fatalf("got %v, want %v", err, tc.err)
				case errors.As(err, &le) != (tc.limit > 0) || le != nil && le.Limit != tc.limit:
					t.Errorf("got %v, want a limit of %d bytes", err, tc.limit)
				}
			})
		}
	}
}

// writeTemp writes content to a file in dir, extended to size (sparse)
// when size is above zero.
func writeTemp(t *testing.T, dir, content string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "list.csv")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if size > 0 {
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
	return p
}
