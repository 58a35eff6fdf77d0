package xfsquota

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/mountinfo"
)

// The direction bits of _IOR and _IOW differ between architectures (powerpc
// and mips put them elsewhere), so they are taken from FS_IOC_GETFLAGS,
// _IOR('f', 1, long), and FS_IOC_SETFLAGS, _IOW('f', 2, long), which
// golang.org/x/sys/unix has for each one.
const (
	iocDirMask        = 0xe0000000
	iocRead           = unix.FS_IOC_GETFLAGS & iocDirMask
	iocWrite          = unix.FS_IOC_SETFLAGS & iocDirMask
	fsxattrIoc        = uint(unsafe.Sizeof(fsxattr{}))<<16 | 'X'<<8
	fsIocFsgetxattr   = iocRead | fsxattrIoc | 31  // _IOR('X', 31, struct fsxattr)
	fsIocFssetxattr   = iocWrite | fsxattrIoc | 32 // _IOW('X', 32, struct fsxattr)
	mountinfoPath     = "/proc/self/mountinfo"     // what mountinfo.Read(0) reads
	dirOpenFlags      = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	inodeOpenFlags    = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK
	deviceNodePattern = "xfsquota-"
)

// Open checks that dir is on XFS mounted with project quota enforced and
// returns a Control for that filesystem. Otherwise it returns an error
// wrapping api.ErrUnavailable that says why ("<dir> is on ext4, not xfs",
// "xfs at <mountpoint> is not mounted with prjquota", or the error of a
// first quotactl, such as EPERM without CAP_SYS_ADMIN), or one wrapping
// api.ErrNotFound when dir does not exist.
func Open(dir string) (*Control, error) {
	path, err := resolve(dir)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dir, err)
	}
	mounts, err := mountinfo.Read(0)
	if err != nil {
		return nil, fmt.Errorf("find the mount of %s: %w", dir, err)
	}
	m, ok := mountinfo.Containing(mounts, path)
	if !ok {
		return nil, fmt.Errorf("%s is on no mount in %s: %w", dir, mountinfoPath, api.ErrUnavailable)
	}
	if m.FSType != "xfs" {
		return nil, fmt.Errorf("%s is on %s, not xfs: %w", dir, m.FSType, api.ErrUnavailable)
	}
	if enforced, accounted := projectQuota(m.SuperOpts); !enforced {
		if accounted {
			return nil, fmt.Errorf("xfs at %s is not mounted with prjquota (pqnoenforce only accounts): %w", m.MountPoint, api.ErrUnavailable)
		}
		return nil, fmt.Errorf("xfs at %s is not mounted with prjquota: %w", m.MountPoint, api.ErrUnavailable)
	}
	c := &Control{mountpoint: m.MountPoint, dev: uint64(st.Dev)}
	if isDevice(m.Source, c.dev) {
		c.source = m.Source
	}
	// Reach the quota of the default project once, so that a quotactl that
	// cannot work here (no privilege, a seccomp filter, a device node on a
	// nodev mount) shows now rather than at the first SetLimit.
	var q fsDiskQuota
	if err := c.quotactl(qXGetQuota, 0, unsafe.Pointer(&q)); err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("xfs at %s: %w: %w", m.MountPoint, err, api.ErrUnavailable)
	}
	return c, nil
}

// resolve makes dir absolute with symlinks resolved, as mountinfo lists it.
func resolve(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	path, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s does not exist: %w", dir, api.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	return path, nil
}

// isDevice reports whether path is a block device node for dev.
func isDevice(path string, dev uint64) bool {
	var st unix.Stat_t
	if !filepath.IsAbs(path) || unix.Stat(path, &st) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFBLK && uint64(st.Rdev) == dev
}

// SetLimit gives dir, a directory on the filesystem of c, the project ID id
// with FS_XFLAG_PROJINHERIT, so that entries created in it afterwards
// inherit the project, and limits the blocks of project id to bytes,
// rounded up to 512-byte basic blocks (XFS then keeps the limit in
// filesystem blocks, so Usage reports it rounded up to the block size,
// 4 KiB by default). Entries already in dir keep their
// project. An id of 0 (the default project, whose limits XFS applies to
// every project without its own) or a bytes of 0 (no limit) is refused with
// an error wrapping api.ErrInvalid, as is a dir on another filesystem.
func (c *Control) SetLimit(dir string, id uint32, bytes uint64) error {
	if id == 0 {
		return fmt.Errorf("limit %s: project ID 0 is the default project: %w", dir, api.ErrInvalid)
	}
	if bytes == 0 {
		return fmt.Errorf("limit %s: a limit of 0 bytes means no limit: %w", dir, api.ErrInvalid)
	}
	blocks := bytes / basicBlock
	if bytes%basicBlock != 0 {
		blocks++
	}
	fd, err := unix.Open(dir, dirOpenFlags, 0)
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("limit %s: %w", dir, api.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("limit %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("limit %s: %w", dir, err)
	}
	if uint64(st.Dev) != c.dev {
		return fmt.Errorf("limit %s: not on the xfs at %s: %w", dir, c.mountpoint, api.ErrInvalid)
	}
	// The limit first: should the project ID then fail to stick, a limit
	// on an unused project is harmless, whereas a directory in a project
	// without a limit is not.
	if err := c.setBlockLimit(id, blocks); err != nil {
		return fmt.Errorf("limit project %d to %d bytes: %w", id, bytes, err)
	}
	if err := setProject(fd, id); err != nil {
		return fmt.Errorf("set project of %s to %d: %w", dir, id, err)
	}
	return nil
}

// setProject gives the directory fd the project ID id and
// FS_XFLAG_PROJINHERIT.
func setProject(fd int, id uint32) error {
	var attr fsxattr
	if err := ioctlFsxattr(fd, fsIocFsgetxattr, &attr); err != nil {
		return err
	}
	attr.Projid = id
	attr.Xflags |= fsXflagProjinherit
	return ioctlFsxattr(fd, fsIocFssetxattr, &attr)
}

// Clear removes the block limits of project id (sets them to zero). The
// directories keep the project ID, so their usage is still counted. Clear
// of a project without limits does nothing; id 0 is refused with an error
// wrapping api.ErrInvalid.
func (c *Control) Clear(id uint32) error {
	if id == 0 {
		return fmt.Errorf("clear limit: project ID 0 is the default project: %w", api.ErrInvalid)
	}
	if err := c.setBlockLimit(id, 0); err != nil {
		return fmt.Errorf("clear limit of project %d: %w", id, err)
	}
	return nil
}

// Usage returns the bytes used by project id and its hard limit in bytes (0
// for none). A project that XFS has no record of (nothing used, no limit)
// gives 0, 0.
func (c *Control) Usage(id uint32) (used, limit uint64, err error) {
	var q fsDiskQuota
	err = c.quotactl(qXGetQuota, id, unsafe.Pointer(&q))
	if errors.Is(err, unix.ENOENT) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("usage of project %d: %w", id, err)
	}
	return q.Bcount * basicBlock, q.BlkHardlimit * basicBlock, nil
}

// ProjectID returns the project ID of dir (0 when it has none).
func ProjectID(dir string) (uint32, error) {
	fd, err := unix.Open(dir, inodeOpenFlags, 0)
	if errors.Is(err, unix.ENOENT) {
		return 0, fmt.Errorf("project of %s: %w", dir, api.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("project of %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var attr fsxattr
	if err := ioctlFsxattr(fd, fsIocFsgetxattr, &attr); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
			err = fmt.Errorf("%w: %w", err, api.ErrUnavailable)
		}
		return 0, fmt.Errorf("project of %s: %w", dir, err)
	}
	return attr.Projid, nil
}

// setBlockLimit sets the hard block limit of project id to blocks basic
// blocks and clears its soft limit.
func (c *Control) setBlockLimit(id uint32, blocks uint64) error {
	q := fsDiskQuota{
		Version:      fsDquotVersion,
		Flags:        fsProjQuota,
		Fieldmask:    fsDQBHard | fsDQBSoft,
		ID:           id,
		BlkHardlimit: blocks,
	}
	return c.quotactl(qXSetQLim, id, unsafe.Pointer(&q))
}

// quotactl runs an XFS quota command on project id of the filesystem:
// with quotactl_fd(2) on the mount point where the kernel has it (5.14),
// else with quotactl(2) on a block device node, the mount's source or, where
// that node is missing (containers), one made for the call.
func (c *Control) quotactl(cmd int, id uint32, addr unsafe.Pointer) error {
	qc := uintptr(qcmd(cmd, prjQuota))
	via := c.via
	if via == viaAuto {
		switch {
		case haveQuotactlFD():
			via = viaFD
		case c.source != "":
			via = viaSource
		default:
			via = viaMknod
		}
	}
	switch via {
	case viaFD:
		fd, err := unix.Open(c.mountpoint, dirOpenFlags, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", c.mountpoint, err)
		}
		defer unix.Close(fd)
		_, _, errno := unix.Syscall6(unix.SYS_QUOTACTL_FD, uintptr(fd), qc, uintptr(id), uintptr(addr), 0, 0)
		if errno != 0 {
			return fmt.Errorf("quotactl_fd %s: %w", c.mountpoint, errno)
		}
		return nil
	case viaSource:
		return quotactlDevice(c.source, qc, id, addr)
	default:
		return c.quotactlMknod(qc, id, addr)
	}
}

// haveQuotactlFD reports whether quotactl_fd(2) can be called: on an invalid
// descriptor it fails with EBADF where the kernel has it (5.14) and a
// seccomp filter lets it through, with ENOSYS or EPERM elsewhere.
var haveQuotactlFD = sync.OnceValue(func() bool {
	_, _, errno := unix.Syscall6(unix.SYS_QUOTACTL_FD, uintptr(^uint32(0)), uintptr(qcmd(qXGetQuota, prjQuota)), 0, 0, 0, 0)
	return errno == unix.EBADF
})

// quotactlMknod runs quotactl(2) on a block device node for the filesystem
// made in a new private temporary directory and removed afterwards, as
// moby's projectquota does. The directory must not be on a nodev mount.
func (c *Control) quotactlMknod(qc uintptr, id uint32, addr unsafe.Pointer) error {
	dir, err := os.MkdirTemp("", deviceNodePattern)
	if err != nil {
		return fmt.Errorf("make a device node for %s: %w", c.mountpoint, err)
	}
	defer os.RemoveAll(dir)
	node := filepath.Join(dir, "dev")
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(c.dev)); err != nil {
		return fmt.Errorf("make a device node for %s: %w", c.mountpoint, err)
	}
	return quotactlDevice(node, qc, id, addr)
}

func quotactlDevice(node string, qc uintptr, id uint32, addr unsafe.Pointer) error {
	p, err := unix.BytePtrFromString(node)
	if err != nil {
		return fmt.Errorf("quotactl %s: %w", node, err)
	}
	_, _, errno := unix.Syscall6(unix.SYS_QUOTACTL, qc, uintptr(unsafe.Pointer(p)), uintptr(id), uintptr(addr), 0, 0)
	if errno != 0 {
		return fmt.Errorf("quotactl %s: %w", node, errno)
	}
	return nil
}

func ioctlFsxattr(fd int, req uint, attr *fsxattr) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(attr)))
	if errno != 0 {
		return errno
	}
	return nil
}
