//go:build !linux

package safefile

import (
	"fmt"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
)

func openInRoot(root, name string) (*os.File, error) {
	p, err := securejoin.SecureJoin(root, name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	return openChecked(p, fi)
}

func open(path string) (*os.File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return openChecked(path, fi)
}

// openChecked opens p, which was fi when looked at, if it is a regular file
// and still the same one once open.
func openChecked(p string, fi os.FileInfo) (*os.File, error) {
	if err := checkRegular(fi.Mode()); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	got, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !os.SameFile(fi, got) || !got.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, errNotSame)
	}
	return f, nil
}
