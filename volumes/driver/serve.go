package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/caisson/caisson/api"
)

// PluginDir is where dockerd looks for legacy plugins' sockets.
const PluginDir = "/run/docker/plugins"

// Listen makes the plugin's unix socket: mode 0660, owned by root and group
// gid. A socket left by a plugin that died is replaced; one that answers is
// another plugin's, and an error.
func Listen(path string, gid int) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: %w", path, api.ErrAlreadyExists)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("another plugin is serving %s: %w", path, api.ErrAlreadyExists)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	err = os.Chmod(path, 0o660)
	if err == nil {
		err = os.Chown(path, 0, gid)
	}
	if err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("socket permissions: %w", err)
	}
	return l, nil
}

// Serve answers Docker's volume plugin protocol on l (through
// go-plugins-helpers) until ctx is done, then stops accepting, removes the
// socket and waits for the operation in flight, if any.
func Serve(ctx context.Context, d *Driver, l net.Listener) error {
	h := volume.NewHandler(d)
	errc := make(chan error, 1)
	go func() { errc <- h.Serve(l) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Closing a unix listener made by net.Listen unlinks its socket.
	_ = l.Close()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
