package userfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

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
// there is more than limit bytes to read. A FIFO is waited on until a
// writer comes, as cat waits; a command that catches signals uses
// OpenContext, which also stops waiting when its context is done.
func Open(path string, limit int64) (io.ReadCloser, error) {
	return OpenContext(context.Background(), path, limit)
}

// OpenContext is Open, with every wait (for a FIFO's writer, for data
// from a FIFO or a terminal) ended when ctx is done: the open or the read
// then returns an error wrapping ctx's.
func OpenContext(ctx context.Context, path string, limit int64) (io.ReadCloser, error) {
	// A socket cannot be opened at all; say so rather than ENXIO.
	if fi, err := os.Stat(path); err == nil {
		if err := readable(path, fi); err != nil {
			return nil, err
		}
	}
	// Opened without blocking: a FIFO's open would wait for a writer, in
	// the kernel, where no context reaches.
	f, err := openRead(path)
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
	r := &reader{f: f, left: limit, err: &LimitError{Path: path, Limit: limit}, ctx: ctx}
	// A wait on f (where it can wait) ends when ctx is done.
	r.stop = context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	if fi.Mode()&fs.ModeNamedPipe != 0 {
		if err := waitWriter(f); err != nil {
			_ = r.Close()
			return nil, fmt.Errorf("open %s: wait for a writer: %w", path, r.cause(err))
		}
	}
	return r, nil
}

// ReadFile reads path whole, at most limit bytes, as Open does.
func ReadFile(path string, limit int64) ([]byte, error) {
	return ReadFileContext(context.Background(), path, limit)
}

// ReadFileContext reads path whole, at most limit bytes, as OpenContext
// does.
func ReadFileContext(ctx context.Context, path string, limit int64) ([]byte, error) {
	r, err := OpenContext(ctx, path, limit)
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
	ctx  context.Context
	stop func() bool // stops the watch on ctx
}

func (r *reader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		var one [1]byte
		n, err := r.f.Read(one[:])
		if n > 0 {
			return 0, r.err
		}
		return 0, r.cause(err)
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.f.Read(p)
	r.left -= int64(n)
	return n, r.cause(err)
}

// cause says that a read ended by the context's watch ended for the
// context.
func (r *reader) cause(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && r.ctx.Err() != nil {
		return fmt.Errorf("%w: %w", err, context.Cause(r.ctx))
	}
	return err
}

func (r *reader) Close() error {
	r.stop()
	return r.f.Close()
}
