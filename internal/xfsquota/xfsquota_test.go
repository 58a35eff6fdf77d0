package xfsquota

import (
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// TestDiskQuotaLayout pins struct fs_disk_quota and struct fsxattr to the
// offsets and sizes of <linux/dqblk_xfs.h> and <linux/fs.h> (as gcc lays
// them out on amd64 and i386 alike).
func TestDiskQuotaLayout(t *testing.T) {
	var q fsDiskQuota
	got := map[string]uintptr{
		"size":            unsafe.Sizeof(q),
		"d_fieldmask":     unsafe.Offsetof(q.Fieldmask),
		"d_id":            unsafe.Offsetof(q.ID),
		"d_blk_hardlimit": unsafe.Offsetof(q.BlkHardlimit),
		"d_blk_softlimit": unsafe.Offsetof(q.BlkSoftlimit),
		"d_bcount":        unsafe.Offsetof(q.Bcount),
		"d_itimer":        unsafe.Offsetof(q.Itimer),
		"d_iwarns":        unsafe.Offsetof(q.Iwarns),
		"d_itimer_hi":     unsafe.Offsetof(q.ItimerHi),
		"d_rtb_hardlimit": unsafe.Offsetof(q.RtbHardlimit),
		"d_rtbtimer":      unsafe.Offsetof(q.Rtbtimer),
		"d_rtbwarns":      unsafe.Offsetof(q.Rtbwarns),
		"fsxattr size":    unsafe.Sizeof(fsxattr{}),
		"fsx_projid":      unsafe.Offsetof(fsxattr{}.Projid),
	}
	want := map[string]uintptr{
		"size": 112, "d_fieldmask": 2, "d_id": 4, "d_blk_hardlimit": 8, "d_blk_softlimit": 16,
		"d_bcount": 40, "d_itimer": 56, "d_iwarns": 64, "d_itimer_hi": 68, "d_rtb_hardlimit": 72,
		"d_rtbtimer": 96, "d_rtbwarns": 100, "fsxattr size": 28, "fsx_projid": 12,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestQcmd(t *testing.T) {
	got := []int{qcmd(qXSetQLim, prjQuota), qcmd(qXGetQuota, prjQuota)}
	if diff := cmp.Diff([]int{0x580402, 0x580302}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestProjectQuotaOptions(t *testing.T) {
	for _, tc := range []struct {
		opts                string
		enforced, accounted bool
	}{
		{"rw,attr2,inode64,prjquota", true, true},
		{"rw,pquota", true, true},
		{"rw,usrquota,pqnoenforce", false, true},
		{"rw,usrquota,grpquota", false, false},
		{"rw,noquota", false, false},
		{"", false, false},
	} {
		enforced, accounted := projectQuota(tc.opts)
		if enforced != tc.enforced || accounted != tc.accounted {
			t.Errorf("projectQuota(%s) = %v, %v, want %v, %v", tc.opts, enforced, accounted, tc.enforced, tc.accounted)
		}
	}
}
