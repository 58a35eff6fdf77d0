//go:build !linux

package oci

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
)

// seccompFilter: seccomp profiles are converted only on Linux.
func seccompFilter(api.Seccomp, string, []string) (*specs.LinuxSeccomp, error) {
	return nil, fmt.Errorf("seccomp profiles are built only on linux: %w", api.ErrUnavailable)
}
