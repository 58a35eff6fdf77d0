//go:build !(cgo && linux)

package nvml

import (
	"fmt"

	"github.com/caisson/caisson/api"
)

// Discover is unavailable without cgo: go-nvml (and its simulated machines)
// cannot be built.
func Discover(backend string) (*Inventory, error) {
	return nil, fmt.Errorf("gpu backend %q: this caisson was built without cgo, which NVML needs: %w", backend, api.ErrUnavailable)
}
