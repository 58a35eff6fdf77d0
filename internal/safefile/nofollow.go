package safefile

import (
	"fmt"
	"io/fs"
	"os"
)

// OpenNoFollow opens path for reading with the checks of Open, except that
// a symbolic link as its last component is not followed but refused (with
// an error wrapping api.ErrInvalid): for files at a path the caller made,
// which someone may have replaced with a link.
func OpenNoFollow(path string) (*os.File, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

// ReadFileNoFollow reads path (see OpenNoFollow), at most limit bytes (see
// ReadAll).
func ReadFileNoFollow(path string, limit int64) ([]byte, error) {
	f, err := OpenNoFollow(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, limit)
}

// Kind names a file type for messages: "a regular file", "a directory", "a
// FIFO", ...
func Kind(mode fs.FileMode) string {
	if mode.IsRegular() {
		return "a regular file"
	}
	return kind(mode)
}
