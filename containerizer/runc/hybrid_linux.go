package runc

import (
	"bytes"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// hybridWrapper works around crun's refusal of hybrid cgroup hosts whose
// cgroup2 mount has controllers ("cgroups in hybrid mode not supported, drop
// all controllers from cgroupv2"), as on hosts where hugetlb is only in v2.
// crun then runs in a private mount namespace without that mount, so it sees a
// plain v1 host; the containers' v1 cgroups are the same. It returns nil when
// the host needs no workaround or unshare(1) is missing.
func hybridWrapper() []string {
	var fs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &fs); err != nil || fs.Type == unix.CGROUP2_SUPER_MAGIC {
		return nil
	}
	if err := unix.Statfs("/sys/fs/cgroup/unified", &fs); err != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil
	}
	controllers, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil || len(bytes.TrimSpace(controllers)) == 0 {
		return nil
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return nil
	}
	return []string{unshare, "--mount", "--propagation", "private", "sh", "-c",
		`umount /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"`}
}
