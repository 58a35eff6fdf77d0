package oci

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

func TestDefaultIsHardened(t *testing.T) {
	s := Default()
	if !s.Process.NoNewPrivileges {
		t.Error("no_new_privileges is off")
	}
	if diff := cmp.Diff(DefaultCapabilities(), s.Process.Capabilities.Bounding); diff != "" {
		t.Errorf("bounding set (-want +got):\n%s", diff)
	}
	if len(s.Process.Capabilities.Inheritable) != 0 || len(s.Process.Capabilities.Ambient) != 0 {
		t.Error("inheritable or ambient capabilities set")
	}
	for _, ns := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.NetworkNamespace} {
		if !HasNamespace(s, ns) {
			t.Errorf("no %s namespace", ns)
		}
	}
	rules := s.Linux.Resources.Devices
	if len(rules) == 0 || rules[0].Allow || rules[0].Access != "rwm" || rules[0].Type != "a" {
		t.Errorf("device rules do not start with deny-all: %+v", rules)
	}
	if s.Version != SpecVersion {
		t.Errorf("version %q", s.Version)
	}
	if len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 {
		t.Error("no masked or read-only paths")
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opt   SpecOpt
		check func(*Spec) string
	}{
		{"args", WithArgs("sh", "-c", "x"), func(s *Spec) string { return cmp.Diff([]string{"sh", "-c", "x"}, s.Process.Args) }},
		{"env replaces", Compose(WithEnv("A=1", "B=2"), WithEnv("A=3")), func(s *Spec) string {
			return cmp.Diff([]string{"A=3", "B=2"}, s.Process.Env)
		}},
		{"cwd", WithCwd("/work"), func(s *Spec) string { return cmp.Diff("/work", s.Process.Cwd) }},
		{"user", WithUser(1000, 1000, 10), func(s *Spec) string {
			return cmp.Diff(specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10}}, s.Process.User)
		}},
		{"hostname", WithHostname("box"), func(s *Spec) string { return cmp.Diff("box", s.Hostname) }},
		{"root", WithRoot("/r", true), func(s *Spec) string { return cmp.Diff(&specs.Root{Path: "/r", Readonly: true}, s.Root) }},
		{"mount replaces same destination", Compose(WithMounts(specs.Mount{Destination: "/a", Source: "1"}), WithMounts(specs.Mount{Destination: "/a", Source: "2"})),
			func(s *Spec) string { return cmp.Diff([]specs.Mount{{Destination: "/a", Source: "2"}}, s.Mounts) }},
		{"namespace path", Compose(WithNamespace(specs.NetworkNamespace, ""), WithNamespace(specs.NetworkNamespace, "/x")), func(s *Spec) string {
			return cmp.Diff([]specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/x"}}, s.Linux.Namespaces)
		}},
		{"without namespace", Compose(WithNamespace(specs.NetworkNamespace, ""), WithoutNamespace(specs.NetworkNamespace)), func(s *Spec) string {
			if HasNamespace(s, specs.NetworkNamespace) {
				return "network namespace still there"
			}
			return ""
		}},
		{"cgroups path", WithCgroupsPath("/caisson/x"), func(s *Spec) string { return cmp.Diff("/caisson/x", s.Linux.CgroupsPath) }},
		{"annotations", WithAnnotations(map[string]string{"a": "b"}), func(s *Spec) string { return cmp.Diff(map[string]string{"a": "b"}, s.Annotations) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Spec
			if err := tc.opt(&s); err != nil {
				t.Fatal(err)
			}
			if d := tc.check(&s); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestOptionErrors(t *testing.T) {
	for name, opt := range map[string]SpecOpt{
		"empty args":       WithArgs(),
		"empty command":    WithArgs(""),
		"env without =":    WithEnv("NOPE"),
		"env without name": WithEnv("=x"),
		"relative cwd":     WithCwd("work"),
		"long hostname":    WithHostname(string(make([]byte, 65))),
		"relative mount":   WithMounts(specs.Mount{Destination: "data"}),
	} {
		if err := opt(&Spec{}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: %v, want api.ErrInvalid", name, err)
		}
	}
}

// The capability set and no_new_privileges are Docker's defaults, pinned
// here by name so that a change to either is deliberate.
func TestDefaultPrivilegesAreDockers(t *testing.T) {
	docker := []string{
		"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
		"CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
	}
	s := Default()
	c := s.Process.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		got := slices.Sorted(slices.Values(set))
		if diff := cmp.Diff(docker, got); diff != "" {
			t.Errorf("%s capabilities (-docker +got):\n%s", name, diff)
		}
	}
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("inheritable %v, ambient %v; want none", c.Inheritable, c.Ambient)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("no_new_privileges is off")
	}
}
