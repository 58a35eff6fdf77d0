//go:build !linux

package containerizer

import (
	"fmt"

	"github.com/caisson/caisson/api"
)

func awaitFifo(string, int) error {
	return fmt.Errorf("fake containers need linux: %w", api.ErrUnavailable)
}

func fakeProcesses(string) []fakeProcess { return nil }
