package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/safefile"
)

// parseSecurityOpts reads run's --security-opt values, as Docker's:
// seccomp=unconfined, seccomp=builtin (the default profile) or
// seccomp=PROFILE.json, a Docker-format profile read now and carried in
// the container's spec.
func parseSecurityOpts(opts []string) (api.Seccomp, error) {
	var sel api.Seccomp
	seen := false
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if k != "seccomp" {
			hint := "caisson accepts seccomp=PROFILE.json, seccomp=unconfined and seccomp=builtin"
			if strings.HasPrefix(o, "no-new-privileges") {
				hint = "no_new_privileges is always set and cannot be turned off"
			}
			return sel, fmt.Errorf("--security-opt %q: unknown security option (%s): %w", o, hint, api.ErrInvalid)
		}
		if !ok || v == "" {
			return sel, fmt.Errorf("--security-opt %q: name a profile file, unconfined or builtin: %w", o, api.ErrInvalid)
		}
		if seen {
			return sel, fmt.Errorf("--security-opt %q: seccomp is given twice: %w", o, api.ErrInvalid)
		}
		seen = true
		switch v {
		case "unconfined":
			sel = api.Seccomp{Profile: api.SeccompUnconfined}
		case "builtin":
			sel = api.Seccomp{Profile: api.SeccompDefault}
		default:
			path, err := filepath.Abs(v)
			if err != nil {
				return sel, fmt.Errorf("--security-opt %q: %w", o, err)
			}
			// A regular file only, read with a limit: a FIFO or a device
			// can neither hang the command nor fill its memory.
			data, err := safefile.ReadFile(path, api.MaxSeccompProfileBytes)
			if err != nil {
				return sel, fmt.Errorf("--security-opt %q: %w", o, err)
			}
			sel = api.CustomSeccomp(path, data)
		}
	}
	return sel, nil
}
