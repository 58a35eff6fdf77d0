// Package oci builds OCI runtime specs. A SpecOpt is a pure function over a
// specs.Spec (the opencontainers/runtime-spec type, aliased, never copied);
// Default returns the hardened base every container starts from, and the
// containerizer applies the options the user's request and the isolators
// produce, then WithSeccomp last, since Docker's default seccomp profile
// (github.com/moby/profiles/seccomp) depends on the final capabilities and
// on the target architecture. Nothing here changes the host (the seccomp
// conversion only reads the kernel's version, as Docker's does), so every
// option is tested against a zero spec without root.
package oci
