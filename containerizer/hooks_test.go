package containerizer

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// gpuOwner owns /dev/gpu* nodes, as the GPU isolator owns the GPUs'.
type gpuOwner struct{}

func (gpuOwner) Name() string                        { return "test/gpu" }
func (gpuOwner) OwnsDevice(d specs.LinuxDevice) bool { return strings.HasPrefix(d.Path, "/dev/gpu") }

// adjustable is a spec as the isolators left it: a granted GPU node, a
// memory and a pids limit, a variable and a mount of the GPU isolator's,
// and the request's own variable and mount.
func adjustable() (*oci.Spec, []isolators.Contribution) {
	s := oci.Default()
	mem, pids := int64(256<<20), int64(100)
	s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem, Swap: &mem}
	s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	s.Linux.Devices = append(s.Linux.Devices, specs.LinuxDevice{Path: "/dev/gpu0", Type: "c", Major: 195, Minor: 0})
	s.Process.Env = append(s.Process.Env, "GPU=0", "USER_SET=1")
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/driver", Source: "/x", Type: "bind"}, specs.Mount{Destination: "/data", Source: "/y", Type: "bind"})
	contribs := []isolators.Contribution{{Isolator: "test/gpu", Response: &isolators.PrepareResponse{
		Env: []string{"GPU=0"}, Mounts: []specs.Mount{{Destination: "/driver", Source: "/x"}},
		Devices: []specs.LinuxDevice{{Path: "/dev/gpu0", Type: "c", Major: 195, Minor: 0}},
	}}}
	return s, contribs
}

// An adjustment applies all it says: variables and mounts removed and
// added, devices with their rules, rlimits, the OOM score, the cpuset and
// lower limits.
func TestApplyAdjustment(t *testing.T) {
	s, contribs := adjustable()
	lower, pids, shares, oom := int64(128<<20), int64(50), uint64(512), 500
	adj := &Adjustment{
		Env: map[string]string{"ADDED": "1"}, RemoveEnv: []string{"USER_SET"},
		RemoveMounts: []string{"/data"}, Mounts: []specs.Mount{{Destination: "/scratch", Source: "/z"}},
		Devices: []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}, {Path: "/dev/gpu0", Type: "c", Major: 195, Minor: 0}},
		Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 4096, Hard: 8192}}, OOMScoreAdj: &oom,
		Resources: &ResourcesAdjustment{CPUShares: &shares, Cpus: "0-1", Mems: "0", MemoryLimit: &lower, PidsLimit: &pids},
	}
	if err := applyAdjustment(s, contribs, []isolators.DeviceOwner{gpuOwner{}}, adj); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "ADDED=1") || slices.Contains(s.Process.Env, "USER_SET=1") || !slices.Contains(s.Process.Env, "GPU=0") {
		t.Errorf("env %v", s.Process.Env)
	}
	var dsts []string
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
	}
	if slices.Contains(dsts, "/data") || !slices.Contains(dsts, "/scratch") || !slices.Contains(dsts, "/driver") {
		t.Errorf("mounts %v", dsts)
	}
	fuse := slices.IndexFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/fuse" })
	allowed := slices.ContainsFunc(s.Linux.Resources.Devices, func(r specs.LinuxDeviceCgroup) bool {
		return r.Allow && r.Major != nil && *r.Major == 10 && r.Minor != nil && *r.Minor == 229
	})
	if fuse < 0 || !allowed {
		t.Errorf("the device /dev/fuse is not there, or not allowed: %+v", s.Linux.Devices)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != lower || *r.Memory.Swap != lower || *r.Pids.Limit != pids || *r.CPU.Shares != shares || r.CPU.Cpus != "0-1" || r.CPU.Mems != "0" {
		t.Errorf("resources %+v %+v %+v", r.Memory, r.Pids, r.CPU)
	}
	if !slices.Contains(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 4096, Hard: 8192}) || *s.Process.OOMScoreAdj != 500 {
		t.Errorf("rlimits %v, OOM score %v", s.Process.Rlimits, s.Process.OOMScoreAdj)
	}
}

// What an isolator granted or owns, the defaults, and the grant's limits
// are refused, and nothing of the adjustment is applied.
func TestAdjustmentRefused(t *testing.T) {
	higher, zero := int64(512<<20), int64(0)
	for _, tc := range []struct {
		name string
		adj  Adjustment
		want error
		says string
	}{
		{"an ungranted GPU", Adjustment{Devices: []specs.LinuxDevice{{Path: "/dev/gpu1", Type: "c", Major: 195, Minor: 1}}}, api.ErrConflict,
			"device /dev/gpu1 is isolator test/gpu's, and it did not grant it"},
		{"another node at a granted path", Adjustment{Devices: []specs.LinuxDevice{{Path: "/dev/gpu0", Type: "c", Major: 195, Minor: 3}}}, api.ErrConflict, "another node"},
		{"a device outside /dev", Adjustment{Devices: []specs.LinuxDevice{{Path: "/tmp/x", Type: "c"}}}, api.ErrInvalid, "under /dev"},
		{"removing an isolator's variable", Adjustment{RemoveEnv: []string{"GPU"}}, api.ErrConflict, "GPU is isolator test/gpu's"},
		{"removing an isolator's mount", Adjustment{RemoveMounts: []string{"/driver"}}, api.ErrConflict, "mount /driver is isolator test/gpu's"},
		{"removing /proc", Adjustment{RemoveMounts: []string{"/proc"}}, api.ErrInvalid, "every container has"},
		{"raising the memory limit", Adjustment{Resources: &ResourcesAdjustment{MemoryLimit: &higher}}, api.ErrConflict, "may only lower"},
		{"a zero pids limit", Adjustment{Resources: &ResourcesAdjustment{PidsLimit: &zero}}, api.ErrConflict, "may only lower"},
		{"a bad cpuset", Adjustment{Resources: &ResourcesAdjustment{Cpus: "all"}}, api.ErrInvalid, "cpuset cpus"},
		{"a bad rlimit", Adjustment{Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 1}}}, api.ErrInvalid, "rlimit"},
		{"a reserved annotation removed", Adjustment{RemoveAnnotations: []string{"io.caisson.seccomp.profile"}}, api.ErrInvalid, "caisson's own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, contribs := adjustable()
			before, _ := adjustable()
			adj := tc.adj
			adj.Env = map[string]string{"SHOULD_NOT": "apply"}
			err := applyAdjustment(s, contribs, []isolators.DeviceOwner{gpuOwner{}}, &adj)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("applyAdjustment = %v, want an error wrapping %v that says %q", err, tc.want, tc.says)
			}
			if !slices.Equal(s.Process.Env, before.Process.Env) {
				t.Errorf("a refused adjustment changed the environment: %v", s.Process.Env)
			}
		})
	}
}
