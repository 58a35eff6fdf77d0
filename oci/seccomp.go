package oci

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

// Annotations that record in the bundle which seccomp profile is in force.
const (
	AnnotationSeccompProfile = "io.caisson.seccomp.profile"
	AnnotationSeccompDigest  = "io.caisson.seccomp.digest"
)

// WithSeccomp sets the seccomp filter that sel selects (see SeccompFilter),
// for the target architecture goarch (a GOARCH name; empty means
// runtime.GOARCH) and the spec's bounding capabilities, and records the
// choice in annotations. Apply it after every option that changes the
// capabilities: the default profile allows more to a container that holds
// more (mount with CAP_SYS_ADMIN, ptrace with CAP_SYS_PTRACE), as Docker's
// does.
func WithSeccomp(sel api.Seccomp, goarch string) SpecOpt {
	return func(s *Spec) error {
		sel, err := sel.Normalize()
		if err != nil {
			return err
		}
		var caps []string
		if s.Process != nil && s.Process.Capabilities != nil {
			caps = s.Process.Capabilities.Bounding
		}
		filter, err := SeccompFilter(sel, goarch, caps)
		if err != nil {
			return err
		}
		ensureLinux(s)
		s.Linux.Seccomp = filter
		// The annotations say only what this choice is: a digest left by
		// an earlier custom choice goes.
		if err := WithAnnotations(map[string]string{AnnotationSeccompProfile: sel.Profile})(s); err != nil {
			return err
		}
		if sel.Digest == "" {
			delete(s.Annotations, AnnotationSeccompDigest)
			return nil
		}
		s.Annotations[AnnotationSeccompDigest] = sel.Digest
		return nil
	}
}

// SeccompFilter returns the runtime-spec seccomp filter that sel selects,
// for the target architecture goarch (a GOARCH name; empty means
// runtime.GOARCH, which is right for containers on this host: an image of
// another architecture runs under the host's qemu-user, whose system calls
// are the host's) and a container whose bounding capabilities are caps. It
// returns nil for an unconfined container.
//
// The default profile is Docker's, from github.com/moby/profiles/seccomp,
// and a custom one is a profile in Docker's format; both are converted the
// way Docker converts them: the rules for other architectures are dropped,
// those that need a capability are kept only when the container has it, and
// those that depend on the kernel's version are decided by this host's.
// The filter always names the architectures it covers: the target's native
// one and the compatible ones Docker lists (SCMP_ARCH_X86_64, SCMP_ARCH_X86
// and SCMP_ARCH_X32 on amd64; SCMP_ARCH_AARCH64 and SCMP_ARCH_ARM on arm64;
// SCMP_ARCH_PPC64LE on ppc64le, where Docker's profile names none and the
// runtime adds the native one, so the filter is the same).
func SeccompFilter(sel api.Seccomp, goarch string, caps []string) (*specs.LinuxSeccomp, error) {
	sel, err := sel.Normalize()
	if err != nil {
		return nil, err
	}
	if sel.Profile == api.SeccompUnconfined {
		return nil, nil
	}
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	return seccompFilter(sel, goarch, caps)
}
