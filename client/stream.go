package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/caisson/caisson/api"
)

// MaxEventLine bounds one line of an events stream.
const MaxEventLine = 4 << 20

// Events follows a session's events stream, calling fn with each event
// but the keep-alive pings, in order, until one of these ends it: the
// master closes the stream (nil), ctx ends (ctx.Err()), fn fails (fn's
// error), or the stream breaks (an error wrapping api.ErrUnavailable).
// Unacknowledged status updates come again on each new stream: a program
// that reconnects calls Events again, then Reconcile.
func (c *Client) Events(ctx context.Context, session string, fn func(api.SessionEvent) error) error {
	p := path("sessions", session, "events")
	resp, err := c.do(ctx, http.MethodGet, p, nil, nil, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(r, MaxEventLine)
		if len(bytes.TrimSpace(line)) > 0 {
			var ev api.SessionEvent
			if jerr := json.Unmarshal(line, &ev); jerr != nil {
				return fmt.Errorf("GET %s: line %d is not an event: %v: %w", p, n, jerr, api.ErrUnavailable)
			}
			if !ev.Ping {
				if ferr := fn(ev); ferr != nil {
					return ferr
				}
			}
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			// Before EOF: a cancelled request's body may end either way.
			return ctx.Err()
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, api.ErrTooLarge):
			return fmt.Errorf("GET %s: line %d: %w", p, n, err)
		default:
			return fmt.Errorf("GET %s: the stream broke off: %w: %w", p, err, api.ErrUnavailable)
		}
	}
}

// readLine reads one line, without its newline, of at most max bytes; at
// the end of r it returns what is left with io.EOF.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("longer than %d bytes: %w", max, api.ErrTooLarge)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

// Logs copies a task's output to w: what it has written so far, and with
// follow, what it writes next, until it ends (nil) or ctx does
// (ctx.Err()).
func (c *Client) Logs(ctx context.Context, task string, follow bool, w io.Writer) error {
	p := path("tasks", task, "logs")
	var q url.Values
	if follow {
		q = url.Values{"follow": {"true"}}
	}
	resp, err := c.do(ctx, http.MethodGet, p, q, nil, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(taggedWriter{w}, resp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var we writeError
		if errors.As(err, &we) {
			return we.err
		}
		return fmt.Errorf("GET %s: the output broke off: %w: %w", p, err, api.ErrUnavailable)
	}
	return nil
}

// writeError is an error of the writer Logs copies to, told apart from
// one of the stream.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

type taggedWriter struct{ w io.Writer }

func (t taggedWriter) Write(b []byte) (int, error) {
	n, err := t.w.Write(b)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}
