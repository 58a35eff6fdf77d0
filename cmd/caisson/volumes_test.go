package main

import (
	"encoding/csv"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func TestParseMount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want api.VolumeMount
	}{
		{"type=volume,driver=cv,src=data,dst=/data", api.VolumeMount{Driver: "cv", Name: "data", Target: "/data"}},
		{"type=volume,volume-driver=vendor/p:1.0,source=d,target=/d,readonly,volume-opt=size=1g,volume-opt=type=loop",
			api.VolumeMount{Driver: "vendor/p:1.0", Name: "d", Target: "/d", ReadOnly: true, Options: map[string]string{"size": "1g", "type": "loop"}}},
		{"type=volume,driver=cv,src=d,dst=/d,ro=false", api.VolumeMount{Driver: "cv", Name: "d", Target: "/d"}},
		{`driver=nfs,src=d,dst=/d,"volume-opt=o=addr=10.0.0.1,rw"`, api.VolumeMount{Driver: "nfs", Name: "d", Target: "/d", Options: map[string]string{"o": "addr=10.0.0.1,rw"}}},
	} {
		got, err := parseMount(tc.in)
		if err != nil {
			t.Errorf("parseMount(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseMount(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, bad := range []string{"", "type=bind,src=/x,dst=/y", `driver=a,src=b,dst=/c,"unclosed`, "type=volume,src=d,dst=/d", "type=volume,driver=cv,dst=/d",
		"type=volume,driver=cv,src=d", "type=volume,driver=cv,src=d,dst=/d,colour=red", "type=volume,driver=cv,src=d,dst=/d,ro=maybe",
		"type=volume,driver=cv,src=d,dst=/d,volume-opt=novalue"} {
		if _, err := parseMount(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("parseMount(%q) = %v, want api.ErrInvalid", bad, err)
		}
	}
}

func TestParseVolumeFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want api.VolumeMount
	}{
		{"cv/data:/data", api.VolumeMount{Driver: "cv", Name: "data", Target: "/data"}},
		{"cv/data:/data:ro", api.VolumeMount{Driver: "cv", Name: "data", Target: "/data", ReadOnly: true}},
		{"vendor/plug:latest/data:/srv/x:rw", api.VolumeMount{Driver: "vendor/plug:latest", Name: "data", Target: "/srv/x"}},
	} {
		got, err := parseVolumeFlag(tc.in)
		if err != nil {
			t.Errorf("parseVolumeFlag(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseVolumeFlag(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, bad := range []string{"data:/data", "/host/dir:/data", "cv/:/data", "cv/data", "cv/data:/d:rx"} {
		if _, err := parseVolumeFlag(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("parseVolumeFlag(%q) = %v, want api.ErrInvalid", bad, err)
		}
	}
}

// formatMount writes a volume mount in --mount's syntax, in CSV quoting.
func formatMount(t *testing.T, v api.VolumeMount) string {
	t.Helper()
	fields := []string{"type=volume", "driver=" + v.Driver, "src=" + v.Name, "dst=" + v.Target}
	if v.ReadOnly {
		fields = append(fields, "ro")
	}
	for _, k := range slices.Sorted(maps.Keys(v.Options)) {
		fields = append(fields, "volume-opt="+k+"="+v.Options[k])
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	if err := w.Write(fields); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n")
}

// FuzzParseMount: what --mount accepts names a driver, a volume and a
// target, has options with keys, and reads back the same when written in
// --mount's syntax; what it refuses wraps api.ErrInvalid.
func FuzzParseMount(f *testing.F) {
	for _, s := range []string{"type=volume,driver=cv,src=data,dst=/data",
		"type=volume,volume-driver=vendor/p:1.0,source=d,target=/d,readonly,volume-opt=size=1g,volume-opt=type=loop",
		"type=volume,driver=cv,src=d,dst=/d,ro=false", `driver=nfs,src=d,dst=/d,"volume-opt=o=addr=10.0.0.1,rw"`,
		"", "type=bind,src=/x,dst=/y", `driver=a,src=b,dst=/c,"unclosed`, "TYPE=volume,Driver=a,SRC=b,dst=/c,RO=TRUE",
		"driver=a,src=b,dst=/c,volume-opt=k=", "driver=a,src=b,dst=/c\nsecond,line"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v, err := parseMount(in)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("parseMount(%q): %v, not api.ErrInvalid", in, err)
			}
			return
		}
		if v.Driver == "" || v.Name == "" || v.Target == "" {
			t.Fatalf("parseMount(%q) = %+v: a driver, a name and a target are required", in, v)
		}
		for k := range v.Options {
			if k == "" {
				t.Fatalf("parseMount(%q) = %+v: an option without a key", in, v)
			}
		}
		out := formatMount(t, v)
		again, err := parseMount(out)
		if err != nil {
			t.Fatalf("parseMount(%q) = %+v, written %q, which it refuses: %v", in, v, out, err)
		}
		if diff := cmp.Diff(v, again); diff != "" {
			t.Fatalf("parseMount(%q), written %q, reads back otherwise (-first +again):\n%s", in, out, diff)
		}
	})
}

// FuzzParseVolumeFlag: what -v accepts names a driver (not a host path), a
// volume without a slash and an absolute target without a colon, and reads
// back the same when written in -v's syntax; what it refuses wraps
// api.ErrInvalid.
func FuzzParseVolumeFlag(f *testing.F) {
	for _, s := range []string{"cv/data:/data", "cv/data:/data:ro", "vendor/plug:latest/data:/srv/x:rw",
		"data:/data", "/host/dir:/data", "cv/:/data", "cv/data", "cv/data:/d:rx", "a/b:/c:/d", "a/b::/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v, err := parseVolumeFlag(in)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("parseVolumeFlag(%q): %v, not api.ErrInvalid", in, err)
			}
			return
		}
		switch {
		case v.Driver == "" || strings.HasPrefix(v.Driver, "/"):
			t.Fatalf("parseVolumeFlag(%q) = %+v: no driver, or a host path", in, v)
		case v.Name == "" || strings.Contains(v.Name, "/"):
			t.Fatalf("parseVolumeFlag(%q) = %+v: an empty name, or one with a slash", in, v)
		case !strings.HasPrefix(v.Target, "/") || strings.Contains(v.Target, ":"):
			t.Fatalf("parseVolumeFlag(%q) = %+v: a target not absolute, or with a colon", in, v)
		case len(v.Options) != 0:
			t.Fatalf("parseVolumeFlag(%q) = %+v: -v has no options", in, v)
		}
		out := v.Driver + "/" + v.Name + ":" + v.Target
		if v.ReadOnly {
			out += ":ro"
		}
		again, err := parseVolumeFlag(out)
		if err != nil {
			t.Fatalf("parseVolumeFlag(%q) = %+v, written %q, which it refuses: %v", in, v, out, err)
		}
		if diff := cmp.Diff(v, again); diff != "" {
			t.Fatalf("parseVolumeFlag(%q), written %q, reads back otherwise (-first +again):\n%s", in, out, diff)
		}
	})
}
