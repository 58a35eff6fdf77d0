// Package safefile opens and reads files that someone else controls: the
// files of a container image (its /etc/passwd, an OCI layout's blobs, a
// `docker save` archive). Such a file may be a FIFO that blocks an open or
// a read forever, a device that never ends (/dev/zero) or has side effects
// when opened, a directory, a symbolic link out of the image, or a sparse
// file of terabytes. So:
//
//   - a path inside a root is resolved as if the root were "/" (symbolic
//     links included, absolute ones too), never reaching outside it;
//   - the file is first opened without being read (O_PATH on Linux) and
//     checked with fstat: anything but a regular file is refused, with an
//     error wrapping api.ErrInvalid, before it is really opened, so no open
//     blocks and no device driver is called;
//   - it is then opened for reading with O_NONBLOCK and O_NOCTTY;
//   - ReadAll reads at most a limit, refusing a larger file with an error
//     wrapping api.ErrTooLarge, first by its size, then by what it reads.
//
// On Linux the resolution is github.com/cyphar/filepath-securejoin's
// pathrs-lite (openat2 with RESOLVE_IN_ROOT where the kernel has it), and the
// reopen goes through a safe /proc. Elsewhere the path is resolved with
// SecureJoin, checked with Lstat, opened, and checked again with fstat.
//
// OpenNoFollow and ReadFileNoFollow do the same for a path outside any
// image that the caller laid out (a state file, a marker), but refuse a
// symbolic link as its last component rather than follow it.
package safefile
