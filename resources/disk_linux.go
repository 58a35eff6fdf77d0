package resources

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// diskSize is the total size of the filesystem holding path, or holding its
// nearest existing parent when path does not exist yet.
func diskSize(path string) (int64, error) {
	p, err := filepath.Abs(path)
	if err != nil {
		return 0, err
	}
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			bsize := int64(st.Frsize)
			if bsize == 0 {
				bsize = int64(st.Bsize)
			}
			return int64(st.Blocks) * bsize, nil
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" {
			return 0, fmt.Errorf("statfs %s: %w", p, err)
		}
		p = filepath.Dir(p)
	}
}
