package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/caisson/caisson/api"
)

// OpenInRoot opens name, a path inside root, for reading. name is resolved
// as if root were "/": ".." and symbolic links (absolute ones too) stay
// inside root. Only a regular file is opened; anything else is refused with
// an error wrapping api.ErrInvalid before it is opened. A missing file is an
// error wrapping fs.ErrNotExist.
func OpenInRoot(root, name string) (*os.File, error) {
	f, err := openInRoot(root, name)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", name, root, err)
	}
	return f, nil
}

// Open opens path for reading, following symbolic links (the caller named
// the path), with the checks of OpenInRoot: only a regular file is opened.
func Open(path string) (*os.File, error) {
	f, err := open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

// ReadAll reads f to its end. A file larger than limit bytes is refused with
// an error wrapping api.ErrTooLarge: by its size when it says so, and by
// what it gives otherwise (a file that grows while it is read).
func ReadAll(f *os.File, limit int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, tooLarge(f.Name(), fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(f.Name(), int64(len(data)), limit)
	}
	return data, nil
}

// ReadFileInRoot reads name inside root (see OpenInRoot), at most limit
// bytes (see ReadAll).
func ReadFileInRoot(root, name string, limit int64) ([]byte, error) {
	f, err := OpenInRoot(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, limit)
}

// ReadFile reads path (see Open), at most limit bytes (see ReadAll).
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, limit)
}

func tooLarge(name string, size, limit int64) error {
	return fmt.Errorf("%s: %d bytes or more, over the limit of %d: %w", name, size, limit, api.ErrTooLarge)
}

// checkRegular refuses anything but a regular file.
func checkRegular(mode fs.FileMode) error {
	if mode.IsRegular() {
		return nil
	}
	return fmt.Errorf("not a regular file but %s: %w", kind(mode), api.ErrInvalid)
}

// kind names a file type for errors.
func kind(mode fs.FileMode) string {
	switch t := mode.Type(); {
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	default:
		return "an irregular file"
	}
}

// errNotSame is a file replaced between two looks at it.
var errNotSame = errors.New("the file changed while it was opened")
