package xfsquota

import (
	"runtime"
	"testing"
)

// TestIoctlNumbers checks FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR, derived
// from the direction bits of FS_IOC_GETFLAGS and FS_IOC_SETFLAGS, against
// the values of <linux/fs.h> on the architectures we ship.
func TestIoctlNumbers(t *testing.T) {
	want := map[string][2]uint{
		"amd64":   {0x801c581f, 0x401c5820},
		"arm64":   {0x801c581f, 0x401c5820},
		"ppc64le": {0x401c581f, 0x801c5820},
		"ppc64":   {0x401c581f, 0x801c5820},
	}
	w, ok := want[runtime.GOARCH]
	if !ok {
		t.Skipf("no known values for %s", runtime.GOARCH)
	}
	if got := [2]uint{fsIocFsgetxattr, fsIocFssetxattr}; got != w {
		t.Errorf("FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR = %#x, want %#x", got, w)
	}
}
