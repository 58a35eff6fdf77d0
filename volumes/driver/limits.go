package driver

import (
	"fmt"
	"unicode/utf8"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/volumes"
)

// Limits on what a request may carry, far above what Docker and Caisson
// send (a name, a 64-digit mount ID, a handful of short options), so that
// neither a request nor the state file it changes can grow without bound.
const (
	// MaxRequestBody bounds a request's JSON body.
	MaxRequestBody = 64 << 10
	// MaxMountIDLen bounds a mount ID.
	MaxMountIDLen = 256
	// MaxOptions bounds how many -o options a Create may give.
	MaxOptions = 32
	// MaxOptionKeyLen and MaxOptionValueLen bound each option; a value may
	// be a path, up to PATH_MAX.
	MaxOptionKeyLen   = 64
	MaxOptionValueLen = 4096
	// MaxMountIDs bounds the mount IDs counted at once for one volume.
	MaxMountIDs = 4096
)

// maxMountIDs is MaxMountIDs; tests lower it.
var maxMountIDs = MaxMountIDs

// checkName checks a volume name of a request.
func checkName(name string) error { return volumes.ValidateName(name) }

// checkID checks a mount ID: at most MaxMountIDLen bytes of UTF-8 without
// control characters. (Docker's IDs are 64 hex digits; an empty one, from
// clients older than the ID, is a valid ID.)
func checkID(id string) error {
	if len(id) > MaxMountIDLen {
		return fmt.Errorf("mount ID of %d bytes, longer than %d: %w", len(id), MaxMountIDLen, api.ErrInvalid)
	}
	if !printable(id) {
		return fmt.Errorf("mount ID %q has control characters or is not UTF-8: %w", id, api.ErrInvalid)
	}
	return nil
}

// checkOptions bounds a Create's options before they are parsed.
func checkOptions(opts map[string]string) error {
	if len(opts) > MaxOptions {
		return fmt.Errorf("%d options, more than %d: %w", len(opts), MaxOptions, api.ErrInvalid)
	}
	for k, v := range opts {
		switch {
		case k == "" || len(k) > MaxOptionKeyLen:
			return fmt.Errorf("option name %.64q... of %d bytes: want 1 to %d: %w", k, len(k), MaxOptionKeyLen, api.ErrInvalid)
		case !printable(k):
			return fmt.Errorf("option name %q has control characters or is not UTF-8: %w", k, api.ErrInvalid)
		case len(v) > MaxOptionValueLen:
			return fmt.Errorf("option %s: value of %d bytes, longer than %d: %w", k, len(v), MaxOptionValueLen, api.ErrInvalid)
		case !printable(v):
			return fmt.Errorf("option %s: value %q has control characters or is not UTF-8: %w", k, v, api.ErrInvalid)
		}
	}
	return nil
}

// printable reports whether s is UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
