//go:build !(cgo && linux)

package nvml

import (
	"context"
	"fmt"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// Discover is unavailable without cgo: go-nvml (and its simulated machines)
// cannot be built.
func Discover(backend, simDir string) (*Inventory, error) {
	return nil, unavailable(backend)
}

// Stats is unavailable without cgo.
func Stats(backend, simDir string, uuids []string) (*gpu.Stats, error) {
	return nil, unavailable(backend)
}

// Probe is unavailable without cgo.
func Probe(backend, simDir, uuid string) (*gpu.Probe, error) {
	return nil, unavailable(backend)
}

// Watch is unavailable without cgo.
func Watch(ctx context.Context, backend, simDir string, out func(gpu.Event)) error {
	return unavailable(backend)
}

func unavailable(backend string) error {
	return fmt.Errorf("gpu backend %q: this caisson was built without cgo, which NVML needs: %w", backend, api.ErrUnavailable)
}
