package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/google/go-cmp/cmp"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var managedTest = Plugin{
	Name:            "vendor/vol:latest",
	Managed:         true,
	ID:              testID,
	PropagatedMount: "/mnt/volumes",
	DataRoot:        "/var/lib/docker",
}

const managedBase = "/var/lib/docker/plugins/" + testID + "/propagated-mount"

func TestHostPath(t *testing.T) {
	legacy := Plugin{Name: "legacy"}
	tests := []struct {
		name       string
		plugin     Plugin
		mountpoint string
		want       string
		wantErr    error
	}{
		{"legacy", legacy, "/srv/volumes/v1", "/srv/volumes/v1", nil},
		{"legacy cleaned", legacy, "/srv//volumes/./v1/", "/srv/volumes/v1", nil},
		{"legacy relative", legacy, "srv/v1", "", api.ErrInvalid},
		{"legacy empty", legacy, "", "", api.ErrInvalid},
		{"managed", managedTest, "/mnt/volumes/v1", managedBase + "/v1", nil},
		{"managed nested", managedTest, "/mnt/volumes/a/b/", managedBase + "/a/b", nil},
		{"managed root of propagated mount", managedTest, "/mnt/volumes", managedBase, nil},
		{"managed with dot", managedTest, "/mnt/volumes/./v1", managedBase + "/v1", nil},
		{"managed outside", managedTest, "/etc/shadow", "", api.ErrInvalid},
		{"managed sibling with same prefix", managedTest, "/mnt/volumesX/v1", "", api.ErrInvalid},
		{"managed parent", managedTest, "/mnt", "", api.ErrInvalid},
		{"managed dotdot escaping", managedTest, "/mnt/volumes/../../etc", "", api.ErrInvalid},
		{"managed dotdot staying inside", managedTest, "/mnt/volumes/a/../b", "", api.ErrInvalid},
		{"managed relative", managedTest, "mnt/volumes/v1", "", api.ErrInvalid},
		{"managed NUL", managedTest, "/mnt/volumes/v\x001", "", api.ErrInvalid},
		{"managed propagated mount is /", withPlugin(func(p *Plugin) { p.PropagatedMount = "/" }), "/v1", managedBase + "/v1", nil},
		{"managed without propagated mount", withPlugin(func(p *Plugin) { p.PropagatedMount = "" }), "/mnt/volumes/v1", "", api.ErrInvalid},
		{"managed bad ID", withPlugin(func(p *Plugin) { p.ID = ".." }), "/mnt/volumes/v1", "", api.ErrInvalid},
		{"managed relative data root", withPlugin(func(p *Plugin) { p.DataRoot = "docker" }), "/mnt/volumes/v1", "", api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.plugin.HostPath(tt.mountpoint)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("HostPath(%q) error = %v, want %v", tt.mountpoint, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("HostPath(%q) = %q, want %q", tt.mountpoint, got, tt.want)
			}
		})
	}
}

func withPlugin(change func(*Plugin)) Plugin {
	p := managedTest
	change(&p)
	return p
}

// TestMountpointRewrite checks that Mount, Path, Get and List all report
// host paths.
func TestMountpointRewrite(t *testing.T) {
	tests := []struct {
		name       string
		managed    bool
		mountpoint string
		want       string
		wantErr    error
	}{
		{name: "managed", managed: true, mountpoint: "/mnt/volumes/v1", want: managedBase + "/v1"},
		{name: "managed outside", managed: true, mountpoint: "/var/lib/other/v1", wantErr: api.ErrInvalid},
		{name: "managed dotdot", managed: true, mountpoint: "/mnt/volumes/../../../etc", wantErr: api.ErrInvalid},
		{name: "managed relative", managed: true, mountpoint: "v1", wantErr: api.ErrInvalid},
		{name: "legacy", mountpoint: "/srv/v1/", want: "/srv/v1"},
		{name: "legacy relative", mountpoint: "./v1", wantErr: api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, _ := json.Marshal(tt.mountpoint)
			answers := map[string]answer{
				"VolumeDriver.Mount": {body: fmt.Sprintf(`{"Mountpoint":%s}`, mp)},
				"VolumeDriver.Path":  {body: fmt.Sprintf(`{"Mountpoint":%s}`, mp)},
				"VolumeDriver.Get":   {body: fmt.Sprintf(`{"Volume":{"Name":"v1","Mountpoint":%s}}`, mp)},
				"VolumeDriver.List":  {body: fmt.Sprintf(`{"Volumes":[{"Name":"v0"},{"Name":"v1","Mountpoint":%s}]}`, mp)},
			}
			sock := filepath.Join(shortDir(t), "p.sock")
			startPlugin(t, sock, answers)
			p := Plugin{Name: "legacy", Addr: "unix://" + sock}
			if tt.managed {
				p = managedTest
				p.Addr = "unix://" + sock
			}
			c, err := New(p)
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			calls := []struct {
				method string
				call   func() (string, error)
			}{
				{"Mount", func() (string, error) { return c.Mount(ctx, "v1", "id") }},
				{"Path", func() (string, error) { return c.Path(ctx, "v1") }},
				{"Get", func() (string, error) {
					v, err := c.Get(ctx, "v1")
					return v.Mountpoint, err
				}},
				{"List", func() (string, error) {
					vs, err := c.List(ctx)
					if err != nil {
						return "", err
					}
					if len(vs) != 2 || vs[0].Mountpoint != "" {
						return "", fmt.Errorf("List() = %+v, want v0 without a mountpoint and v1", vs)
					}
					return vs[1].Mountpoint, nil
				}},
			}
			for _, call := range calls {
				got, err := call.call()
				if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
					t.Errorf("%s: error = %v, want %v", call.method, err, tt.wantErr)
					continue
				}
				if got != tt.want {
					t.Errorf("%s = %q, want %q", call.method, got, tt.want)
				}
			}
		})
	}
}

// TestEmptyMountpoint: Mount must give a path, Path without one means "not
// mounted", Get and List leave it empty.
func TestEmptyMountpoint(t *testing.T) {
	answers := map[string]answer{
		"VolumeDriver.Mount": {body: `{"Mountpoint":""}`},
		"VolumeDriver.Path":  {body: `{}`},
		"VolumeDriver.Get":   {body: `{"Volume":{"Name":"v1"}}`},
	}
	sock := filepath.Join(shortDir(t), "p.sock")
	startPlugin(t, sock, answers)
	p := managedTest
	p.Addr = "unix://" + sock
	c, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mount(t.Context(), "v1", "id"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Mount() = %v, want %v", err, api.ErrInvalid)
	}
	if _, err := c.Path(t.Context(), "v1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Path() = %v, want %v", err, api.ErrNotFound)
	}
	v, err := c.Get(t.Context(), "v1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Volume{Name: "v1"}, v); diff != "" {
		t.Errorf("Get() (-want +got):\n%s", diff)
	}
}

// FuzzHostPath checks that a managed plugin's path never leaves
// <DataRoot>/plugins/<ID>/propagated-mount, and that a Mountpoint outside
// PropagatedMount or with ".." is refused.
func FuzzHostPath(f *testing.F) {
	seeds := [][4]string{
		{"/mnt/volumes/v1", "/mnt/volumes", "/var/lib/docker", testID},
		{"/mnt/volumes/../../etc", "/mnt/volumes", "/var/lib/docker", testID},
		{"/mnt/volumesX", "/mnt/volumes", "/var/lib/docker", testID},
		{"/x/..", "/", "/var/lib/docker", testID},
		{"/mnt/volumes/v1", "/mnt/../mnt/volumes/", "/var/lib/../lib/docker", testID},
		{"/mnt/volumes/v1", "/mnt/volumes", "/", ".."},
		{"//mnt//volumes//", "/mnt/volumes", "/d", "id"},
		{"/mnt/volumes/...", "/mnt/volumes", "/d", "id/.."},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, mountpoint, propagated, dataRoot, id string) {
		p := Plugin{Managed: true, ID: id, PropagatedMount: propagated, DataRoot: dataRoot}
		got, err := p.HostPath(mountpoint)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("HostPath(%q) error %v does not wrap %v", mountpoint, err, api.ErrInvalid)
			}
			return
		}
		if !validID(id) || !filepath.IsAbs(dataRoot) {
			t.Fatalf("HostPath(%q) = %q with ID %q and data root %q, want an error", mountpoint, got, id, dataRoot)
		}
		for _, el := range strings.Split(mountpoint, "/") {
			if el == ".." {
				t.Fatalf("HostPath(%q) = %q, want an error for \"..\"", mountpoint, got)
			}
		}
		pm, mp := filepath.Clean(propagated), filepath.Clean(mountpoint)
		if mp != pm && pm != "/" && !strings.HasPrefix(mp, pm+"/") {
			t.Fatalf("HostPath(%q) = %q, but it is outside %q", mountpoint, got, propagated)
		}
		base := filepath.Join(dataRoot, "plugins", id, "propagated-mount")
		if got != base && !strings.HasPrefix(got, base+"/") {
			t.Fatalf("HostPath(%q) = %q, outside %q", mountpoint, got, base)
		}
		if got != filepath.Clean(got) {
			t.Fatalf("HostPath(%q) = %q, not clean", mountpoint, got)
		}
	})
}
