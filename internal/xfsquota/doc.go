// Package xfsquota enforces a size on a directory of an XFS filesystem with
// project quotas, for volumes that are directories of a shared filesystem.
//
// The filesystem must be mounted with project quota enforced (-o prjquota,
// alias pquota). Each limited directory gets its own project ID, which new
// files and subdirectories inherit (FS_XFLAG_PROJINHERIT), and a hard block
// limit on that project:
//
//	c, err := Open(root)               // root is on xfs mounted with prjquota
//	c.SetLimit(root+"/vol1", 42, size) // new, empty directory: project 42, limit size
//	used, limit, err := c.Usage(42)
//	c.Clear(42)                        // limit lifted; the project ID stays on vol1
//
// A write past the limit fails with ENOSPC (XFS reports a full project as a
// full filesystem, not EDQUOT). Files already in a directory keep their
// project when SetLimit gives it one, so limit a directory while it is
// empty. XFS refuses rename(2) into or out of a directory of another project
// with EXDEV, so tools fall back to copying.
//
// Open fails with an error wrapping api.ErrUnavailable when the directory
// is not on XFS or the filesystem is not mounted with prjquota.
package xfsquota
