package agent

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/pki"
)

// serve starts the agent's own API on Config.ListenAddr; stop stops it
// and waits for it.
func (a *Agent) serve() (stop func(), err error) {
	ln, err := net.Listen("tcp", a.cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("agent API: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", a.health)
	mux.HandleFunc("GET /v1/containers/{task}/logs", a.logs)
	handler := a.masterOnly(mux)
	a.mu.Lock()
	a.apiAddr = ln.Addr().String()
	a.mu.Unlock()
	close(a.listening)
	return a.serveOn(tls.NewListener(ln, a.cfg.ServerTLS), handler), nil
}

// serveOn serves handler on ln until the returned stop, which waits for
// the server's end.
func (a *Agent) serveOn(ln net.Listener, handler http.Handler) (stop func()) {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-served
	}
}

// address is where the master reaches the agent's API: Config.Address, or
// the listener's address with Hostname for a wildcard host.
func (a *Agent) address() string {
	if a.cfg.Address != "" {
		return a.cfg.Address
	}
	a.mu.Lock()
	addr := a.apiAddr
	a.mu.Unlock()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = a.cfg.Hostname
	}
	return net.JoinHostPort(host, port)
}

// masterOnly lets through requests that carry the master's certificate,
// verified against the cluster's CA.
func (a *Agent) masterOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, err := pki.PeerRole(r.TLS)
		if err != nil {
			writeError(w, fmt.Errorf("the agent's API answers the master only: %w: %w", err, api.ErrUnauthorized))
			return
		}
		if role != pki.RoleMaster {
			writeError(w, fmt.Errorf("the agent's API answers the master only, not an %s: %w", role, api.ErrForbidden))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *Agent) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", Version: a.cfg.Version, Role: "agent"})
}

// logs writes a task's output: its container's while the agent has it,
// with follow=true until the container ends; the kept log of a task that
// ended.
func (a *Agent) logs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("task")
	follow := false
	if v := r.URL.Query().Get("follow"); v != "" {
		var err error
		if follow, err = strconv.ParseBool(v); err != nil {
			writeError(w, &api.FieldError{Field: "follow", Value: v, Err: fmt.Errorf("want true or false: %w", api.ErrInvalid)})
			return
		}
	}
	a.mu.Lock()
	var cid string
	if t, ok := a.tasks[id]; ok {
		cid = t.rec.Container
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	fw := &flushWriter{w: w}
	if cid != "" {
		if f, ok := w.(http.Flusher); ok && follow {
			w.WriteHeader(http.StatusOK) // the status now, the output as it comes
			fw.f = f
			f.Flush()
		}
		err := a.cfg.Containers.Logs(r.Context(), cid, follow, fw)
		if err == nil || fw.n > 0 || !errors.Is(err, api.ErrNotFound) {
			if err != nil && r.Context().Err() == nil {
				a.log.Warn("logs", "task", id, "err", err)
			}
			return
		}
		// The task ended meanwhile: its log was kept before its container
		// was removed.
	}
	f, err := a.kept.open(id)
	if err != nil {
		if errors.Is(err, api.ErrNotFound) {
			err = fmt.Errorf("task %s: no container or kept log on this agent: %w", id, api.ErrNotFound)
		}
		if fw.f == nil { // nothing was answered yet
			writeError(w, err)
		}
		return
	}
	defer f.Close()
	if _, err := io.Copy(fw, f); err != nil && r.Context().Err() == nil {
		a.log.Warn("logs", "task", id, "err", err)
	}
}

// flushWriter flushes after each write, so a followed log arrives as it
// is written.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
	n int64 // bytes written
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	fw.n += int64(n)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err as an api.Error with the status of its sentinel.
func writeError(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	for _, s := range []struct {
		err    error
		status int
		code   string
	}{
		{api.ErrInvalid, http.StatusBadRequest, "invalid"},
		{api.ErrUnauthorized, http.StatusUnauthorized, "unauthorized"},
		{api.ErrForbidden, http.StatusForbidden, "forbidden"},
		{api.ErrNotFound, http.StatusNotFound, "not_found"},
	} {
		if errors.Is(err, s.err) {
			status, code = s.status, s.code
			break
		}
	}
	e := api.Error{Code: code, Message: err.Error()}
	var fe *api.FieldError
	if errors.As(err, &fe) {
		e.Field = fe.Field
	}
	writeJSON(w, status, e)
}
