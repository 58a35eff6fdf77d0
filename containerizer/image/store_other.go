//go:build !linux

package image

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
)

// Overlay mounts and layer extraction are Linux's; elsewhere
// the package builds, and provisioning an image or a directory says it is
// unavailable.

func extractLayer(context.Context, io.Reader, string, v1.Hash, int64, *slog.Logger) (int64, error) {
	return 0, fmt.Errorf("unpack layers: needs Linux: %w", api.ErrUnavailable)
}

func mountOverlay([]string, string, string, string) error {
	return fmt.Errorf("mount overlay: needs Linux: %w", api.ErrUnavailable)
}

func unmountUnder(context.Context, string) error { return nil }

func mkdirInRoot(rootfs, p string, uid, gid int) error {
	full, err := securejoin.SecureJoin(rootfs, p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(full, 0o755); err != nil {
		return err
	}
	return os.Lchown(full, uid, gid)
}
