package containerizer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/caisson/caisson/internal/safefile"
)

// LogOptions say how to print a container's log.
type LogOptions struct {
	// Follow keeps printing until the container has exited.
	Follow bool
	// Timestamps prefixes each line with the time it was written.
	Timestamps     bool
	Stdout, Stderr io.Writer
}

// Logs prints a container's output, stdout and stderr to their writers.
func (c *Containerizer) Logs(ctx context.Context, id string, opts LogOptions) error {
	if err := checkID(id); err != nil {
		return err
	}
	f, err := safefile.Open(c.logPath(id)) // a FIFO in its place would block
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, err := c.loadRecord(id); err != nil {
				return err
			}
			return nil // no output yet
		}
		return err
	}
	defer f.Close()
	stop := make(chan struct{})
	if opts.Follow {
		go func() {
			_, _ = c.Wait(ctx, id)
			close(stop)
		}()
	} else {
		close(stop)
	}
	return followLog(ctx, f, opts, stop)
}

// followLog copies CRI-format log records from f to the writers. At the end
// of the file it waits for more until stop is closed, then reads what is left
// and returns.
func followLog(ctx context.Context, f *os.File, opts LogOptions, stop <-chan struct{}) error {
	br := bufio.NewReaderSize(f, 64*1024)
	var pending []byte
	stopped := false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = append(pending, line...)
			pending = nil
			writeRecord(line[:len(line)-1], opts)
			continue
		}
		pending = append(pending, line...)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if stopped {
			return nil
		}
		select {
		case <-stop:
			stopped = true // one more pass reads what the monitor wrote last
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func writeRecord(rec []byte, opts LogOptions) {
	// TIMESTAMP STREAM TAG CONTENT
	parts := bytes.SplitN(rec, []byte{' '}, 4)
	if len(parts) < 3 {
		return
	}
	content := []byte{}
	if len(parts) == 4 {
		content = parts[3]
	}
	w := opts.Stdout
	if string(parts[1]) == "stderr" {
		w = opts.Stderr
	}
	if w == nil {
		return
	}
	var out []byte
	if opts.Timestamps {
		out = append(append(out, parts[0]...), ' ')
	}
	out = append(out, content...)
	if string(parts[2]) == "F" {
		out = append(out, '\n')
	}
	_, _ = w.Write(out)
}

// openLogForAttach opens the container log so the caller sees all output
// even if the container is removed right after it exits.
func (c *Containerizer) openLogForAttach(id string) (*os.File, error) {
	f, err := safefile.Open(c.logPath(id))
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	return f, nil
}
