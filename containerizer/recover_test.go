package containerizer

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

// Only what newID makes names a container: a directory under containers/
// with any other name (a short one, one in capitals, one a user made) is
// not listed, resolved, inspected, recovered, quarantined or removed, and
// what is in it stays.
func TestForeignDirectoriesAreNotContainers(t *testing.T) {
	upper := strings.ToUpper(testID)
	for _, name := range []string{"x", "0123456789ab", upper, testID + "0", "caisson-" + testID[:12]} {
		t.Run(name, func(t *testing.T) {
			e := newFakeEnv(t)
			e.plant(t, map[string]string{
				"containers/" + name + "/lock":           "",
				"containers/" + name + "/y":              "data",
				"containers/" + name + "/container.json": "garbage",
			})
			want := e.tree(t, "containers")
			ctx := context.Background()
			if err := e.c.Recover(ctx, true); err != nil {
				t.Errorf("Recover = %v", err)
			}
			list, err := e.c.List(ctx)
			if err != nil || len(list) != 0 {
				t.Errorf("List = %+v, %v; want nothing", list, err)
			}
			for _, ref := range []string{name, name[:1]} {
				if _, err := e.c.Resolve(ref); !errors.Is(err, api.ErrNotFound) {
					t.Errorf("Resolve(%q) = %v, want api.ErrNotFound", ref, err)
				}
			}
			if _, err := e.c.Inspect(ctx, name); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Inspect = %v, want api.ErrNotFound", err)
			}
			if err := e.c.Remove(ctx, name, true); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Remove = %v, want api.ErrNotFound", err)
			}
			if err := e.c.Kill(ctx, name, 9); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Kill = %v, want api.ErrNotFound", err)
			}
			if err := e.c.Update(ctx, name, api.Resources{CPUs: 1}); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Update = %v, want api.ErrNotFound", err)
			}
			if _, err := e.c.Wait(ctx, name); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Wait = %v, want api.ErrNotFound", err)
			}
			if diff := cmp.Diff(want, e.tree(t, "containers")); diff != "" {
				t.Errorf("the directory changed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShortID(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{testID, testID[:12]},
		{testID[:12], testID[:12]},
		{"x", "x"},
		{"", ""},
	} {
		if got := ShortID(tc.id); got != tc.want {
			t.Errorf("ShortID(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}
