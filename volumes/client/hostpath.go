package client

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/caisson/caisson/api"
)

// HostPath maps a Mountpoint the plugin reported to the path on the host.
//
// A legacy plugin mounts in the host's mount namespace: its Mountpoint must be
// absolute and is returned cleaned. A managed plugin's Mountpoint must lie
// under its PropagatedMount and contain no ".."; it becomes
// <DataRoot>/plugins/<ID>/propagated-mount/<rest>, like moby's ScopedPath, and
// the result never leaves that directory. Anything else is an error wrapping
// api.ErrInvalid. (dockerd maps a Mountpoint outside PropagatedMount into the
// plugin's rootfs; mounts made there do not reach the host, so it is refused.)
func (p Plugin) HostPath(mountpoint string) (string, error) {
	switch {
	case mountpoint == "":
		return "", fmt.Errorf("empty mountpoint: %w", api.ErrInvalid)
	case len(mountpoint) > maxPath:
		return "", fmt.Errorf("mountpoint of %d bytes, longer than %d: %w", len(mountpoint), maxPath, api.ErrInvalid)
	case strings.IndexByte(mountpoint, 0) >= 0:
		return "", fmt.Errorf("mountpoint %q contains a NUL byte: %w", mountpoint, api.ErrInvalid)
	case !filepath.IsAbs(mountpoint):
		return "", fmt.Errorf("mountpoint %q is not an absolute path: %w", mountpoint, api.ErrInvalid)
	}
	if !p.Managed {
		return filepath.Clean(mountpoint), nil
	}
	base, err := p.propagatedRoot()
	if err != nil {
		return "", err
	}
	for _, el := range strings.Split(mountpoint, "/") {
		if el == ".." {
			return "", fmt.Errorf("mountpoint %q contains \"..\": %w", mountpoint, api.ErrInvalid)
		}
	}
	pm := filepath.Clean(p.PropagatedMount)
	mp := filepath.Clean(mountpoint)
	var rel string
	switch {
	case mp == pm:
	case pm == "/":
		rel = mp[1:]
	case strings.HasPrefix(mp, pm+"/"):
		rel = mp[len(pm)+1:]
	default:
		return "", fmt.Errorf("mountpoint %q is outside the plugin's propagated mount %q: %w", mountpoint, p.PropagatedMount, api.ErrInvalid)
	}
	return filepath.Join(base, rel), nil
}

// propagatedRoot returns <DataRoot>/plugins/<ID>/propagated-mount after
// checking the parts it is made of.
func (p Plugin) propagatedRoot() (string, error) {
	switch {
	case p.PropagatedMount == "":
		return "", fmt.Errorf("managed plugin %q has no propagated mount, so its volumes are not visible on the host: %w", p.Name, api.ErrInvalid)
	case !filepath.IsAbs(p.PropagatedMount) || strings.IndexByte(p.PropagatedMount, 0) >= 0:
		return "", fmt.Errorf("managed plugin %q: propagated mount %q is not an absolute path: %w", p.Name, p.PropagatedMount, api.ErrInvalid)
	case !validID(p.ID):
		return "", fmt.Errorf("managed plugin %q: ID %q is not one path element: %w", p.Name, p.ID, api.ErrInvalid)
	case !filepath.IsAbs(p.DataRoot) || strings.IndexByte(p.DataRoot, 0) >= 0:
		return "", fmt.Errorf("managed plugin %q: docker data root %q is not an absolute path: %w", p.Name, p.DataRoot, api.ErrInvalid)
	}
	return filepath.Join(p.DataRoot, "plugins", p.ID, "propagated-mount"), nil
}

// validID reports whether a managed plugin's ID can be used as one path
// element (dockerd's are 64 hex digits).
func validID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, "/\x00")
}
