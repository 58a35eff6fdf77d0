// Package e2e holds end-to-end tests: they build the caisson binary and drive
// it as a user would, with the real runc and crun, cgroups, overlayfs and
// images made from the host's busybox-static. They need root; each test uses
// its own state directories and cgroup parent, and checks that nothing is
// left behind when it is done.
package e2e
