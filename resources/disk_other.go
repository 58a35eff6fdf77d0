//go:build !linux

package resources

import (
	"fmt"

	"github.com/caisson/caisson/api"
)

func diskSize(path string) (int64, error) {
	return 0, fmt.Errorf("disk size of %s on this OS: %w", path, api.ErrUnavailable)
}
