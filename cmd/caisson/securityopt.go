package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/caisson/caisson/api"
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
			data, err := readProfileFile(path)
			if err != nil {
				return sel, fmt.Errorf("--security-opt %q: %w", o, err)
			}
			sel = api.CustomSeccomp(path, data)
		}
	}
	return sel, nil
}

// readProfileFile reads a regular file of at most
// api.MaxSeccompProfileBytes. It opens without blocking, so a FIFO cannot
// hang the command, and reads with a limit, so a device cannot fill memory.
func readProfileFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): %w", path, st.Mode().Type(), api.ErrInvalid)
	}
	tooLarge := fmt.Errorf("%s is larger than %d bytes: %w", path, api.MaxSeccompProfileBytes, api.ErrInvalid)
	if st.Size() > api.MaxSeccompProfileBytes {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(f, api.MaxSeccompProfileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > api.MaxSeccompProfileBytes {
		return nil, tooLarge // it grew while read
	}
	return data, nil
}
