package userfile

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
)

// onProcfs reports whether dir is in a procfs, whose links (/proc/PID/fd/N)
// only the kernel can follow.
func onProcfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// mayFollow refuses the links the kernel's protected_symlinks refuses to
// follow: in a sticky, world-writable directory, owned by neither the
// caller nor the directory's owner. It applies whatever the sysctl says.
func mayFollow(link string, lfi fs.FileInfo, dir string) error {
	dfi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if dfi.Mode()&fs.ModeSticky == 0 || dfi.Mode().Perm()&0o002 == 0 {
		return nil
	}
	l, lok := lfi.Sys().(*syscall.Stat_t)
	d, dok := dfi.Sys().(*syscall.Stat_t)
	if !lok || !dok || l.Uid == uint32(os.Geteuid()) || l.Uid == d.Uid {
		return nil
	}
	return fmt.Errorf("%s is a symlink in a sticky, world-writable directory that neither this user nor the directory's owner owns: not followed: %w", link, api.ErrInvalid)
}

// keepOwner gives the replacement the owner of the file it replaces, where
// the caller may (root); elsewhere the new file is the caller's.
func keepOwner(f *os.File, existing fs.FileInfo) {
	st, ok := existing.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return
	}
	_ = f.Chown(int(st.Uid), int(st.Gid))
}
