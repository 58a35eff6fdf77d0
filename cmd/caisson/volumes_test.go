package main

import (
	"errors"
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
