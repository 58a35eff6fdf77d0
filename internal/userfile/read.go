package userfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/caisson/caisson/api"
)

// LimitError is an input larger than its reader takes. It wraps
// api.ErrInvalid.
type LimitError struct {
	Path  string
	Limit int64 // bytes
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: larger than %s, the most this file may hold: %v", e.Path, api.FormatSize(uint64(e.Limit)), api.ErrInvalid)
}

func (e *LimitError) Unwrap() error { return api.ErrInvalid }

// Open opens path for reading at most limit bytes (see the package doc):
// a directory or a socket is refused, a regular file above limit is a
// *LimitError at once, and the reader of anything else returns one when
// there is more than limit bytes to read.
func Open(path string, limit int64) (io.ReadCloser, error) {
	// A socket cannot be opened at all; say so rather than ENXIO.
	if fi, err := os.Stat(path); err == nil {
		if err := readable(path, fi); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = readable(path, fi)
	}
	if err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
		err = &LimitError{Path: path, Limit: limit}
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &reader{f: f, left: limit, err: &LimitError{Path: path, Limit: limit}}, nil
}

// ReadFile reads path whole, at most limit bytes, as Open does.
func ReadFile(path string, limit int64) ([]byte, error) {
	r, err := Open(path, limit)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func readable(path string, fi fs.FileInfo) error {
	switch m := fi.Mode(); {
	case m.IsDir():
		return fmt.Errorf("read %s: a directory, not a file: %w", path, api.ErrInvalid)
	case m&fs.ModeSocket != 0:
		return fmt.Errorf("read %s: a socket, not a file: %w", path, api.ErrInvalid)
	}
	return nil
}

// reader gives at most left more bytes, then err if there are any more.
type reader struct {
	f    *os.File
	left int64
	err  *LimitError
}

func (r *reader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		var one [1]byte
		n, err := r.f.Read(one[:])
		if n > 0 {
			return 0, r.err
		}
		return 0, err
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.f.Read(p)
	r.left -= int64(n)
	return n, err
}

func (r *reader) Close() error { return r.f.Close() }
