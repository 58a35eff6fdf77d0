package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/caisson/caisson/api"
)

// PluginDir is where dockerd looks for legacy plugins' sockets.
const PluginDir = "/run/docker/plugins"

// Limits of the plugin's HTTP server: a request is small, and dockerd sends
// its headers and body at once.
const (
	maxConns          = 64
	maxHeaderBytes    = 16 << 10
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	idleTimeout       = time.Minute
	// shutdownWait is how long Serve waits for calls in flight at shutdown.
	shutdownWait = 30 * time.Second
)

// contentType is what go-plugins-helpers answers with.
const contentType = "application/vnd.docker.plugins.v1.1+json"

// Handler answers Docker's volume plugin protocol (POST /Plugin.Activate
// and /VolumeDriver.*) for d. Every request body is bounded
// (MaxRequestBody) and must be one JSON value with nothing after it; every
// refusal is a plugin-protocol error, {"Err": "..."}, with a 4xx status for
// a malformed request and 500 for an operation that failed.
func Handler(d *Driver) http.Handler {
	mux := http.NewServeMux()
	type call func(body []byte) (any, error)
	handle := func(path string, fn call) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				writeErr(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s: method %s: want POST", path, r.Method))
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeErr(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body longer than %d bytes", MaxRequestBody))
				return
			}
			if err != nil {
				writeErr(w, http.StatusBadRequest, "read request: "+err.Error())
				return
			}
			res, err := fn(body)
			switch {
			case errors.Is(err, errBadRequest):
				writeErr(w, http.StatusBadRequest, err.Error())
			case err != nil:
				writeErr(w, http.StatusInternalServerError, err.Error())
			default:
				writeJSON(w, http.StatusOK, res)
			}
		})
	}
	handle("/Plugin.Activate", func(b []byte) (any, error) {
		return map[string][]string{"Implements": {"VolumeDriver"}}, decode(b, nil)
	})
	handle("/VolumeDriver.Create", func(b []byte) (any, error) {
		var req volume.CreateRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return struct{}{}, d.Create(&req)
	})
	handle("/VolumeDriver.Remove", func(b []byte) (any, error) {
		var req volume.RemoveRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return struct{}{}, d.Remove(&req)
	})
	handle("/VolumeDriver.Mount", func(b []byte) (any, error) {
		var req volume.MountRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return d.Mount(&req)
	})
	handle("/VolumeDriver.Unmount", func(b []byte) (any, error) {
		var req volume.UnmountRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return struct{}{}, d.Unmount(&req)
	})
	handle("/VolumeDriver.Path", func(b []byte) (any, error) {
		var req volume.PathRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return d.Path(&req)
	})
	handle("/VolumeDriver.Get", func(b []byte) (any, error) {
		var req volume.GetRequest
		if err := decode(b, &req); err != nil {
			return nil, err
		}
		return d.Get(&req)
	})
	handle("/VolumeDriver.List", func(b []byte) (any, error) {
		if err := decode(b, nil); err != nil {
			return nil, err
		}
		return d.List()
	})
	handle("/VolumeDriver.Capabilities", func(b []byte) (any, error) {
		return d.Capabilities(), decode(b, nil)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("%s: no such endpoint of a volume plugin", r.URL.Path))
	})
	return mux
}

// errBadRequest marks a request that is not what the protocol says.
var errBadRequest = fmt.Errorf("bad request: %w", api.ErrInvalid)

// decode decodes a request body into req: exactly one JSON value, nothing
// after it. With req nil (calls without arguments) the body may be empty,
// and its content is not used.
func decode(body []byte, req any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if req == nil {
			return nil
		}
		return fmt.Errorf("empty request body: %w", errBadRequest)
	}
	if req == nil {
		if !json.Valid(body) {
			return fmt.Errorf("request body is not one JSON value: %w", errBadRequest)
		}
		return nil
	}
	// Unmarshal refuses anything but white space after the value.
	if err := json.Unmarshal(body, req); err != nil {
		return fmt.Errorf("decode request: %v: %w", err, errBadRequest)
	}
	return nil
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, volume.ErrorResponse{Err: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(volume.ErrorResponse{Err: "encode answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Serve answers Docker's volume plugin protocol on l until ctx is done, then
// stops accepting, waits (a while) for the calls in flight, closes l (which
// removes its socket, see Listen) and closes d. At most maxConns
// connections are served at once, each with limits on its headers, its
// body and the time they take to arrive.
func Serve(ctx context.Context, d *Driver, l net.Listener) error {
	srv := &http.Server{
		Handler:           Handler(d),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(newLimitListener(l, maxConns)) }()
	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
		err = srv.Shutdown(sctx)
		cancel()
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	case err = <-errc:
		_ = l.Close()
	}
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// limitListener accepts at most n connections at once; more wait in the
// kernel's backlog.
type limitListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func newLimitListener(l net.Listener, n int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
