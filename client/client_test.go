package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

const testToken = "c2VjcmV0LXRva2Vu.t0k3n"

// request is what the fake master saw of a request.
type request struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   string
}

// answer is what the fake master answers.
type answer struct {
	status int
	body   string
}

// recorder keeps the requests a server saw.
type recorder struct {
	mu   sync.Mutex
	seen []request
}

func (r *recorder) add(q request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, q)
}

func (r *recorder) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.seen...)
}

// fakeMaster is a TLS server that records each request and answers with
// next, which a test sets before its call.
type fakeMaster struct {
	srv *httptest.Server
	recorder
	next answer
}

func newFakeMaster(t *testing.T) *fakeMaster {
	t.Helper()
	f := &fakeMaster{next: answer{status: http.StatusOK, body: "{}"}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.add(request{
			Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), Body: string(b),
		})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.next.status)
		io.WriteString(w, f.next.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// tlsFor trusts the server's certificate, as a client given the
// cluster's CA does.
func tlsFor(srv *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

func newTestClient(t *testing.T, srv *httptest.Server, o Options) *Client {
	t.Helper()
	o.URL, o.TLS = srv.URL, tlsFor(srv)
	if o.Token == "" {
		o.Token = testToken
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEndpoints: each method sends its endpoint's method, path (IDs
// escaped), query, token and body, and decodes the canned answer.
func TestEndpoints(t *testing.T) {
	ctx := context.Background()
	bearer := "Bearer " + testToken
	exit := 3
	tree := api.ConsumerTree{Consumers: []api.Consumer{{Path: "/eng", Owned: api.TaskResources{CPUs: 4, MemoryBytes: 8 << 30}}, {Path: "/eng/ml", Weight: 2}}}
	spec := api.SessionSpec{Name: "train", Groups: []api.TaskGroup{{Name: "w", Count: 2, Resources: api.TaskResources{CPUs: 0.5}}}}
	session := api.Session{ID: "s-1", Spec: spec, State: "running", Submitted: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Groups: []api.GroupStatus{{Name: "w", Count: 2, Running: 1, Pending: 1}}}
	task := api.Task{ID: "s-1/w/0", Session: "s-1", Group: "w", Agent: "a-1", State: api.TaskFailed, ExitCode: &exit, Reason: "oom-killed"}
	token := api.Token{ID: "tok-1", Role: api.RoleTenant, Consumer: "/eng/ml", Secret: "shown-once"}
	for _, tc := range []struct {
		name   string
		call   func(c *Client) (any, error)
		answer answer
		want   request
		got    any
	}{
		{"health", func(c *Client) (any, error) { return c.Health(ctx) },
			answer{200, `{"status":"ok","version":"v1.2","role":"master"}`},
			request{Method: "GET", Path: "/v1/health"}, api.Health{Status: "ok", Version: "v1.2", Role: "master"}},
		{"apply consumers", func(c *Client) (any, error) { return nil, c.ApplyConsumers(ctx, tree) },
			answer{204, ""},
			request{Method: "PUT", Path: "/v1/consumers", Auth: bearer, ContentType: "application/json", Body: jsonOf(t, tree)}, nil},
		{"consumers", func(c *Client) (any, error) { return c.Consumers(ctx) },
			answer{200, `[{"path":"/eng","leaf":false,"held":{"cpus":1},"deserved":{},"pending":{},"sessions":0}]`},
			request{Method: "GET", Path: "/v1/consumers", Auth: bearer},
			[]api.ConsumerStatus{{Consumer: api.Consumer{Path: "/eng"}, Held: api.TaskResources{CPUs: 1}}}},
		{"create token", func(c *Client) (any, error) {
			return c.CreateToken(ctx, api.TokenRequest{Consumer: "/eng/ml", Name: "ml team", TTL: api.Duration(time.Hour)})
		},
			answer{201, jsonOf(t, token)},
			request{Method: "POST", Path: "/v1/tokens", Auth: bearer, ContentType: "application/json",
				Body: `{"consumer":"/eng/ml","name":"ml team","ttl":"1h0m0s"}`}, token},
		{"tokens", func(c *Client) (any, error) { return c.Tokens(ctx) },
			answer{200, `[{"id":"tok-1","role":"admin","created":"2026-01-02T03:04:05Z"}]`},
			request{Method: "GET", Path: "/v1/tokens", Auth: bearer},
			[]api.Token{{ID: "tok-1", Role: "admin", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}},
		{"revoke token", func(c *Client) (any, error) { return nil, c.RevokeToken(ctx, "tok/1") },
			answer{204, ""},
			request{Method: "DELETE", Path: "/v1/tokens/tok%2F1", Auth: bearer}, nil},
		{"agents", func(c *Client) (any, error) { return c.Agents(ctx) },
			answer{200, `[{"id":"a-1","hostname":"n1","address":"n1:7051","state":"connected","resources":{"cpus":8,"memory_bytes":1024,"disk_bytes":0,"ports":[],"gpus":[],"attributes":{"arch":"amd64","os":"linux","kernel":"","cpu_model":"","smt":{"threads_per_core":0,"online_threads_per_core":0,"cores":0},"page_size":0,"hugepage_sizes":null,"numa_nodes":null}},"attributes":{"zone":"a"},"last_seen":"2026-01-02T03:04:05Z","tasks":2}]`},
			request{Method: "GET", Path: "/v1/agents", Auth: bearer},
			[]api.Agent{{ID: "a-1", Hostname: "n1", Address: "n1:7051", State: "connected",
				Resources:  api.NodeResources{CPUs: 8, MemoryBytes: 1024, Ports: []api.PortRange{}, GPUs: []api.GPU{}, Attributes: api.NodeAttributes{Arch: "amd64", OS: "linux"}},
				Attributes: map[string]string{"zone": "a"}, LastSeen: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Tasks: 2}}},
		{"submit", func(c *Client) (any, error) { return c.Submit(ctx, spec) },
			answer{201, jsonOf(t, session)},
			request{Method: "POST", Path: "/v1/sessions", Auth: bearer, ContentType: "application/json", Body: jsonOf(t, spec)}, session},
		{"sessions", func(c *Client) (any, error) { return c.Sessions(ctx, false) },
			answer{200, jsonOf(t, []api.Session{session})},
			request{Method: "GET", Path: "/v1/sessions", Auth: bearer}, []api.Session{session}},
		{"sessions all", func(c *Client) (any, error) { return c.Sessions(ctx, true) },
			answer{200, `[]`},
			request{Method: "GET", Path: "/v1/sessions", Query: "all=true", Auth: bearer}, []api.Session{}},
		{"session", func(c *Client) (any, error) { return c.Session(ctx, "s-1") },
			answer{200, jsonOf(t, session)},
			request{Method: "GET", Path: "/v1/sessions/s-1", Auth: bearer}, session},
		{"kill session", func(c *Client) (any, error) { return nil, c.KillSession(ctx, "s-1") },
			answer{200, `{}`},
			request{Method: "DELETE", Path: "/v1/sessions/s-1", Auth: bearer}, nil},
		{"scale", func(c *Client) (any, error) { return nil, c.Scale(ctx, "s-1", api.ScaleRequest{Group: "w", Count: 5}) },
			answer{200, `{}`},
			request{Method: "POST", Path: "/v1/sessions/s-1/scale", Auth: bearer, ContentType: "application/json", Body: `{"group":"w","count":5}`}, nil},
		{"accept", func(c *Client) (any, error) {
			return nil, c.Accept(ctx, "s-1", api.Accept{Offer: "o-1", Tasks: []api.AcceptTasks{{Group: "w", Count: 2}}})
		},
			answer{202, ``},
			request{Method: "POST", Path: "/v1/sessions/s-1/accept", Auth: bearer, ContentType: "application/json",
				Body: `{"offer":"o-1","tasks":[{"group":"w","count":2}]}`}, nil},
		{"decline", func(c *Client) (any, error) {
			return nil, c.Decline(ctx, "s-1", api.Decline{Offer: "o-1", Refuse: api.Duration(30 * time.Second)})
		},
			answer{200, `{}`},
			request{Method: "POST", Path: "/v1/sessions/s-1/decline", Auth: bearer, ContentType: "application/json", Body: `{"offer":"o-1","refuse":"30s"}`}, nil},
		{"suppress", func(c *Client) (any, error) { return nil, c.Suppress(ctx, "s-1") },
			answer{204, ""},
			request{Method: "POST", Path: "/v1/sessions/s-1/suppress", Auth: bearer}, nil},
		{"revive", func(c *Client) (any, error) { return nil, c.Revive(ctx, "s-1") },
			answer{204, ""},
			request{Method: "POST", Path: "/v1/sessions/s-1/revive", Auth: bearer}, nil},
		{"acknowledge", func(c *Client) (any, error) {
			return nil, c.Acknowledge(ctx, "s-1", api.Acks{UUIDs: []string{"u1", "u2"}})
		},
			answer{200, `{}`},
			request{Method: "POST", Path: "/v1/sessions/s-1/acknowledge", Auth: bearer, ContentType: "application/json", Body: `{"uuids":["u1","u2"]}`}, nil},
		{"reconcile", func(c *Client) (any, error) { return c.Reconcile(ctx, "s-1") },
			answer{200, jsonOf(t, []api.Task{task})},
			request{Method: "POST", Path: "/v1/sessions/s-1/reconcile", Auth: bearer}, []api.Task{task}},
		{"tasks", func(c *Client) (any, error) { return c.Tasks(ctx, "") },
			answer{200, jsonOf(t, []api.Task{task})},
			request{Method: "GET", Path: "/v1/tasks", Auth: bearer}, []api.Task{task}},
		{"tasks of a session", func(c *Client) (any, error) { return c.Tasks(ctx, "s 1&x") },
			answer{200, `[]`},
			request{Method: "GET", Path: "/v1/tasks", Query: "session=s+1%26x", Auth: bearer}, []api.Task{}},
		{"task", func(c *Client) (any, error) { return c.Task(ctx, "s-1/w/0") },
			answer{200, jsonOf(t, task)},
			request{Method: "GET", Path: "/v1/tasks/s-1%2Fw%2F0", Auth: bearer}, task},
		{"kill task", func(c *Client) (any, error) { return nil, c.KillTask(ctx, "s-1/w/0") },
			answer{200, `{}`},
			request{Method: "POST", Path: "/v1/tasks/s-1%2Fw%2F0/kill", Auth: bearer}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMaster(t)
			f.next = tc.answer
			got, err := tc.call(newTestClient(t, f.srv, Options{}))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]request{tc.want}, f.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if tc.got != nil {
				// got is the method's value: compare it through its
				// JSON, the one form every result shares.
				if diff := cmp.Diff(jsonOf(t, tc.got), jsonOf(t, got)); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestTaskIDInServeMux: a task ID's slashes reach a Go 1.22 ServeMux
// handler, the master's, as one path value.
func TestTaskIDInServeMux(t *testing.T) {
	var got recorder
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tasks/{id}", func(w http.ResponseWriter, r *http.Request) {
		got.add(request{Method: r.Method, Path: r.PathValue("id")})
		io.WriteString(w, `{"id":"x"}`)
	})
	mux.HandleFunc("POST /v1/tasks/{id}/kill", func(w http.ResponseWriter, r *http.Request) {
		got.add(request{Method: r.Method, Path: r.PathValue("id")})
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv, Options{})
	if _, err := c.Task(context.Background(), "s-1/web/10"); err != nil {
		t.Fatal(err)
	}
	if err := c.KillTask(context.Background(), "s-1/web/10"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]request{{Method: "GET", Path: "s-1/web/10"}, {Method: "POST", Path: "s-1/web/10"}}, got.requests()); diff != "" {
		t.Errorf("path values (-want +got):\n%s", diff)
	}
}

// TestErrorAnswers: an error answer is a *Error that matches its code's
// sentinel, from the api.Error body or, without one, from the status.
func TestErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answer   answer
		sentinel error
		want     Error
	}{
		{"invalid with a field", answer{400, `{"code":"invalid","message":"groups.count -1: negative","field":"groups.count"}`}, api.ErrInvalid,
			Error{Status: 400, Code: "invalid", Message: "groups.count -1: negative", Field: "groups.count"}},
		{"not found", answer{404, `{"code":"not_found","message":"session s-9"}`}, api.ErrNotFound,
			Error{Status: 404, Code: "not_found", Message: "session s-9"}},
		{"conflict", answer{409, `{"code":"conflict","message":"consumer /eng holds sessions"}`}, api.ErrConflict,
			Error{Status: 409, Code: "conflict", Message: "consumer /eng holds sessions"}},
		{"forbidden", answer{403, `{"code":"forbidden","message":"not your session"}`}, api.ErrForbidden,
			Error{Status: 403, Code: "forbidden", Message: "not your session"}},
		{"unauthorized", answer{401, `{"code":"unauthorized","message":"token expired"}`}, api.ErrUnauthorized,
			Error{Status: 401, Code: "unauthorized", Message: "token expired"}},
		{"too large", answer{413, `{"code":"too_large","message":"body over 1 MiB"}`}, api.ErrTooLarge,
			Error{Status: 413, Code: "too_large", Message: "body over 1 MiB"}},
		{"unavailable", answer{503, `{"code":"unavailable","message":"store"}`}, api.ErrUnavailable,
			Error{Status: 503, Code: "unavailable", Message: "store"}},
		{"internal", answer{500, `{"code":"internal","message":"bug"}`}, nil,
			Error{Status: 500, Code: "internal", Message: "bug"}},
		{"no body, 404", answer{404, ``}, api.ErrNotFound, Error{Status: 404, Code: "not_found"}},
		{"a proxy's page, 502", answer{502, "<html>\n<b>Bad\tGateway</b>\x1b[31m</html>"}, api.ErrUnavailable,
			Error{Status: 502, Code: "unavailable", Message: "<html> <b>Bad Gateway</b>?[31m</html>"}},
		{"text, 401", answer{401, "no token\n"}, api.ErrUnauthorized, Error{Status: 401, Code: "unauthorized", Message: "no token"}},
		{"unknown status", answer{418, `teapot`}, nil, Error{Status: 418, Code: "internal", Message: "teapot"}},
		{"a redirect is not followed", answer{307, ``}, nil, Error{Status: 307, Code: "internal"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMaster(t)
			f.next = tc.answer
			_, err := newTestClient(t, f.srv, Options{}).Session(context.Background(), "s-9")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%v (%T), want a *Error", err, err)
			}
			if diff := cmp.Diff(tc.want, *e); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			for _, s := range []error{api.ErrInvalid, api.ErrNotFound, api.ErrConflict, api.ErrForbidden, api.ErrUnauthorized, api.ErrTooLarge, api.ErrUnavailable} {
				if errors.Is(err, s) != (s == tc.sentinel) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tc.sentinel))
				}
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

// TestRedirectKeepsToken: a redirect is not followed, so the token never
// goes to another server.
func TestRedirectKeepsToken(t *testing.T) {
	var leaked recorder
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.add(request{Auth: r.Header.Get("Authorization")})
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	if _, err := newTestClient(t, srv, Options{}).Sessions(context.Background(), false); err == nil {
		t.Error("a redirect answered the call")
	}
	if got := leaked.requests(); len(got) > 0 {
		t.Errorf("the other server got %v", got)
	}
}

// TestUnreachable: a master that cannot be reached, or that the client
// cannot verify, is an error matching api.ErrUnavailable.
func TestUnreachable(t *testing.T) {
	f := newFakeMaster(t)
	untrusted, err := New(Options{URL: f.srv.URL, Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusted.Sessions(context.Background(), false); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("unverified master: %v, want api.ErrUnavailable", err)
	}
	if seen := f.requests(); len(seen) > 0 {
		t.Errorf("a request reached a master the client could not verify: %v", seen)
	}

	closed := httptest.NewTLSServer(http.NotFoundHandler())
	c := newTestClient(t, closed, Options{})
	closed.Close()
	_, err = c.Sessions(context.Background(), false)
	if !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("closed master: %v, want api.ErrUnavailable", err)
	}
	var e *Error
	if errors.As(err, &e) {
		t.Errorf("closed master: %v is a *Error: no master answered", err)
	}
}

// TestAnswerBounds: an answer over the limit is refused, not read whole;
// one that is not the API's JSON is an error too.
func TestAnswerBounds(t *testing.T) {
	f := newFakeMaster(t)
	c := newTestClient(t, f.srv, Options{MaxAnswer: 64})
	f.next = answer{200, `[` + strings.Repeat(`{"id":"s"},`, 10) + `{"id":"s"}]`}
	if _, err := c.Sessions(context.Background(), false); !errors.Is(err, api.ErrTooLarge) {
		t.Errorf("large answer: %v, want api.ErrTooLarge", err)
	}
	f.next = answer{200, `[{"id":"s"}]`}
	if got, err := c.Sessions(context.Background(), false); err != nil || len(got) != 1 {
		t.Errorf("small answer: %v, %v", got, err)
	}
	f.next = answer{200, `{"id":`}
	if _, err := c.Session(context.Background(), "s"); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("broken answer: %v, want api.ErrUnavailable", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no URL", Options{}},
		{"http", Options{URL: "http://m:7050"}},
		{"no scheme", Options{URL: "m:7050"}},
		{"no host", Options{URL: "https:///v1"}},
		{"credentials in the URL", Options{URL: "https://admin:hunter2@m:7050"}},
		{"a query", Options{URL: "https://m:7050/?x=1"}},
		{"a space in the token", Options{URL: "https://m:7050", Token: "abc def"}},
		{"a newline in the token", Options{URL: "https://m:7050", Token: "abc\r\nX-Evil: 1"}},
		{"TLS and an HTTP client", Options{URL: "https://m:7050", TLS: &tls.Config{}, HTTPClient: &http.Client{}}},
		{"negative limit", Options{URL: "https://m:7050", MaxAnswer: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("%v, want api.ErrInvalid", err)
			}
			for _, secret := range []string{"hunter2", "abc def", "abc\r\n"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a secret: %v", err)
				}
			}
		})
	}
}

// TestPathPrefix: a master behind a proxy's path prefix.
func TestPathPrefix(t *testing.T) {
	f := newFakeMaster(t)
	c, err := New(Options{URL: f.srv.URL + "/caisson/", Token: testToken, TLS: tlsFor(f.srv)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Session(context.Background(), "s-1"); err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[0].Path; got != "/caisson/v1/sessions/s-1" {
		t.Errorf("path %s, want /caisson/v1/sessions/s-1", got)
	}
}

// streamServer serves an events or logs stream: it writes each line of
// lines, flushing, then closes the stream, or, with hold, waits for the
// client to go away.
func streamServer(t *testing.T, lines []string, hold bool) (*httptest.Server, *recorder) {
	t.Helper()
	seen := &recorder{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.add(request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")})
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, l := range lines {
			io.WriteString(w, l)
			w.(http.Flusher).Flush()
		}
		if hold {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

// TestEvents: every event but the pings reaches fn, in order; the stream
// ends when the master closes it, when fn fails, when ctx ends, or when a
// line is not an event.
func TestEvents(t *testing.T) {
	deadline := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lines := []string{
		`{"offer":{"id":"o-1","agent":"a-1","resources":{"cpus":4},"revocable":true}}` + "\n",
		`{"ping":true}` + "\n",
		"\n",
		`{"update":{"uuid":"u-1","task":"s-1/w/0","state":"running","time":"2026-01-02T03:04:05Z"},"future_field":1}` + "\n",
		`{"notice":{"task":"s-1/w/0","deadline":"2026-01-02T03:04:05Z","reason":"reclaimed"}}`, // no newline at the end
	}
	want := []api.SessionEvent{
		{Offer: &api.Offer{ID: "o-1", Agent: "a-1", Resources: api.TaskResources{CPUs: 4}, Revocable: true}},
		{Update: &api.StatusUpdate{UUID: "u-1", Task: "s-1/w/0", State: api.TaskRunning, Time: deadline}},
		{Notice: &api.Notice{Task: "s-1/w/0", Deadline: deadline, Reason: "reclaimed"}},
	}

	t.Run("until the master closes it", func(t *testing.T) {
		srv, seen := streamServer(t, lines, false)
		var got []api.SessionEvent
		err := newTestClient(t, srv, Options{}).Events(context.Background(), "s-1", func(ev api.SessionEvent) error {
			got = append(got, ev)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]request{{Method: "GET", Path: "/v1/sessions/s-1/events", Auth: "Bearer " + testToken}}, seen.requests()); diff != "" {
			t.Errorf("request (-want +got):\n%s", diff)
		}
	})

	t.Run("until fn fails", func(t *testing.T) {
		srv, _ := streamServer(t, lines, true)
		stop := errors.New("stop")
		n := 0
		err := newTestClient(t, srv, Options{}).Events(context.Background(), "s-1", func(api.SessionEvent) error {
			n++
			return stop
		})
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("%v after %d events, want stop after 1", err, n)
		}
	})

	t.Run("until ctx ends", func(t *testing.T) {
		srv, _ := streamServer(t, lines[:1], true)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		err := newTestClient(t, srv, Options{}).Events(ctx, "s-1", func(api.SessionEvent) error {
			cancel() // the stream holds on: only ctx ends it
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%v, want context.Canceled", err)
		}
	})

	t.Run("a line that is not an event", func(t *testing.T) {
		srv, _ := streamServer(t, []string{lines[0], "<html>\n"}, false)
		n := 0
		err := newTestClient(t, srv, Options{}).Events(context.Background(), "s-1", func(api.SessionEvent) error { n++; return nil })
		if !errors.Is(err, api.ErrUnavailable) || n != 1 {
			t.Errorf("%v after %d events, want api.ErrUnavailable after 1", err, n)
		}
	})

	t.Run("a line too long", func(t *testing.T) {
		srv, _ := streamServer(t, []string{`{"ping":true,"x":"` + strings.Repeat("x", MaxEventLine) + `"}` + "\n"}, false)
		err := newTestClient(t, srv, Options{}).Events(context.Background(), "s-1", func(api.SessionEvent) error { return nil })
		if !errors.Is(err, api.ErrTooLarge) {
			t.Errorf("%v, want api.ErrTooLarge", err)
		}
	})

	t.Run("an error answer", func(t *testing.T) {
		f := newFakeMaster(t)
		f.next = answer{403, `{"code":"forbidden","message":"session of another consumer"}`}
		err := newTestClient(t, f.srv, Options{}).Events(context.Background(), "s-1", func(api.SessionEvent) error { return nil })
		if !errors.Is(err, api.ErrForbidden) {
			t.Errorf("%v, want api.ErrForbidden", err)
		}
	})
}

func TestLogs(t *testing.T) {
	srv, seen := streamServer(t, []string{"line 1\n", "line 2\n"}, false)
	var out bytes.Buffer
	if err := newTestClient(t, srv, Options{}).Logs(context.Background(), "s-1/w/0", true, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "line 1\nline 2\n" {
		t.Errorf("output %q", out.String())
	}
	if diff := cmp.Diff([]request{{Method: "GET", Path: "/v1/tasks/s-1%2Fw%2F0/logs", Query: "follow=true", Auth: "Bearer " + testToken}}, seen.requests()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}

	// An error of the writer is the writer's, not the master's.
	srv, _ = streamServer(t, []string{"line 1\n"}, true)
	full := errors.New("disk full")
	err := newTestClient(t, srv, Options{}).Logs(context.Background(), "s-1/w/0", false, failingWriter{full})
	if !errors.Is(err, full) || errors.Is(err, api.ErrUnavailable) {
		t.Errorf("%v, want the writer's error alone", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }
