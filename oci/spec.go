package oci

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

// Spec is the OCI runtime spec, an alias of the upstream type.
type Spec = specs.Spec

// SpecOpt changes a spec. Options are applied in order; an option returns an
// error wrapping api.ErrInvalid for input it cannot honour.
type SpecOpt func(*Spec) error

// Apply applies opts to s in order and stops at the first error.
func Apply(s *Spec, opts ...SpecOpt) error {
	for _, o := range opts {
		if err := o(s); err != nil {
			return err
		}
	}
	return nil
}

// Compose makes one option out of several.
func Compose(opts ...SpecOpt) SpecOpt {
	return func(s *Spec) error { return Apply(s, opts...) }
}

// DefaultCapabilities is the capability set containers get, the same as
// Docker's and runc's defaults.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// MaskedPaths are hidden from containers.
func MaskedPaths() []string {
	return []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

// ReadonlyPaths are mounted read-only in containers.
func ReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

func devRule(allow bool, typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Access: access}
	if major >= 0 {
		r.Major = &major
	}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// DefaultDeviceRules deny every device, then allow the standard nodes
// (null, zero, full, random, urandom, tty, ptmx, the pts) and mknod, as
// Docker does.
func DefaultDeviceRules() []specs.LinuxDeviceCgroup {
	return []specs.LinuxDeviceCgroup{
		devRule(false, "a", -1, -1, "rwm"),
		devRule(true, "c", -1, -1, "m"),
		devRule(true, "b", -1, -1, "m"),
		devRule(true, "c", 1, 3, "rwm"),    // null
		devRule(true, "c", 1, 5, "rwm"),    // zero
		devRule(true, "c", 1, 7, "rwm"),    // full
		devRule(true, "c", 1, 8, "rwm"),    // random
		devRule(true, "c", 1, 9, "rwm"),    // urandom
		devRule(true, "c", 5, 0, "rwm"),    // tty
		devRule(true, "c", 5, 2, "rwm"),    // ptmx
		devRule(true, "c", 136, -1, "rwm"), // pts
	}
}

// Default returns the hardened base spec: new pid, mount, uts, ipc and network
// namespaces (the network one has only loopback), no new privileges, the
// default capability set, Docker's default seccomp profile for this host's
// architecture (none off Linux, where profiles are not built), masked and
// read-only paths, default-deny devices, and the standard kernel
// filesystems.
func Default() *Spec {
	s := base()
	_ = WithSeccomp(api.Seccomp{}, "")(s) // fails only off Linux: no filter there
	return s
}

func base() *Spec {
	caps := DefaultCapabilities()
	return &Spec{
		Version: SpecVersion,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Cwd:             "/",
			Env:             []string{"PATH=" + DefaultPath},
			NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
		},
		Hostname: "",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.NetworkNamespace},
			},
			Resources:     &specs.LinuxResources{Devices: DefaultDeviceRules()},
			MaskedPaths:   MaskedPaths(),
			ReadonlyPaths: ReadonlyPaths(),
		},
	}
}

// SpecVersion is the runtime-spec version written into bundles: the newest
// that both runc 1.1 and crun 1.8 accept (crun refuses versions it does not
// know, such as the 1.3.0 of the Go types).
const SpecVersion = "1.0.2"

// DefaultPath is the PATH a container gets when its image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// WithArgs sets the process arguments.
func WithArgs(args ...string) SpecOpt {
	return func(s *Spec) error {
		if len(args) == 0 || args[0] == "" {
			return fmt.Errorf("no command given: %w", api.ErrInvalid)
		}
		ensureProcess(s)
		s.Process.Args = append([]string(nil), args...)
		return nil
	}
}

// WithEnv sets environment variables (KEY=VALUE), replacing earlier values of
// the same keys and keeping the order of first appearance.
func WithEnv(env ...string) SpecOpt {
	return func(s *Spec) error {
		ensureProcess(s)
		for _, kv := range env {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("environment variable %q is not KEY=VALUE: %w", kv, api.ErrInvalid)
			}
			s.Process.Env = setEnv(s.Process.Env, k, kv)
		}
		return nil
	}
}

func setEnv(env []string, key, kv string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// LookupEnv returns the value of key in env (KEY=VALUE entries).
func LookupEnv(env []string, key string) (string, bool) {
	for _, e := range env {
		if k, v, _ := strings.Cut(e, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// WithCwd sets the working directory, which must be absolute.
func WithCwd(dir string) SpecOpt {
	return func(s *Spec) error {
		if !strings.HasPrefix(dir, "/") {
			return fmt.Errorf("working directory %q is not absolute: %w", dir, api.ErrInvalid)
		}
		ensureProcess(s)
		s.Process.Cwd = dir
		return nil
	}
}

// WithUser sets the numeric user, group and supplementary groups.
func WithUser(uid, gid uint32, additional ...uint32) SpecOpt {
	return func(s *Spec) error {
		ensureProcess(s)
		s.Process.User = specs.User{UID: uid, GID: gid, AdditionalGids: append([]uint32(nil), additional...)}
		return nil
	}
}

// WithHostname sets the UTS hostname.
func WithHostname(name string) SpecOpt {
	return func(s *Spec) error {
		if len(name) > 64 {
			return fmt.Errorf("hostname %q is longer than 64 bytes: %w", name, api.ErrInvalid)
		}
		s.Hostname = name
		return nil
	}
}

// WithRoot sets the root filesystem path and whether it is read-only.
func WithRoot(path string, readonly bool) SpecOpt {
	return func(s *Spec) error {
		s.Root = &specs.Root{Path: path, Readonly: readonly}
		return nil
	}
}

// WithMounts adds mounts; a mount over an existing destination replaces it.
func WithMounts(mounts ...specs.Mount) SpecOpt {
	return func(s *Spec) error {
		for _, m := range mounts {
			if !strings.HasPrefix(m.Destination, "/") {
				return fmt.Errorf("mount destination %q is not absolute: %w", m.Destination, api.ErrInvalid)
			}
			replaced := false
			for i := range s.Mounts {
				if s.Mounts[i].Destination == m.Destination {
					s.Mounts[i] = m
					replaced = true
				}
			}
			if !replaced {
				s.Mounts = append(s.Mounts, m)
			}
		}
		return nil
	}
}

// WithNamespace adds a namespace of the given type (a new one when path is
// empty, the one at path otherwise), replacing any of that type.
func WithNamespace(typ specs.LinuxNamespaceType, path string) SpecOpt {
	return func(s *Spec) error {
		ensureLinux(s)
		s.Linux.Namespaces = append(withoutNamespace(s.Linux.Namespaces, typ), specs.LinuxNamespace{Type: typ, Path: path})
		return nil
	}
}

// WithoutNamespace removes the namespace of the given type, so the container
// shares the host's.
func WithoutNamespace(typ specs.LinuxNamespaceType) SpecOpt {
	return func(s *Spec) error {
		ensureLinux(s)
		s.Linux.Namespaces = withoutNamespace(s.Linux.Namespaces, typ)
		return nil
	}
}

func withoutNamespace(ns []specs.LinuxNamespace, typ specs.LinuxNamespaceType) []specs.LinuxNamespace {
	out := ns[:0:0]
	for _, n := range ns {
		if n.Type != typ {
			out = append(out, n)
		}
	}
	return out
}

// HasNamespace reports whether s creates or joins a namespace of type typ.
func HasNamespace(s *Spec, typ specs.LinuxNamespaceType) bool {
	if s.Linux == nil {
		return false
	}
	for _, n := range s.Linux.Namespaces {
		if n.Type == typ {
			return true
		}
	}
	return false
}

// WithCgroupsPath sets the container's cgroup path.
func WithCgroupsPath(path string) SpecOpt {
	return func(s *Spec) error {
		ensureLinux(s)
		s.Linux.CgroupsPath = path
		return nil
	}
}

// WithHooks appends h's hooks to the spec's, stage by stage.
func WithHooks(h *specs.Hooks) SpecOpt {
	return func(s *Spec) error {
		if h == nil {
			return nil
		}
		if s.Hooks == nil {
			s.Hooks = &specs.Hooks{}
		}
		//lint:ignore SA1019 deprecated by the runtime spec, and still what runc and crun run
		s.Hooks.Prestart = append(s.Hooks.Prestart, h.Prestart...)
		s.Hooks.CreateRuntime = append(s.Hooks.CreateRuntime, h.CreateRuntime...)
		s.Hooks.CreateContainer = append(s.Hooks.CreateContainer, h.CreateContainer...)
		s.Hooks.StartContainer = append(s.Hooks.StartContainer, h.StartContainer...)
		s.Hooks.Poststart = append(s.Hooks.Poststart, h.Poststart...)
		s.Hooks.Poststop = append(s.Hooks.Poststop, h.Poststop...)
		return nil
	}
}

// WithAnnotations sets annotations.
func WithAnnotations(a map[string]string) SpecOpt {
	return func(s *Spec) error {
		if len(a) == 0 {
			return nil
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for k, v := range a {
			s.Annotations[k] = v
		}
		return nil
	}
}

// WithDevices adds device nodes and the cgroup rules that allow them.
func WithDevices(devs []specs.LinuxDevice, rules []specs.LinuxDeviceCgroup) SpecOpt {
	return func(s *Spec) error {
		ensureLinux(s)
		s.Linux.Devices = append(s.Linux.Devices, devs...)
		if len(rules) > 0 {
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rules...)
		}
		return nil
	}
}

func ensureProcess(s *Spec) {
	if s.Process == nil {
		s.Process = &specs.Process{}
	}
}

func ensureLinux(s *Spec) {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
}
