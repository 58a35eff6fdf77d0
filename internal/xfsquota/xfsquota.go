package xfsquota

import "strings"

// Control sets project quotas on one XFS filesystem.
type Control struct {
	mountpoint string
	dev        uint64 // st_dev of the filesystem
	// source is the block device from mountinfo when its node exists here
	// with the filesystem's device number, else "".
	source string
	// via forces one way to reach quotactl (tests); zero picks the best.
	via access
}

// access is a way to name the filesystem to quotactl.
type access int

const (
	viaAuto   access = iota
	viaFD            // quotactl_fd(2) on the mount point, Linux 5.14 and later
	viaSource        // quotactl(2) on the mount's source device node
	viaMknod         // quotactl(2) on a device node made for the call
)

// basicBlock is the unit of fs_disk_quota block counts ("BB").
const basicBlock = 512

// Constants of <linux/dqblk_xfs.h> and <linux/quota.h>.
const (
	fsDquotVersion = 1      // FS_DQUOT_VERSION
	fsProjQuota    = 1 << 1 // FS_PROJ_QUOTA
	fsDQBSoft      = 1 << 2 // FS_DQ_BSOFT
	fsDQBHard      = 1 << 3 // FS_DQ_BHARD
	qXGetQuota     = 'X'<<8 + 3
	qXSetQLim      = 'X'<<8 + 4
	prjQuota       = 2 // PRJQUOTA
)

// qcmd is QCMD(cmd, type) of <linux/quota.h>.
func qcmd(cmd, typ int) int { return cmd<<8 | typ&0xff }

// fsDiskQuota is struct fs_disk_quota of <linux/dqblk_xfs.h>. Every field
// sits at its natural alignment and the size is a multiple of 8, so this
// layout is the C one on every architecture, 32- and 64-bit alike.
type fsDiskQuota struct {
	Version      int8
	Flags        int8
	Fieldmask    uint16
	ID           uint32
	BlkHardlimit uint64 // basic blocks
	BlkSoftlimit uint64
	InoHardlimit uint64
	InoSoftlimit uint64
	Bcount       uint64 // basic blocks in use
	Icount       uint64
	Itimer       int32
	Btimer       int32
	Iwarns       uint16
	Bwarns       uint16
	ItimerHi     int8
	BtimerHi     int8
	RtbtimerHi   int8
	_            int8
	RtbHardlimit uint64
	RtbSoftlimit uint64
	Rtbcount     uint64
	Rtbtimer     int32
	Rtbwarns     uint16
	_            int16
	_            [8]byte
}

// fsxattr is struct fsxattr of <linux/fs.h>, for FS_IOC_FSGETXATTR and
// FS_IOC_FSSETXATTR (golang.org/x/sys/unix has no such type).
type fsxattr struct {
	Xflags     uint32
	Extsize    uint32
	Nextents   uint32
	Projid     uint32
	Cowextsize uint32
	_          [8]byte
}

// fsXflagProjinherit is FS_XFLAG_PROJINHERIT: new entries take the
// directory's project ID.
const fsXflagProjinherit = 0x200

// projectQuota reports whether XFS super options (the comma-separated last
// field of a mountinfo line) enforce project quota, and whether they only
// account for it (pqnoenforce).
func projectQuota(superOpts string) (enforced, accounted bool) {
	for o := range strings.SplitSeq(superOpts, ",") {
		switch o {
		case "prjquota", "pquota", "pqenforce":
			return true, true
		case "pqnoenforce":
			accounted = true
		}
	}
	return false, accounted
}
