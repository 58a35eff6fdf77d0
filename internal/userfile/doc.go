// Package userfile opens the files a user names on the command line: the
// inputs a command reads (scenarios, traces, specs) and the outputs it
// writes (plots, profiles). Such a path may name anything: a device, a
// FIFO, a directory, a symlink, a file of any size. Nothing here replaces
// what the user did not mean to replace, or reads without a bound.
//
// Writing (Create, Write) goes by what the path names:
//
//	nothing, a regular file   written to a temporary file in the same
//	                          directory, renamed over the path on Commit:
//	                          readers see the old content or the new, never
//	                          half; an existing file keeps its mode (and,
//	                          for root, its owner)
//	a character device, FIFO  written through, never renamed over:
//	                          /dev/null, /dev/stdout, a pipe
//	a symlink                 followed, and the rule above applied to its
//	                          target, as Docker and the shell write through
//	                          links; the link itself is never replaced. A
//	                          dangling link creates its target. A link in a
//	                          sticky, world-writable directory (/tmp) that
//	                          neither the caller nor the directory's owner
//	                          owns is refused, as the kernel's
//	                          protected_symlinks refuses to follow it. A
//	                          link through /proc/PID/fd (/dev/stdout
//	                          redirected to a file) is written through, at
//	                          the end of the open file.
//	a directory, socket,      refused with an error wrapping api.ErrInvalid
//	block device
//
// A path written through is opened by name after it was checked: the node
// opened must be the one checked, of the same type, or the write is
// refused (api.ErrInvalid) before anything is written, so a link swapped
// meanwhile for one to a regular file cannot have that file written over.
// A terminal written to does not become the controlling terminal.
//
// Reading (Open, ReadFile) takes anything that can be read, but never more
// than a limit: a directory or socket is refused, a regular file larger
// than the limit is refused before it is read, and anything else (a FIFO,
// /dev/zero) is read through a reader that fails once it has given limit
// bytes. The error is a *LimitError naming the limit; it wraps
// api.ErrInvalid. Reading a FIFO waits for a writer, as cat does, but the
// open itself never waits (in the kernel, where nothing could end it): the
// wait and every read that waits (a FIFO, a terminal) are in Go's poller.
// A signal's default action ends them; a command that catches signals
// reads with OpenContext or ReadFileContext, whose waits end when their
// context is done.
package userfile
