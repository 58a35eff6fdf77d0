//go:build !linux

package cni

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/caisson/caisson/api"
)

// Network namespaces exist on Linux only; elsewhere the package builds for
// its pure tests (configuration, ports, files) and attaching fails.

// isNetns reports false: there are no network namespace handles here.
func isNetns(path string) bool { return false }

// pin cannot create a network namespace on this OS.
func (iso *Isolator) pin(ctx context.Context, path string) error {
	return fmt.Errorf("network namespaces on this OS: %w", api.ErrUnavailable)
}

// unpin removes a leftover handle file; it succeeds when there is none.
func unpin(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
