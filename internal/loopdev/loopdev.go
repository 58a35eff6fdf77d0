package loopdev

import "sync"

// Device is a loop device attached by this process. Its descriptor keeps the
// device bound until Close or Detach.
type Device struct {
	path string

	mu       sync.Mutex
	fd       int // -1 once closed or detached
	detached bool
}

// Path returns the device node, such as "/dev/loop7".
func (d *Device) Path() string { return d.path }

// Bound is a loop device bound to a file.
type Bound struct {
	Path         string // "/dev/loop7"
	Major, Minor uint32
}
