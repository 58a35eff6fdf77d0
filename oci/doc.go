// Package oci builds OCI runtime specs. A SpecOpt is a pure function over a
// specs.Spec (the opencontainers/runtime-spec type, aliased, never copied);
// Default returns the hardened base every container starts from, and the
// containerizer applies the options the user's request and the isolators
// produce. Nothing here touches the host, so every option is tested against a
// zero spec without root.
package oci
