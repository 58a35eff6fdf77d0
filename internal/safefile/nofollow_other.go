//go:build !linux

package safefile

import "os"

func openNoFollow(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	return openChecked(path, fi)
}
