package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

// seccompFilter converts the default or a custom profile (see
// SeccompFilter).
func seccompFilter(sel api.Seccomp, goarch string, caps []string) (*specs.LinuxSeccomp, error) {
	arch, ok := seccompArches[goarch]
	if !ok {
		return nil, fmt.Errorf("seccomp: no system call architecture is known for %q: %w", goarch, api.ErrInvalid)
	}
	var err error
	var profile *seccomp.Seccomp
	switch sel.Profile {
	case api.SeccompDefault:
		profile = seccomp.DefaultProfile()
	case api.SeccompCustom:
		if profile, err = parseSeccompProfile(sel.Custom); err != nil {
			return nil, fmt.Errorf("seccomp profile %s: %w", sel.Source, err)
		}
	}
	resolved, err := profileForArch(profile, arch)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	body, err := json.Marshal(resolved)
	if err != nil {
		return nil, err
	}
	// What is left to decide (capabilities, kernel version) is decided by
	// the library, as for Docker.
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	filter, err := seccomp.LoadProfile(string(body), rs)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile: %w: %w", err, api.ErrInvalid)
	}
	if filter == nil {
		return nil, fmt.Errorf("seccomp profile %s has no default action and no rules (seccomp=unconfined runs without a filter): %w", sel.Source, api.ErrInvalid)
	}
	if len(filter.Architectures) == 0 {
		filter.Architectures = []specs.Arch{arch.native}
	}
	if err := checkFilter(filter); err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", sel.Source, err)
	}
	return filter, nil
}

// checkFilter refuses what the runtime would refuse only when it creates
// the container: an action, architecture, operator or flag that the
// runtime-spec does not name (the library passes them on unread).
func checkFilter(f *specs.LinuxSeccomp) error {
	if !slices.Contains(seccompActions, f.DefaultAction) {
		return fmt.Errorf("unknown default action %q: %w", f.DefaultAction, api.ErrInvalid)
	}
	for _, a := range f.Architectures {
		if !slices.Contains(seccompArchNames, a) {
			return fmt.Errorf("unknown architecture %q: %w", a, api.ErrInvalid)
		}
	}
	for _, fl := range f.Flags {
		if !slices.Contains(seccompFlags, fl) {
			return fmt.Errorf("unknown flag %q: %w", fl, api.ErrInvalid)
		}
	}
	for _, c := range f.Syscalls {
		if !slices.Contains(seccompActions, c.Action) {
			return fmt.Errorf("system calls %v: unknown action %q: %w", c.Names, c.Action, api.ErrInvalid)
		}
		for _, arg := range c.Args {
			if !slices.Contains(seccompOperators, arg.Op) {
				return fmt.Errorf("system calls %v: unknown operator %q: %w", c.Names, arg.Op, api.ErrInvalid)
			}
		}
	}
	return nil
}

// The values of a filter's fields that the runtime-spec names (less
// SCMP_ACT_NOTIFY, refused earlier), and SECCOMP_FILTER_FLAG_TSYNC, which
// the runtimes accept and ignore.
var (
	seccompActions = []specs.LinuxSeccompAction{
		specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
		specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog,
	}
	seccompOperators = []specs.LinuxSeccompOperator{
		specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
	}
	seccompFlags = []specs.LinuxSeccompFlag{
		specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv,
		"SECCOMP_FILTER_FLAG_TSYNC",
	}
	seccompArchNames = []specs.Arch{
		specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL, specs.ArchMIPSEL64,
		specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64, specs.ArchPPC64LE, specs.ArchS390,
		specs.ArchS390X, specs.ArchPARISC, specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64,
		specs.ArchM68K, specs.ArchSH, specs.ArchSHEB,
	}
)

// parseSeccompProfile reads a Docker-format profile strictly: unknown fields
// (a misspelt "defaultAction" would leave no filter) and trailing data are
// refused, and so is a notification listener, a host socket the runtime
// would hand the container's filter to.
func parseSeccompProfile(body string) (*seccomp.Seccomp, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	dec.DisallowUnknownFields()
	var p seccomp.Seccomp
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("data after the profile: %w", api.ErrInvalid)
	}
	if p.ListenerPath != "" || p.ListenerMetadata != "" || p.DefaultAction == specs.ActNotify ||
		slices.ContainsFunc(p.Syscalls, func(c *seccomp.Syscall) bool { return c != nil && c.Action == specs.ActNotify }) {
		return nil, fmt.Errorf("seccomp notification (listenerPath, SCMP_ACT_NOTIFY) is not supported: %w", api.ErrInvalid)
	}
	if slices.Contains(p.Syscalls, nil) {
		return nil, fmt.Errorf("a syscalls entry is null: %w", api.ErrInvalid)
	}
	return &p, nil
}

// profileForArch decides the parts of p that depend on the architecture
// for arch, the way the library decides them for runtime.GOARCH: the
// archMap entry of arch becomes the architectures, rules included only on
// other architectures or excluded on this one go, and the other rules lose
// their architecture conditions. The library then sees nothing that
// depends on its own runtime.GOARCH.
func profileForArch(p *seccomp.Seccomp, arch seccompArch) (*seccomp.Seccomp, error) {
	if len(p.Architectures) != 0 && len(p.ArchMap) != 0 {
		return nil, fmt.Errorf("both architectures and archMap are set: %w", api.ErrInvalid)
	}
	out := *p
	if len(p.ArchMap) != 0 {
		out.ArchMap, out.Architectures = nil, nil
		for _, a := range p.ArchMap {
			if a.Arch == arch.native {
				out.Architectures = append([]specs.Arch{a.Arch}, a.SubArches...)
				break
			}
		}
	}
	out.Syscalls = nil
	for _, c := range p.Syscalls {
		rule := *c
		if c.Excludes != nil && len(c.Excludes.Arches) > 0 {
			if slices.Contains(c.Excludes.Arches, arch.name) {
				continue
			}
			f := *c.Excludes
			f.Arches = nil
			rule.Excludes = &f
		}
		if c.Includes != nil && len(c.Includes.Arches) > 0 {
			if !slices.Contains(c.Includes.Arches, arch.name) {
				continue
			}
			f := *c.Includes
			f.Arches = nil
			rule.Includes = &f
		}
		out.Syscalls = append(out.Syscalls, &rule)
	}
	return &out, nil
}

// seccompArch is how the seccomp profiles name one Go architecture: the
// name in their includes and excludes ("amd64", "ppc64le") and the
// SCMP_ARCH value of its native system calls. The library keeps the same
// table, but only for runtime.GOARCH.
type seccompArch struct {
	name   string
	native specs.Arch
}

var seccompArches = map[string]seccompArch{
	"386":         {"x86", specs.ArchX86},
	"amd64":       {"amd64", specs.ArchX86_64},
	"arm":         {"arm", specs.ArchARM},
	"arm64":       {"arm64", specs.ArchAARCH64},
	"loong64":     {"loongarch64", specs.ArchLOONGARCH64},
	"mips64":      {"mips64", specs.ArchMIPS64},
	"mips64p32":   {"mips64n32", specs.ArchMIPS64N32},
	"mips64le":    {"mipsel64", specs.ArchMIPSEL64},
	"mips64p32le": {"mips3l64n32", specs.ArchMIPSEL64N32},
	"mipsle":      {"mipsel", specs.ArchMIPSEL},
	"ppc":         {"ppc", specs.ArchPPC},
	"ppc64":       {"ppc64", specs.ArchPPC64},
	"ppc64le":     {"ppc64le", specs.ArchPPC64LE},
	"riscv64":     {"riscv64", specs.ArchRISCV64},
	"s390":        {"s390", specs.ArchS390},
	"s390x":       {"s390x", specs.ArchS390X},
}
