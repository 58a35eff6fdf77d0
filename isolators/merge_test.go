package isolators

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/oci"
)

func i64(v int64) *int64 { return &v }

func TestMergeApplies(t *testing.T) {
	s := oci.Default()
	s.Process.Env = []string{"PATH=/bin", "FOO=user"}
	contribs := []Contribution{
		{Isolator: "a/one", Response: &PrepareResponse{
			Env:         []string{"FOO=isolator", "BAR=1"},
			Mounts:      []specs.Mount{{Destination: "/data", Type: "bind", Source: "/srv", Options: []string{"rbind"}}},
			Namespaces:  []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/run/netns/x"}},
			Devices:     []specs.LinuxDevice{{Path: "/dev/nvidiactl", Type: "c", Major: 195, Minor: 255}}, // the same node again: added once
			CgroupsPath: "/caisson/x",
			Resources:   &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}},
		}},
		{Isolator: "b/two", Response: &PrepareResponse{
			Env:         []string{"BAR=1"}, // same value: no conflict
			Devices:     []specs.LinuxDevice{{Path: "/dev/nvidia0", Type: "c", Major: 195, Minor: 0}, {Path: "/dev/nvidiactl", Type: "c", Major: 195, Minor: 255}},
			DeviceRules: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: i64(195), Minor: i64(0), Access: "rw"}},
			Resources:   &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000)}, Unified: map[string]string{"memory.high": "1"}},
			Annotations: map[string]string{"k": "v"},
			SpecOpts:    []oci.SpecOpt{oci.WithHostname("from-opt")},
		}},
	}
	if err := Merge(s, contribs, nil); err != nil {
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

// Two isolators that set one part of the spec, or an isolator that takes
// a mount of the container's own, fail the merge with a *ConflictError
// that names both, in their order; one that sets a part to what another
// set is no conflict where the part can be shared.
func TestMergeConflicts(t *testing.T) {
	one := func(r *PrepareResponse) Contribution { return Contribution{Isolator: "a/one", Response: r} }
	two := func(r *PrepareResponse) Contribution { return Contribution{Isolator: "b/two", Response: r} }
	res := func(r specs.LinuxResources) *PrepareResponse { return &PrepareResponse{Resources: &r} }
	ns := func(path string) *PrepareResponse {
		return &PrepareResponse{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: path}}}
	}
	dev := func(minor int64) *PrepareResponse {
		return &PrepareResponse{Devices: []specs.LinuxDevice{{Path: "/dev/x", Major: 1, Minor: minor}}}
	}
	conflict := func(f Field, key string) *ConflictError {
		return &ConflictError{Field: f, Key: key, First: "a/one", Second: "b/two"}
	}
	for _, tc := range []struct {
		name     string
		contribs []Contribution
		reserved map[string]bool
		want     *ConflictError // nil: no conflict
	}{
		{"env", []Contribution{one(&PrepareResponse{Env: []string{"A=1"}}), two(&PrepareResponse{Env: []string{"A=2"}})}, nil, conflict(FieldEnv, "A")},
		{"env, same value", []Contribution{one(&PrepareResponse{Env: []string{"A=1"}}), two(&PrepareResponse{Env: []string{"A=1"}})}, nil, nil},
		{"mount", []Contribution{one(&PrepareResponse{Mounts: []specs.Mount{{Destination: "/x"}}}), two(&PrepareResponse{Mounts: []specs.Mount{{Destination: "/x"}}})}, nil, conflict(FieldMount, "/x")},
		{"the container's mount", []Contribution{two(&PrepareResponse{Mounts: []specs.Mount{{Destination: "/data"}}})}, map[string]bool{"/data": true},
			&ConflictError{Field: FieldMount, Key: "/data", Second: "b/two"}},
		{"namespace", []Contribution{one(ns("/a")), two(ns("/b"))}, nil, conflict(FieldNamespace, "network")},
		{"namespace, same path", []Contribution{one(ns("/a")), two(ns("/a"))}, nil, nil},
		{"device", []Contribution{one(dev(1)), two(dev(2))}, nil, conflict(FieldDevice, "/dev/x")},
		{"device, same node", []Contribution{one(dev(1)), two(dev(1))}, nil, nil},
		{"cgroup path", []Contribution{one(&PrepareResponse{CgroupsPath: "/a"}), two(&PrepareResponse{CgroupsPath: "/b"})}, nil, conflict(FieldCgroupsPath, "")},
		{"cgroup path, same", []Contribution{one(&PrepareResponse{CgroupsPath: "/a"}), two(&PrepareResponse{CgroupsPath: "/a"})}, nil, nil},
		{"cpu", []Contribution{one(res(specs.LinuxResources{CPU: &specs.LinuxCPU{}})), two(res(specs.LinuxResources{CPU: &specs.LinuxCPU{}}))}, nil, conflict(FieldCPU, "")},
		{"memory", []Contribution{one(res(specs.LinuxResources{Memory: &specs.LinuxMemory{}})), two(res(specs.LinuxResources{Memory: &specs.LinuxMemory{}}))}, nil, conflict(FieldMemory, "")},
		{"pids", []Contribution{one(res(specs.LinuxResources{Pids: &specs.LinuxPids{}})), two(res(specs.LinuxResources{Pids: &specs.LinuxPids{}}))}, nil, conflict(FieldPids, "")},
		{"cgroup file", []Contribution{
			one(res(specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}})),
			two(res(specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}})),
		}, nil, conflict(FieldUnified, "memory.high")},
		{"annotation", []Contribution{one(&PrepareResponse{Annotations: map[string]string{"k": "1"}}), two(&PrepareResponse{Annotations: map[string]string{"k": "1"}})}, nil, conflict(FieldAnnotation, "k")},
		{"after a third", []Contribution{one(&PrepareResponse{Env: []string{"A=1"}}), {Isolator: "c/three", Response: &PrepareResponse{}}, two(&PrepareResponse{Env: []string{"A=2"}})}, nil, conflict(FieldEnv, "A")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Merge(oci.Default(), tc.contribs, tc.reserved)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("merge = %v, want no conflict", err)
				}
				return
			}
			var got *ConflictError
			if !errors.As(err, &got) {
				t.Fatalf("merge = %v, want a *ConflictError", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("conflict (-want +got):\n%s", diff)
			}
			if !errors.Is(err, api.ErrConflict) {
				t.Errorf("merge = %v, want an error wrapping api.ErrConflict", err)
			}
		})
	}
}

// A response that is not well formed is refused, whatever the others do.
func TestMergeRefusesMalformed(t *testing.T) {
	for name, r := range map[string]*PrepareResponse{
		"relative mount": {Mounts: []specs.Mount{{Destination: "data"}}},
		"env, no name":   {Env: []string{"=x"}},
		"env, no value":  {Env: []string{"A"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := Merge(oci.Default(), []Contribution{{Isolator: "a/one", Response: r}}, nil)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("merge = %v, want an error wrapping api.ErrInvalid", err)
			}
		})
	}
}
