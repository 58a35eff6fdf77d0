package api

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Seccomp profiles a container can run under (Seccomp.Profile).
const (
	// SeccompDefault is Docker's default profile, for this host's
	// architecture and the container's capabilities.
	SeccompDefault = "default"
	// SeccompUnconfined runs the container without a seccomp filter.
	SeccompUnconfined = "unconfined"
	// SeccompCustom is the Docker-format profile in Seccomp.Custom.
	SeccompCustom = "custom"
)

// SeccompProfiles lists every value of Seccomp.Profile, as Normalize
// leaves it.
var SeccompProfiles = []string{SeccompDefault, SeccompCustom, SeccompUnconfined}

// MaxSeccompProfileBytes bounds a custom seccomp profile. Docker's default
// profile, the largest in common use, is about 20 KiB.
const MaxSeccompProfileBytes = 1 << 20

// Seccomp selects the seccomp filter a container runs under, as Docker's
// --security-opt seccomp=... does. The zero value is the default profile.
type Seccomp struct {
	// Profile is SeccompDefault (also when empty), SeccompUnconfined or
	// SeccompCustom.
	Profile string `json:"profile,omitempty"`
	// Source says where a custom profile came from (the file it was read
	// from), for people reading inspect.
	Source string `json:"source,omitempty"`
	// Digest is the custom profile's digest, "sha256:HEX" of Custom.
	Digest string `json:"digest,omitempty"`
	// Custom is a Docker-format seccomp profile (JSON), for SeccompCustom.
	Custom string `json:"custom,omitempty"`
}

// CustomSeccomp makes a custom selection of profile, a Docker-format
// seccomp profile read from source.
func CustomSeccomp(source string, profile []byte) Seccomp {
	return Seccomp{Profile: SeccompCustom, Source: source, Digest: seccompDigest(profile), Custom: string(profile)}
}

func seccompDigest(profile []byte) string {
	sum := sha256.Sum256(profile)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Normalize checks the selection's form and returns it with the defaults
// filled in: an empty Profile becomes SeccompDefault and a custom profile
// gets its digest. The custom profile's content is checked when the runtime
// spec is built from it (package oci).
func (s Seccomp) Normalize() (Seccomp, error) {
	switch s.Profile {
	case "", SeccompDefault, SeccompUnconfined:
		if s.Custom != "" || s.Source != "" || s.Digest != "" {
			return s, fmt.Errorf("seccomp profile %q takes no custom profile, source or digest: %w", s.Profile, ErrInvalid)
		}
		if s.Profile == "" {
			s.Profile = SeccompDefault
		}
		return s, nil
	case SeccompCustom:
		if s.Custom == "" {
			return s, fmt.Errorf("custom seccomp profile is empty: %w", ErrInvalid)
		}
		if len(s.Custom) > MaxSeccompProfileBytes {
			return s, fmt.Errorf("custom seccomp profile is %d bytes, more than the %d allowed: %w", len(s.Custom), MaxSeccompProfileBytes, ErrInvalid)
		}
		d := seccompDigest([]byte(s.Custom))
		if s.Digest != "" && s.Digest != d {
			return s, fmt.Errorf("custom seccomp profile's digest is %s, not the %s given: %w", d, s.Digest, ErrInvalid)
		}
		s.Digest = d
		return s, nil
	default:
		return s, fmt.Errorf("unknown seccomp profile %q (want %s, %s or %s): %w", s.Profile, SeccompDefault, SeccompUnconfined, SeccompCustom, ErrInvalid)
	}
}
