//go:build !linux

package xfsquota

import (
	"fmt"

	"github.com/caisson/caisson/api"
)

// Open fails off Linux: XFS project quotas are a Linux facility.
func Open(dir string) (*Control, error) {
	return nil, fmt.Errorf("xfs project quota on %s: %w", dir, api.ErrUnavailable)
}

// SetLimit is available on Linux only.
func (c *Control) SetLimit(dir string, id uint32, bytes uint64) error {
	return fmt.Errorf("xfs project quota: %w", api.ErrUnavailable)
}

// Clear is available on Linux only.
func (c *Control) Clear(id uint32) error {
	return fmt.Errorf("xfs project quota: %w", api.ErrUnavailable)
}

// Usage is available on Linux only.
func (c *Control) Usage(id uint32) (used, limit uint64, err error) {
	return 0, 0, fmt.Errorf("xfs project quota: %w", api.ErrUnavailable)
}

// ProjectID is available on Linux only.
func ProjectID(dir string) (uint32, error) {
	return 0, fmt.Errorf("xfs project quota: %w", api.ErrUnavailable)
}
