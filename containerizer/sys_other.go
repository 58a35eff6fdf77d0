//go:build !linux

package containerizer

import (
	"fmt"
	"time"

	"github.com/caisson/caisson/api"
)

// Containers need Linux; elsewhere the package builds (for tools that read
// checkpoints) and launching fails.

func becomeSubreaper() error {
	return fmt.Errorf("containers need linux: %w", api.ErrUnavailable)
}

func waitGone(pid int, start uint64, timeout time.Duration) {}
