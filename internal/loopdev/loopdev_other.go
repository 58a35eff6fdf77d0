//go:build !linux

package loopdev

import (
	"fmt"

	"github.com/caisson/caisson/api"
)

// Attach is available on Linux only.
func Attach(file string) (*Device, error) {
	return nil, fmt.Errorf("loop devices: %w", api.ErrUnavailable)
}

// Close does nothing off Linux.
func (d *Device) Close() error { return nil }

// Detach does nothing off Linux.
func (d *Device) Detach() error { return nil }

// Find is available on Linux only.
func Find(file string) ([]string, error) {
	return nil, fmt.Errorf("loop devices: %w", api.ErrUnavailable)
}

// FindBound is available on Linux only.
func FindBound(file string) ([]Bound, error) {
	return nil, fmt.Errorf("loop devices: %w", api.ErrUnavailable)
}
