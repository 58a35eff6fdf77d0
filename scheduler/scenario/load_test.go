package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/internal/userfile"
)

// TestLoadInputs loads a scenario from each kind of input: anything that
// can be read is read, never more than the limit.
func TestLoadInputs(t *testing.T) {
	small, err := os.ReadFile("../../examples/sim-small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 64 << 10
	for _, tc := range []struct {
		name  string
		path  func(t *testing.T, dir string) string
		limit int64 // the *LimitError's, or 0 for none
		err   error
	}{
		{name: "regular file", path: func(*testing.T, string) string { return "../../examples/sim-small.yaml" }},
		{name: "FIFO", path: func(t *testing.T, dir string) string { return testutil.FIFO(t, dir, string(small), false) }},
		{name: "/dev/zero", path: func(*testing.T, string) string { return "/dev/zero" }, limit: limit, err: api.ErrInvalid},
		{name: "endless FIFO", path: func(t *testing.T, dir string) string {
			return testutil.FIFO(t, dir, "# a comment, forever\n", true)
		}, limit: limit, err: api.ErrInvalid},
		{name: "file above the limit", path: func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "big.yaml")
			content := string(small) + strings.Repeat("# padding\n", limit/10)
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, limit: limit, err: api.ErrInvalid},
		{name: "directory", path: func(_ *testing.T, dir string) string { return dir }, err: api.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lowerLimit(t, limit)
			s, err := Load(tc.path(t, t.TempDir()))
			checkLoad(t, err, tc.err, tc.limit)
			if tc.err == nil && len(s.Sessions) != 3 {
				t.Errorf("loaded %d sessions, want 3", len(s.Sessions))
			}
		})
	}
	// A sparse file above the real limit is refused before it is read.
	t.Run("sparse file above MaxFileBytes", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "sparse.yaml")
		if err := os.WriteFile(p, small, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, MaxFileBytes+1); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		checkLoad(t, err, api.ErrInvalid, MaxFileBytes)
	})
}

func lowerLimit(t *testing.T, n int64) {
	old := maxFileBytes
	maxFileBytes = n
	t.Cleanup(func() { maxFileBytes = old })
}

// checkLoad checks an error against want, and a *userfile.LimitError of
// limit bytes (none at 0).
func checkLoad(t *testing.T, err, want error, limit int64) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	var le *userfile.LimitError
	if got := errors.As(err, &le); got != (limit > 0) || got && le.Limit != limit {
		t.Errorf("got %v, want a limit of %d bytes", err, limit)
	}
}

// TestPortOverlap checks that an agent's overlapping port ranges are
// refused naming both, as --resources refuses them.
func TestPortOverlap(t *testing.T) {
	for ranges, want := range map[string]api.PortOverlapError{
		"[31000-31010, 31005-31020]": {First: api.PortRange{Begin: 31000, End: 31010}, Second: api.PortRange{Begin: 31005, End: 31020}},
		"[80, 90-100, 100-110]":      {First: api.PortRange{Begin: 90, End: 100}, Second: api.PortRange{Begin: 100, End: 110}},
		"[8080, 8080]":               {First: api.PortRange{Begin: 8080, End: 8080}, Second: api.PortRange{Begin: 8080, End: 8080}},
	} {
		file := "version: 1\nagents:\n  - name: a\n    cpus: 1\n    memory: 1Gi\n    port_ranges: " + ranges + "\nconsumers: [{name: c}]\n"
		_, err := Parse("ports.yaml", []byte(file))
		var got *api.PortOverlapError
		if !errors.As(err, &got) {
			t.Errorf("%s: %v, want an *api.PortOverlapError", ranges, err)
			continue
		}
		if diff := cmp.Diff(want, *got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", ranges, diff)
		}
	}
}
