package master

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/pki"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Body limits (docs/api.md).
const (
	maxBody          = 1 << 20
	maxConsumersBody = 4 << 20
)

// caller is who makes a request: its token.
type caller struct {
	tok *tokenRecord
}

func (c caller) admin() bool { return c.tok.Role == api.RoleAdmin }

// sees reports whether the caller may see sessions of a consumer: an
// admin sees all, a tenant its consumer's subtree.
func (c caller) sees(consumer string) bool {
	if c.admin() {
		return true
	}
	own := c.tok.Consumer
	return consumer == own || own == "/" || strings.HasPrefix(consumer, own+"/")
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

// route is one served endpoint: its method and path as docs/api.md lists
// it, and who may call it.
type route struct {
	pattern string
	roles   []string
	h       handlerFunc
}

func (m *Master) routes() []route {
	admin := []string{api.RoleAdmin}
	users := []string{api.RoleAdmin, api.RoleTenant}
	agent := []string{api.RoleAgent}
	return []route{
		{"GET /v1/health", nil, m.health},
		{"GET /metrics", admin, m.serveMetrics},
		{"PUT /v1/consumers", admin, m.putConsumers},
		{"GET /v1/consumers", users, m.getConsumers},
		{"POST /v1/tokens", admin, m.postToken},
		{"GET /v1/tokens", admin, m.getTokens},
		{"DELETE /v1/tokens/{id}", admin, m.deleteToken},
		{"GET /v1/agents", admin, m.getAgents},
		{"POST /v1/sessions", users, m.postSession},
		{"GET /v1/sessions", users, m.getSessions},
		{"GET /v1/sessions/{id}", users, m.getSession},
		{"DELETE /v1/sessions/{id}", users, m.deleteSession},
		{"POST /v1/sessions/{id}/scale", users, m.scaleSession},
		{"GET /v1/sessions/{id}/events", users, m.sessionEvents},
		{"POST /v1/sessions/{id}/accept", users, m.accept},
		{"POST /v1/sessions/{id}/decline", users, m.decline},
		{"POST /v1/sessions/{id}/suppress", users, m.suppress},
		{"POST /v1/sessions/{id}/revive", users, m.revive},
		{"POST /v1/sessions/{id}/acknowledge", users, m.acknowledge},
		{"POST /v1/sessions/{id}/reconcile", users, m.reconcile},
		{"GET /v1/tasks", users, m.getTasks},
		{"GET /v1/tasks/{id}", users, m.getTask},
		{"POST /v1/tasks/{id}/kill", users, m.killTask},
		{"GET /v1/tasks/{id}/logs", users, m.taskLogs},
		{"POST /v1/agent/register", agent, m.register},
		{"GET /v1/agent/stream", agent, m.agentStream},
		{"POST /v1/agent/updates", agent, m.agentUpdates},
		{"POST /v1/agent/heartbeat", agent, m.heartbeat},
	}
}

// Handler serves the master's API (docs/api.md): every route checks the
// caller's token and role, agent routes also the agent's client
// certificate. Serve it over TLS with pki's ServerConfig.
func (m *Master) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range m.routes() {
		mux.Handle(rt.pattern, m.guard(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		m.writeError(w, r, fmt.Errorf("no endpoint %s %s: %w", r.Method, r.URL.Path, api.ErrNotFound))
	})
	return mux
}

// guard authenticates and authorizes a request before its handler.
func (m *Master) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.roles == nil {
			if err := rt.h(w, r, caller{}); err != nil {
				m.writeError(w, r, err)
			}
			return
		}
		agentRoute := strings.HasPrefix(rt.pattern, "GET /v1/agent/") || strings.HasPrefix(rt.pattern, "POST /v1/agent/")
		if agentRoute {
			if role, err := pki.PeerRole(r.TLS); err != nil || role != pki.RoleAgent {
				m.writeError(w, r, fmt.Errorf("agent endpoints need the client certificate of a cluster agent: %w", api.ErrUnauthorized))
				return
			}
		}
		tok, err := m.authenticate(r)
		if err != nil {
			m.writeError(w, r, err)
			return
		}
		allowed := false
		for _, role := range rt.roles {
			allowed = allowed || tok.Role == role
		}
		if !allowed {
			m.writeError(w, r, fmt.Errorf("a %s token may not %s %s: %w", tok.Role, r.Method, r.URL.Path, api.ErrForbidden))
			return
		}
		if err := rt.h(w, r, caller{tok: tok}); err != nil {
			m.writeError(w, r, err)
		}
	})
}

// authenticate finds the request's bearer token: "ID.SECRET", whose
// SHA-256 the master keeps.
func (m *Master) authenticate(r *http.Request) (*tokenRecord, error) {
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || secret == "" {
		return nil, fmt.Errorf("no bearer token: %w", api.ErrUnauthorized)
	}
	id, _, _ := strings.Cut(secret, ".")
	tok := (*m.auth.Load())[id]
	sum := sha256.Sum256([]byte(secret))
	if tok == nil || subtle.ConstantTimeCompare(sum[:], tok.Hash) != 1 {
		return nil, fmt.Errorf("the token is unknown or revoked: %w", api.ErrUnauthorized)
	}
	if !tok.Expires.IsZero() && !m.clock.Now().Before(tok.Expires) {
		return nil, fmt.Errorf("the token expired at %s: %w", tok.Expires.UTC().Format("2006-01-02T15:04:05Z"), api.ErrUnauthorized)
	}
	return tok, nil
}

// decode reads a JSON body of at most limit bytes into v: one object,
// no unknown fields. Errors wrap api.ErrInvalid (with the field, where
// one is at fault) or api.ErrTooLarge.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("the body is over %d bytes: %w", limit, api.ErrTooLarge)
	}
	if err != nil {
		return fmt.Errorf("read the body: %w", api.ErrInvalid)
	}
	return decodeBytes(body, v)
}

// decodeBytes is decode's parser: what FuzzDecodeRequest exercises.
func decodeBytes(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return fmt.Errorf("the body holds more than one JSON value: %w", api.ErrInvalid)
		}
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return invalid(typeErr.Field, "", "want a JSON %s, got %s", typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("the body is not JSON: %s at byte %d: %w", syntaxErr, syntaxErr.Offset, api.ErrInvalid)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("the body is empty: %w", api.ErrInvalid)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the body ends in the middle of a JSON value: %w", api.ErrInvalid)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return invalid(strings.Trim(name, `"`), "", "unknown field")
	}
	if errors.Is(err, api.ErrInvalid) {
		return err
	}
	return fmt.Errorf("%s: %w", strings.TrimPrefix(err.Error(), "json: "), api.ErrInvalid)
}

// invalid is a bad value of one field of a request: an *api.FieldError
// wrapping api.ErrInvalid. value is as the message shows it (quoted for
// a string), or empty.
func invalid(field, value, format string, args ...any) error {
	return &api.FieldError{Field: field, Value: value, Err: fmt.Errorf(format+": %w", append(args, api.ErrInvalid)...)}
}

// noBody refuses a body on an endpoint that takes none.
func noBody(w http.ResponseWriter, r *http.Request) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil && len(bytes.TrimSpace(b)) > 0 && string(bytes.TrimSpace(b)) != "{}" {
		return fmt.Errorf("this endpoint takes no body: %w", api.ErrInvalid)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// errorStatus maps an error to its HTTP status and api.Error code, in one
// place.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, api.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, api.ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, api.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, api.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, api.ErrConflict), errors.Is(err, api.ErrAlreadyExists), errors.Is(err, api.ErrWrongState):
		return http.StatusConflict, "conflict"
	case errors.Is(err, api.ErrInvalid):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, api.ErrUnavailable), errors.Is(err, api.ErrTimeout):
		return http.StatusServiceUnavailable, "unavailable"
	}
	return http.StatusInternalServerError, "internal"
}

// writeError answers with an api.Error; a 5xx is logged, and its
// message kept from the caller.
func (m *Master) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := errorStatus(err)
	body := api.Error{Code: code, Message: err.Error()}
	var fe *api.FieldError
	if errors.As(err, &fe) {
		body.Field = fe.Field
	}
	if status == http.StatusInternalServerError {
		m.log.Error("request", "method", r.Method, "path", r.URL.Path, "err", err)
		body.Message = "internal error"
	}
	_ = writeJSON(w, status, body)
}

func (m *Master) health(w http.ResponseWriter, _ *http.Request, _ caller) error {
	return writeJSON(w, http.StatusOK, api.Health{Status: "ok", Version: m.cfg.Version, Role: "master"})
}

func (m *Master) serveMetrics(w http.ResponseWriter, r *http.Request, _ caller) error {
	promhttp.HandlerFor(m.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}
