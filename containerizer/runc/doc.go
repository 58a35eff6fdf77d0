// Package runc drives an OCI runtime binary (runc or crun) through its command
// line. It is the only code in Caisson that execs the runtime; the
// containerizer reaches it through containerizer.Runtime.
//
// Every call runs the binary once, as
//
//	<command> --root <Root> --log <tmp> --log-format json <subcommand> ...
//
// with a per-call timeout (Config.Timeout, Config.CreateTimeout for create).
// A call that runs past it is killed, with every process in its process
// group, and returns an error wrapping api.ErrTimeout. A runtime binary that
// cannot be run gives api.ErrUnavailable.
//
// The runtime's own messages are read from its --log file (JSON lines of
// level, msg and time), never from its stderr: "runc create" without a
// terminal hands its own standard streams to the container, so its stderr is
// the container's. (runc and crun still print their error there too, so a
// failed create leaves the runtime's message in the container's stderr file.)
//
// # Lifecycle
//
//	            Create                 Start                 (exit)
//	(unknown) ─────────► created ─────────────► running ─────────────► stopped
//	    ▲                   │                     │  Kill(SIGKILL)        │
//	    │                   └──── Delete ─────────┴─ Delete(force) ──────┴─ Delete
//	    └────────────────────────────────────────────────────────────────────┘
//
// Create returns the pid of the container's init process, which waits in the
// runtime's "init" until Start. The create command itself exits as soon as
// the container exists: the init process is not its child but is reparented,
// and it keeps the standard streams the caller passed in CreateOpts. Pass
// them as *os.File (CreateOpts only allows that): exec then hands the
// descriptors to the runtime directly, with no copying goroutines, so waiting
// for the create command never waits for the container to close its output.
//
// There is no events loop and no "runc events" here. The containerizer's
// monitor is a child subreaper (PR_SET_CHILD_SUBREAPER): the container's init
// is reparented to it when the create command exits, and it learns of the
// exit, with the exit status, from wait4 on the pid that Create returned.
// State reports "stopped" once that process is gone.
//
// # Errors
//
// Create maps the runtime's complaint about the container's command to
// api.ErrCommandNotFound (exit 127: no such file, not in $PATH) or
// api.ErrCommandNotExecutable (exit 126: permission denied, a directory, not a
// directory, a noexec mount, exec format error). runc 1.1 and crun 1.8 check
// the command at create time; an exec format error surfaces only when the
// process starts, as the container's exit status 1.
//
// State and Start of an unknown container wrap api.ErrNotFound; Start of a
// running or stopped one and Delete without force of a running one wrap
// api.ErrWrongState. Kill and Delete of unknown containers, and Kill of a
// stopped one, succeed, so cleanup can be repeated.
package runc
