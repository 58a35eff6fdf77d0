package containerizer

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

func i64(v int64) *int64 { return &v }

func TestMergeApplies(t *testing.T) {
	s := oci.Default()
	s.Process.Env = []string{"PATH=/bin", "FOO=user"}
	contribs := []contribution{
		{isolator: "a/one", resp: &isolators.PrepareResponse{
			Env:         []string{"FOO=isolator", "BAR=1"},
			Mounts:      []specs.Mount{{Destination: "/data", Type: "bind", Source: "/srv", Options: []string{"rbind"}}},
			Namespaces:  []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/run/netns/x"}},
			Devices:     []specs.LinuxDevice{{Path: "/dev/nvidiactl", Type: "c", Major: 195, Minor: 255}}, // the same node again: added once
			CgroupsPath: "/caisson/x",
			Resources:   &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}},
		}},
		{isolator: "b/two", resp: &isolators.PrepareResponse{
			Env:         []string{"BAR=1"}, // same value: no conflict
			Devices:     []specs.LinuxDevice{{Path: "/dev/nvidia0", Type: "c", Major: 195, Minor: 0}, {Path: "/dev/nvidiactl", Type: "c", Major: 195, Minor: 255}},
			DeviceRules: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: i64(195), Minor: i64(0), Access: "rw"}},
			Resources:   &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000)}, Unified: map[string]string{"memory.high": "1"}},
			Annotations: map[string]string{"k": "v"},
			SpecOpts:    []oci.SpecOpt{oci.WithHostname("from-opt")},
		}},
	}
	if err := merge(s, contribs, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"PATH=/bin", "FOO=isolator", "BAR=1"}, s.Process.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if s.Linux.CgroupsPath != "/caisson/x" || *s.Linux.Resources.Memory.Limit != 64<<20 || *s.Linux.Resources.CPU.Quota != 50000 {
		t.Errorf("resources not merged: %+v", s.Linux.Resources)
	}
	if s.Linux.Resources.Unified["memory.high"] != "1" {
		t.Errorf("unified not merged: %v", s.Linux.Resources.Unified)
	}
	found := false
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			found = n.Path == "/run/netns/x"
		}
	}
	if !found {
		t.Errorf("network namespace path not set: %+v", s.Linux.Namespaces)
	}
	if len(s.Linux.Devices) != 2 || s.Hostname != "from-opt" || s.Annotations["k"] != "v" {
		t.Errorf("devices/spec opts/annotations not applied: %+v %q %v", s.Linux.Devices, s.Hostname, s.Annotations)
	}
	// Default device rules are kept and the isolator's rule is appended.
	if got, want := len(s.Linux.Resources.Devices), len(oci.DefaultDeviceRules())+1; got != want {
		t.Errorf("device rules = %d, want %d", got, want)
	}
}

func TestMergeConflicts(t *testing.T) {
	one := func(r *isolators.PrepareResponse) contribution { return contribution{isolator: "a/one", resp: r} }
	two := func(r *isolators.PrepareResponse) contribution { return contribution{isolator: "b/two", resp: r} }
	for _, tc := range []struct {
		name       string
		contribs   []contribution
		userMounts map[string]bool
		want       error
	}{
		{"env", []contribution{one(&isolators.PrepareResponse{Env: []string{"A=1"}}), two(&isolators.PrepareResponse{Env: []string{"A=2"}})}, nil, api.ErrConflict},
		{"mount", []contribution{one(&isolators.PrepareResponse{Mounts: []specs.Mount{{Destination: "/x"}}}), two(&isolators.PrepareResponse{Mounts: []specs.Mount{{Destination: "/x"}}})}, nil, api.ErrConflict},
		{"user mount", []contribution{one(&isolators.PrepareResponse{Mounts: []specs.Mount{{Destination: "/data"}}})}, map[string]bool{"/data": true}, api.ErrConflict},
		{"relative mount", []contribution{one(&isolators.PrepareResponse{Mounts: []specs.Mount{{Destination: "data"}}})}, nil, api.ErrInvalid},
		{"namespace", []contribution{
			one(&isolators.PrepareResponse{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/a"}}}),
			two(&isolators.PrepareResponse{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/b"}}}),
		}, nil, api.ErrConflict},
		{"device", []contribution{
			one(&isolators.PrepareResponse{Devices: []specs.LinuxDevice{{Path: "/dev/x", Major: 1, Minor: 1}}}),
			two(&isolators.PrepareResponse{Devices: []specs.LinuxDevice{{Path: "/dev/x", Major: 1, Minor: 2}}}),
		}, nil, api.ErrConflict},
		{"cgroup path", []contribution{one(&isolators.PrepareResponse{CgroupsPath: "/a"}), two(&isolators.PrepareResponse{CgroupsPath: "/b"})}, nil, api.ErrConflict},
		{"cpu", []contribution{
			one(&isolators.PrepareResponse{Resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{}}}),
			two(&isolators.PrepareResponse{Resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{}}}),
		}, nil, api.ErrConflict},
		{"memory", []contribution{
			one(&isolators.PrepareResponse{Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{}}}),
			two(&isolators.PrepareResponse{Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{}}}),
		}, nil, api.ErrConflict},
		{"annotation", []contribution{one(&isolators.PrepareResponse{Annotations: map[string]string{"k": "1"}}), two(&isolators.PrepareResponse{Annotations: map[string]string{"k": "1"}})}, nil, api.ErrConflict},
		{"bad env", []contribution{one(&isolators.PrepareResponse{Env: []string{"=x"}})}, nil, api.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := merge(oci.Default(), tc.contribs, tc.userMounts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("merge = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUnmountedVolume(t *testing.T) {
	spec := api.ContainerSpec{Volumes: []api.VolumeMount{{Driver: "d", Name: "a", Target: "/data"}, {Driver: "d", Name: "b", Target: "/logs/"}}}
	some := []contribution{{isolator: "x", resp: &isolators.PrepareResponse{Mounts: []specs.Mount{{Destination: "/data"}}}}}
	if v, ok := unmountedVolume(spec, some); ok || v.Name != "b" {
		t.Errorf("unmountedVolume with /logs missing = %v, %v", v, ok)
	}
	all := append(some, contribution{isolator: "y", resp: &isolators.PrepareResponse{Mounts: []specs.Mount{{Destination: "/logs"}}}})
	if _, ok := unmountedVolume(spec, all); !ok {
		t.Error("unmountedVolume: every volume is mounted")
	}
}
