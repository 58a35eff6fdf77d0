package api

import "errors"

// Sentinel errors. Wrap them with %w at the end of the message and match them
// with errors.Is; they are mapped to exit codes (and later HTTP statuses) in one
// place each.
var (
	// ErrInvalid marks bad input: a malformed size, an unknown option.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound marks a container, image or file that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists marks a name or ID that is already taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict marks two requests that cannot both hold, such as two
	// isolators that set the same mount destination.
	ErrConflict = errors.New("conflict")
	// ErrWrongState marks an operation that the container's current state does
	// not allow, such as removing a running container without force.
	ErrWrongState = errors.New("wrong state")
	// ErrCommandNotFound marks a container command that does not exist (exit 127).
	ErrCommandNotFound = errors.New("command not found")
	// ErrCommandNotExecutable marks a container command that exists but cannot
	// be run, for lack of permission or because it is not executable (exit 126).
	ErrCommandNotExecutable = errors.New("command cannot be invoked")
	// ErrUnavailable marks a missing facility on this host: no runtime binary,
	// no cgroup controller, no overlayfs.
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout marks an external call that ran past its deadline.
	ErrTimeout = errors.New("timed out")
	// ErrCorrupt marks content that differs from what names it: a blob whose
	// digest or size is not its descriptor's, an image whose layers are not
	// those its configuration lists.
	ErrCorrupt = errors.New("corrupt content")
	// ErrTooLarge marks input over a size limit, built in or configured.
	ErrTooLarge = errors.New("too large")
	// ErrUnreadable marks stored state that exists but cannot be used: a
	// damaged checkpoint, or one a newer version wrote.
	ErrUnreadable = errors.New("unreadable")
	// ErrForbidden marks a request that is well formed but that the
	// admin's policy does not allow, such as a seccomp profile containers
	// on this host may not choose.
	ErrForbidden = errors.New("forbidden by policy")
	// ErrUnauthorized marks a request without valid credentials: no
	// token, an unknown, revoked or expired one, or a missing client
	// certificate where one is required.
	ErrUnauthorized = errors.New("unauthorized")
)
