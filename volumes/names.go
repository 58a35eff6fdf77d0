package volumes

import (
	"fmt"
	"strings"

	"github.com/caisson/caisson/api"
)

// MaxNameLen is the longest volume name accepted: one path component.
const MaxNameLen = 255

// ValidateName checks a volume name: 1 to 255 bytes of [a-zA-Z0-9_.-],
// starting with a letter or digit, so it is always a single, harmless path
// component ("/", "..", NUL and spaces are refused).
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("volume name is empty: %w", api.ErrInvalid)
	case len(name) > MaxNameLen:
		return fmt.Errorf("volume name %.40q... is %d bytes, longer than %d: %w", name, len(name), MaxNameLen, api.ErrInvalid)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("volume name %q contains a NUL byte: %w", name, api.ErrInvalid)
	case !api.ValidName(name):
		return fmt.Errorf("volume name %q has characters not allowed: only [a-zA-Z0-9][a-zA-Z0-9_.-] are: %w", name, api.ErrInvalid)
	}
	return nil
}
