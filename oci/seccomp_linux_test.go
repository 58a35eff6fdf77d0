package oci

import (
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

// decide returns what filter f does to the system call name with the given
// arguments: the action and errno of the first rule that matches, or the
// default ones; without a filter, every call is allowed. Rules compare
// arguments the way libseccomp does; a rule with several conditions needs
// all of them.
func decide(f *specs.LinuxSeccomp, name string, args ...uint64) (specs.LinuxSeccompAction, uint) {
	if f == nil {
		return specs.ActAllow, 0
	}
	errno := func(p *uint) uint {
		if p == nil {
			return 0
		}
		return *p
	}
	for _, r := range f.Syscalls {
		if !slices.Contains(r.Names, name) || !argsMatch(r.Args, args) {
			continue
		}
		if r.ErrnoRet != nil {
			return r.Action, *r.ErrnoRet
		}
		return r.Action, errno(f.DefaultErrnoRet)
	}
	return f.DefaultAction, errno(f.DefaultErrnoRet)
}

func argsMatch(conds []specs.LinuxSeccompArg, args []uint64) bool {
	for _, c := range conds {
		var v uint64
		if int(c.Index) < len(args) {
			v = args[c.Index]
		}
		var ok bool
		switch c.Op {
		case specs.OpEqualTo:
			ok = v == c.Value
		case specs.OpNotEqual:
			ok = v != c.Value
		case specs.OpLessThan:
			ok = v < c.Value
		case specs.OpLessEqual:
			ok = v <= c.Value
		case specs.OpGreaterThan:
			ok = v > c.Value
		case specs.OpGreaterEqual:
			ok = v >= c.Value
		case specs.OpMaskedEqual:
			ok = v&c.Value == c.ValueTwo
		}
		if !ok {
			return false
		}
	}
	return true
}

// call is one system call with its arguments, as a container would make it.
type call struct {
	name string
	args []uint64
}

func (c call) String() string { return c.name }

const (
	cloneNewUser     = 0x10000000 // CLONE_NEWUSER
	addrNoRandomize  = 0x0040000  // personality(ADDR_NO_RANDOMIZE)
	perLinux32       = 0x0008     // personality(PER_LINUX32)
	personalityQuery = 0xffffffff
)

// deniedByDefault are the calls Docker's default profile refuses to a
// container with the default capabilities, and that the review found
// allowed: the kernel keyrings, user namespaces and mounts, perf events,
// and personalities that weaken the address space layout.
var deniedByDefault = []call{
	{"add_key", nil},
	{"keyctl", nil},
	{"request_key", nil},
	{"unshare", []uint64{cloneNewUser}},
	{"mount", nil},
	{"umount2", nil},
	{"perf_event_open", nil},
	{"personality", []uint64{addrNoRandomize}},
	{"bpf", nil},
	{"init_module", nil},
	{"kexec_load", nil},
	{"kcmp", nil},
	{"pidfd_getfd", nil},
	{"setns", nil},
	{"open_by_handle_at", nil},
}

// allowedByDefault are everyday calls any program makes.
var allowedByDefault = []call{
	{"read", nil}, {"write", nil}, {"openat", nil}, {"close", nil}, {"execve", nil},
	{"exit_group", nil}, {"mmap", nil}, {"futex", nil}, {"mkdirat", nil}, {"rt_sigaction", nil},
	{"personality", []uint64{perLinux32}}, {"personality", []uint64{personalityQuery}},
	{"chroot", nil}, // CAP_SYS_CHROOT is a default capability
}

func TestSeccompDefaultPerArchitecture(t *testing.T) {
	for _, tc := range []struct {
		goarch  string
		arches  []specs.Arch
		allowed []string // only on this architecture
		denied  []string // allowed on another architecture only
	}{
		{
			goarch:  "amd64",
			arches:  []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			allowed: []string{"arch_prctl", "modify_ldt"},
			denied:  []string{"swapcontext", "set_tls", "s390_runtime_instr"},
		},
		{
			goarch:  "arm64",
			arches:  []specs.Arch{specs.ArchAARCH64, specs.ArchARM},
			allowed: []string{"set_tls", "arm_fadvise64_64", "cacheflush"},
			denied:  []string{"arch_prctl", "modify_ldt", "swapcontext"},
		},
		{
			goarch:  "ppc64le",
			arches:  []specs.Arch{specs.ArchPPC64LE},
			allowed: []string{"swapcontext", "sync_file_range2"},
			denied:  []string{"arch_prctl", "modify_ldt", "set_tls"},
		},
	} {
		t.Run(tc.goarch, func(t *testing.T) {
			f, err := SeccompFilter(api.Seccomp{}, tc.goarch, DefaultCapabilities())
			if err != nil {
				t.Fatal(err)
			}
			if f.DefaultAction != specs.ActErrno || f.DefaultErrnoRet == nil || *f.DefaultErrnoRet != 1 {
				t.Errorf("default action %s errno %v, want SCMP_ACT_ERRNO with EPERM (1)", f.DefaultAction, f.DefaultErrnoRet)
			}
			if diff := cmp.Diff(tc.arches, f.Architectures); diff != "" {
				t.Errorf("architectures (-want +got):\n%s", diff)
			}
			for _, c := range deniedByDefault {
				if act, errno := decide(f, c.name, c.args...); act != specs.ActErrno || errno != 1 {
					t.Errorf("%s: %s errno %d, want EPERM", c, act, errno)
				}
			}
			for _, name := range tc.denied {
				if act, _ := decide(f, name); act != specs.ActErrno {
					t.Errorf("%s (another architecture's): %s, want denied", name, act)
				}
			}
			for _, c := range allowedByDefault {
				if act, _ := decide(f, c.name, c.args...); act != specs.ActAllow {
					t.Errorf("%s%v: %s, want allowed", c, c.args, act)
				}
			}
			for _, name := range tc.allowed {
				if act, _ := decide(f, name); act != specs.ActAllow {
					t.Errorf("%s (this architecture's): %s, want allowed", name, act)
				}
			}
		})
	}
}

// The target architecture defaults to this process's: under qemu-ppc64le
// the profile is ppc64le's.
func TestSeccompDefaultArchitectureIsRuntimes(t *testing.T) {
	want, err := SeccompFilter(api.Seccomp{}, runtime.GOARCH, DefaultCapabilities())
	if err != nil {
		t.Fatal(err)
	}
	got, err := SeccompFilter(api.Seccomp{}, "", DefaultCapabilities())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("default target (-%s +default):\n%s", runtime.GOARCH, diff)
	}
	if _, err := SeccompFilter(api.Seccomp{}, "wasm", nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("unknown architecture: %v, want api.ErrInvalid", err)
	}
}

// For this process's architecture, the filter is exactly the one the
// library builds for Docker, for several capability sets.
func TestSeccompDefaultIsDockers(t *testing.T) {
	withCaps := func(extra ...string) []string { return append(DefaultCapabilities(), extra...) }
	for name, caps := range map[string][]string{
		"default capabilities": DefaultCapabilities(),
		"no capabilities":      nil,
		"CAP_SYS_ADMIN":        withCaps("CAP_SYS_ADMIN"),
		"CAP_SYS_PTRACE":       withCaps("CAP_SYS_PTRACE"),
		"CAP_PERFMON, CAP_BPF": withCaps("CAP_PERFMON", "CAP_BPF"),
	} {
		t.Run(name, func(t *testing.T) {
			want, err := seccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := SeccompFilter(api.Seccomp{}, "", caps)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Architectures) == 0 { // ppc64le: the runtime adds the native one
				want.Architectures = got.Architectures[:1]
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-docker +caisson):\n%s", diff)
			}
		})
	}
}

// The default profile opens up as Docker's does when the container holds
// the capability that makes a call safe to allow.
func TestSeccompDefaultFollowsCapabilities(t *testing.T) {
	for _, tc := range []struct {
		cap   string
		calls []call
	}{
		{"CAP_SYS_ADMIN", []call{{"mount", nil}, {"unshare", []uint64{cloneNewUser}}, {"setns", nil}, {"umount2", nil}}},
		{"CAP_PERFMON", []call{{"perf_event_open", nil}}},
		{"CAP_SYS_PTRACE", []call{{"kcmp", nil}, {"pidfd_getfd", nil}}},
		{"CAP_SYS_MODULE", []call{{"init_module", nil}}},
	} {
		t.Run(tc.cap, func(t *testing.T) {
			for _, goarch := range []string{"amd64", "arm64", "ppc64le"} {
				f, err := SeccompFilter(api.Seccomp{}, goarch, append(DefaultCapabilities(), tc.cap))
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range tc.calls {
					if act, _ := decide(f, c.name, c.args...); act != specs.ActAllow {
						t.Errorf("%s, %s with %s: %s, want allowed", goarch, c, tc.cap, act)
					}
				}
			}
		})
	}
}

func TestSeccompUnconfined(t *testing.T) {
	f, err := SeccompFilter(api.Seccomp{Profile: api.SeccompUnconfined}, "amd64", DefaultCapabilities())
	if err != nil || f != nil {
		t.Errorf("unconfined: %v, %v; want no filter", f, err)
	}
}

const denyMkdir = `{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
}`

// A custom profile in Docker's format, with conditions on architectures
// and capabilities, is converted for the target as Docker would.
func TestSeccompCustom(t *testing.T) {
	const conditional = `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "archMap": [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
  ],
  "syscalls": [
    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
    {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
    {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["ppc64le"]}}
  ]
}`
	allow := specs.LinuxSyscall{Action: specs.ActAllow}
	rule := func(r specs.LinuxSyscall, names ...string) specs.LinuxSyscall {
		r.Names = names
		return r
	}
	eperm := uint(1)
	for _, tc := range []struct {
		name, profile, goarch string
		caps                  []string
		want                  *specs.LinuxSeccomp
	}{
		{"deny mkdir", denyMkdir, "amd64", nil, &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm}},
		}},
		{"conditions on amd64", conditional, "amd64", nil, &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
			Syscalls: []specs.LinuxSyscall{rule(allow, "read", "write"), rule(allow, "arch_prctl"), rule(allow, "getpid")},
		}},
		{"conditions on arm64 with CAP_SYS_ADMIN", conditional, "arm64", []string{"CAP_SYS_ADMIN"}, &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchAARCH64, specs.ArchARM},
			Syscalls: []specs.LinuxSyscall{rule(allow, "read", "write"), rule(allow, "mount"), rule(allow, "getpid")},
		}},
		{"conditions on ppc64le", conditional, "ppc64le", nil, &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchPPC64LE},
			Syscalls: []specs.LinuxSyscall{rule(allow, "read", "write")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SeccompFilter(api.CustomSeccomp("p.json", []byte(tc.profile)), tc.goarch, tc.caps)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSeccompCustomErrors(t *testing.T) {
	custom := func(body string) api.Seccomp { return api.CustomSeccomp("p.json", []byte(body)) }
	for name, sel := range map[string]api.Seccomp{
		"not JSON":              custom("defaultAction: SCMP_ACT_ALLOW"),
		"misspelt field":        custom(`{"defaultAcion": "SCMP_ACT_ERRNO", "syscalls": []}`),
		"trailing data":         custom(denyMkdir + `{}`),
		"no action and no rule": custom(`{}`),
		"null rule":             custom(`{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [null]}`),
		"listener path":         custom(`{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "syscalls": []}`),
		"notify action": custom(`{"defaultAction": "SCMP_ACT_ALLOW",
			"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}`),
		"architectures and archMap": custom(`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
			"archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}], "syscalls": []}`),
		"name and names": custom(`{"defaultAction": "SCMP_ACT_ALLOW",
			"syscalls": [{"name": "mkdir", "names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`),
		// What only the runtime would refuse, at create.
		"unknown default action": custom(`{"defaultAction": "SCMP_ACT_MAYBE", "syscalls": []}`),
		"unknown rule action": custom(`{"defaultAction": "SCMP_ACT_ALLOW",
			"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_DENY"}]}`),
		"unknown architecture": custom(`{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"], "syscalls": []}`),
		"unknown archMap architecture": custom(`{"defaultAction": "SCMP_ACT_ALLOW",
			"archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_Z80"]}], "syscalls": []}`),
		"unknown operator": custom(`{"defaultAction": "SCMP_ACT_ALLOW",
			"syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_ABOUT"}]}]}`),
		"unknown flag":           custom(`{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"], "syscalls": []}`),
		"empty custom":           {Profile: api.SeccompCustom},
		"too large":              custom(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}` + strings.Repeat(" ", api.MaxSeccompProfileBytes)),
		"digest mismatch":        {Profile: api.SeccompCustom, Custom: denyMkdir, Digest: "sha256:00"},
		"unknown profile":        {Profile: "strict"},
		"default with a profile": {Profile: api.SeccompDefault, Custom: denyMkdir},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := SeccompFilter(sel, "amd64", nil); !errors.Is(err, api.ErrInvalid) {
				t.Errorf("%v, want api.ErrInvalid", err)
			}
		})
	}
}

func TestWithSeccomp(t *testing.T) {
	sysAdmin := func(s *Spec) error {
		s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
		return nil
	}
	custom := api.CustomSeccomp("deny-mkdir.json", []byte(denyMkdir))
	for _, tc := range []struct {
		name        string
		opts        []SpecOpt
		annotations map[string]string
		check       func(*specs.LinuxSeccomp) string
	}{
		{"default", nil, map[string]string{AnnotationSeccompProfile: "default"}, func(f *specs.LinuxSeccomp) string {
			if act, _ := decide(f, "mount"); act != specs.ActErrno {
				return "mount allowed"
			}
			return ""
		}},
		{"default after capabilities change", []SpecOpt{sysAdmin, WithSeccomp(api.Seccomp{}, "")},
			map[string]string{AnnotationSeccompProfile: "default"}, func(f *specs.LinuxSeccomp) string {
				if act, _ := decide(f, "mount"); act != specs.ActAllow {
					return "mount denied to a container with CAP_SYS_ADMIN"
				}
				return ""
			}},
		{"unconfined", []SpecOpt{WithSeccomp(api.Seccomp{Profile: api.SeccompUnconfined}, "")},
			map[string]string{AnnotationSeccompProfile: "unconfined"}, func(f *specs.LinuxSeccomp) string {
				if f != nil {
					return "a filter is set"
				}
				return ""
			}},
		// A later choice replaces an earlier one, annotations included.
		{"default after custom", []SpecOpt{WithSeccomp(custom, ""), WithSeccomp(api.Seccomp{}, "")},
			map[string]string{AnnotationSeccompProfile: "default"}, func(f *specs.LinuxSeccomp) string {
				if act, _ := decide(f, "mkdirat"); act != specs.ActAllow {
					return "mkdirat denied: the custom profile stayed"
				}
				return ""
			}},
		{"unconfined after custom", []SpecOpt{WithSeccomp(custom, ""), WithSeccomp(api.Seccomp{Profile: api.SeccompUnconfined}, "")},
			map[string]string{AnnotationSeccompProfile: "unconfined"}, func(f *specs.LinuxSeccomp) string {
				if f != nil {
					return "a filter is set"
				}
				return ""
			}},
		{"custom after custom", []SpecOpt{WithSeccomp(api.CustomSeccomp("other.json", []byte(`{"defaultAction": "SCMP_ACT_LOG"}`)), ""), WithSeccomp(custom, "")},
			map[string]string{AnnotationSeccompProfile: "custom", AnnotationSeccompDigest: custom.Digest}, func(f *specs.LinuxSeccomp) string {
				if act, _ := decide(f, "mkdirat"); act != specs.ActErrno {
					return "mkdirat allowed"
				}
				return ""
			}},
		{"custom", []SpecOpt{WithSeccomp(custom, "")},
			map[string]string{AnnotationSeccompProfile: "custom", AnnotationSeccompDigest: custom.Digest}, func(f *specs.LinuxSeccomp) string {
				if act, _ := decide(f, "mkdirat"); act != specs.ActErrno {
					return "mkdirat allowed"
				}
				if act, _ := decide(f, "mount"); act != specs.ActAllow {
					return "mount denied: not the custom profile"
				}
				return ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Default()
			if err := Apply(s, tc.opts...); err != nil {
				t.Fatal(err)
			}
			// What the runtime reads is the bundle's JSON.
			data, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var bundle Spec
			if err := json.Unmarshal(data, &bundle); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.annotations, bundle.Annotations); diff != "" {
				t.Errorf("annotations (-want +got):\n%s", diff)
			}
			if msg := tc.check(bundle.Linux.Seccomp); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestDefaultHasSeccomp(t *testing.T) {
	s := Default()
	want, err := SeccompFilter(api.Seccomp{}, "", s.Process.Capabilities.Bounding)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil {
		t.Fatal("no seccomp filter")
	}
	if diff := cmp.Diff(want, s.Linux.Seccomp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// Docker's default.json (the library's profile as JSON) is a valid custom
// profile, and gives the default filter.
func TestSeccompDockersFileIsTheDefault(t *testing.T) {
	body, err := json.MarshalIndent(seccomp.DefaultProfile(), "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	for _, goarch := range []string{"amd64", "arm64", "ppc64le"} {
		want, err := SeccompFilter(api.Seccomp{}, goarch, DefaultCapabilities())
		if err != nil {
			t.Fatal(err)
		}
		got, err := SeccompFilter(api.CustomSeccomp("default.json", body), goarch, DefaultCapabilities())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-default +file):\n%s", goarch, diff)
		}
	}
}
