package driver

import (
	"errors"
	"testing"

	"github.com/caisson/caisson/api"
)

// FuzzParseOptions: every option set is either refused with api.ErrInvalid
// or parsed into a volume a backend can build.
func FuzzParseOptions(f *testing.F) {
	f.Add("type", "loop", "size", "8m")
	f.Add("type", "bind", "path", "/tmp")
	f.Add("mode", "0750", "uid", "1000")
	f.Add("keep", "true", "fs", "xfs")
	root := f.TempDir()
	binds, err := newBindPolicy(root+"/plugin", []string{"/tmp"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		o, err := parseOptions(map[string]string{k1: v1, k2: v2}, binds)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("parseOptions error %v does not wrap api.ErrInvalid", err)
			}
			return
		}
		switch o.Type {
		case TypeDir, TypeTmpfs:
		case TypeLoop:
			if o.Size < loopFS[o.FS] {
				t.Fatalf("loop volume of %d bytes accepted (fs %q)", o.Size, o.FS)
			}
		case TypeBind:
			if o.Path == "" || !o.Keep {
				t.Fatalf("bind volume without a path or with data deletion: %+v", o)
			}
		default:
			t.Fatalf("type %q accepted", o.Type)
		}
		if o.Size < 0 || (o.Mode != nil && *o.Mode > 0o7777) {
			t.Fatalf("bad values accepted: %+v", o)
		}
	})
}
