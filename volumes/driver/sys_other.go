//go:build !linux

package driver

import (
	"fmt"
	"syscall"

	"github.com/caisson/caisson/api"
)

// The volume plugin serves on Linux only: its mounts, its descriptor-based
// checks (O_PATH, /proc/self/fd) and its no-replace renames have no
// equivalent here. Elsewhere the package builds for its pure tests (options,
// names, the protocol's decoding), and what needs Linux fails.

func errNotLinux(what string) error {
	return fmt.Errorf("%s on this OS: %w", what, api.ErrUnavailable)
}

func (d *Driver) mountBacking(v *record) error { return errNotLinux("volume mounts") }

// unmountMnt has nothing to unmount: no volume is ever mounted here.
func (d *Driver) unmountMnt(v *record, lazy bool) error { return nil }

func openNoFollow(path string) (int, error) { return -1, errNotLinux("bind volumes") }

func (l *Listener) setPerm(gid int) error { return errNotLinux("the plugin's socket") }

func removeSocket(dir, name string, same func(*syscall.Stat_t) bool) error {
	return errNotLinux("the plugin's socket")
}

func renameNoReplace(old, new string) error { return errNotLinux("renames that replace nothing") }
