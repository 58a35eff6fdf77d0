package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
)

// DefaultMaxAnswer bounds what is read of an answer when Options says
// nothing: a list of 100,000 tasks, with room to spare.
const DefaultMaxAnswer = 128 << 20

// Options say how to reach the master.
type Options struct {
	// URL is the master's: https://host:port, with a path prefix when a
	// proxy serves the API under one.
	URL string
	// Token is sent with every request but the health check
	// (Authorization: Bearer TOKEN).
	Token string
	// TLS verifies the master (its RootCAs, the cluster's CA) and may
	// hold a client certificate. Nil: the system's roots, TLS 1.3.
	TLS *tls.Config
	// HTTPClient, when set, makes every request, and TLS must be nil: its
	// transport is its own. It should not follow redirects.
	HTTPClient *http.Client
	// UserAgent names the program; "caisson-client" when empty.
	UserAgent string
	// MaxAnswer bounds what is read of an answer that is not a stream;
	// DefaultMaxAnswer when 0.
	MaxAnswer int64
}

// Client calls the master's API. It is safe for concurrent use.
type Client struct {
	base      string // the URL without its trailing slash
	token     string
	hc        *http.Client
	userAgent string
	maxAnswer int64
}

// New checks the options and makes a client; it does not connect.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil || o.URL == "":
		return nil, fmt.Errorf("client: master URL %q: want https://host:port: %w", o.URL, api.ErrInvalid)
	case u.Scheme != "https":
		return nil, fmt.Errorf("client: master URL %q: the API is served over https only: %w", o.URL, api.ErrInvalid)
	case u.Host == "":
		return nil, fmt.Errorf("client: master URL %q: no host: %w", o.URL, api.ErrInvalid)
	case u.User != nil:
		return nil, fmt.Errorf("client: master URL: credentials go in the token, not in the URL: %w", api.ErrInvalid)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("client: master URL %q: a query or fragment: %w", o.URL, api.ErrInvalid)
	case o.HTTPClient != nil && o.TLS != nil:
		return nil, fmt.Errorf("client: TLS and HTTPClient are both set: the HTTP client's transport has its own TLS: %w", api.ErrInvalid)
	case o.MaxAnswer < 0:
		return nil, fmt.Errorf("client: MaxAnswer %d is negative: %w", o.MaxAnswer, api.ErrInvalid)
	}
	if err := checkToken(o.Token); err != nil {
		return nil, err
	}
	c := &Client{
		base: strings.TrimSuffix(u.String(), "/"), token: o.Token, hc: o.HTTPClient,
		userAgent: o.UserAgent, maxAnswer: o.MaxAnswer,
	}
	if c.userAgent == "" {
		c.userAgent = "caisson-client"
	}
	if c.maxAnswer == 0 {
		c.maxAnswer = DefaultMaxAnswer
	}
	if c.hc == nil {
		c.hc = defaultHTTPClient(o.TLS)
	}
	return c, nil
}

// checkToken refuses a token that cannot travel in a header. The error
// does not show it.
func checkToken(t string) error {
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return fmt.Errorf("client: the token holds a space, a control or a non-ASCII character at byte %d: %w", i, api.ErrInvalid)
		}
	}
	return nil
}

// defaultHTTPClient verifies the master with cfg (the system's roots when
// nil), speaks TLS 1.3 at least, and follows no redirect: a token is for
// the master alone.
func defaultHTTPClient(cfg *tls.Config) *http.Client {
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.MinVersion < tls.VersionTLS13 {
		cfg.MinVersion = tls.VersionTLS13
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.ResponseHeaderTimeout = time.Minute
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// path joins the API's version and the parts of a path, each part
// escaped: a task ID's slashes become %2F.
func path(parts ...string) string {
	var b strings.Builder
	b.WriteString("/" + api.APIVersion)
	for i, p := range parts {
		b.WriteByte('/')
		if i%2 == 0 {
			b.WriteString(p) // a fixed name: "sessions", "scale"
		} else {
			b.WriteString(url.PathEscape(p)) // an ID
		}
	}
	return b.String()
}

// do sends a request and returns the answer of a 2xx status, its body
// open: the caller closes it. An error answer is a *Error; a request that
// gets no answer wraps api.ErrUnavailable.
func (c *Client) do(ctx context.Context, method, p string, query url.Values, in any, auth bool) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w: %w", method, p, err, api.ErrInvalid)
		}
		body = bytes.NewReader(b)
	}
	u := c.base + p
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %w", method, p, err, api.ErrInvalid)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.userAgent)
	if auth && c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, p, ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which the message has
		}
		return nil, fmt.Errorf("%s %s: %w: %w", method, p, err, api.ErrUnavailable)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, fmt.Errorf("%s %s: %w", method, p, answerError(resp.StatusCode, b))
}

// call sends a request and decodes a 2xx answer into out, unless out is
// nil; an answer over the client's limit is an error wrapping
// api.ErrTooLarge.
func (c *Client) call(ctx context.Context, method, p string, query url.Values, in, out any) error {
	resp, err := c.do(ctx, method, p, query, in, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxAnswer+1))
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: the answer broke off: %w: %w", method, p, err, api.ErrUnavailable)
	case int64(len(b)) > c.maxAnswer:
		return fmt.Errorf("%s %s: the answer is larger than %d bytes: %w", method, p, c.maxAnswer, api.ErrTooLarge)
	case out == nil:
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what the API says: %v: %w", method, p, err, api.ErrUnavailable)
	}
	return nil
}

// Health is the master's health check, the one call without a token.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var h api.Health
	resp, err := c.do(ctx, http.MethodGet, path("health"), nil, nil, false)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&h); err != nil {
		return h, fmt.Errorf("GET %s: %v: %w", path("health"), err, api.ErrUnavailable)
	}
	return h, nil
}

// ApplyConsumers replaces the consumer tree (admin).
func (c *Client) ApplyConsumers(ctx context.Context, tree api.ConsumerTree) error {
	return c.call(ctx, http.MethodPut, path("consumers"), nil, tree, nil)
}

// Consumers lists the consumers with their accounting: every one for an
// admin, its own subtree for a tenant.
func (c *Client) Consumers(ctx context.Context) ([]api.ConsumerStatus, error) {
	var out []api.ConsumerStatus
	return out, c.call(ctx, http.MethodGet, path("consumers"), nil, nil, &out)
}

// CreateToken makes a token (admin). The answer's Secret is the token,
// shown this once.
func (c *Client) CreateToken(ctx context.Context, r api.TokenRequest) (api.Token, error) {
	var out api.Token
	return out, c.call(ctx, http.MethodPost, path("tokens"), nil, r, &out)
}

// Tokens lists the tokens, without their secrets (admin).
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var out []api.Token
	return out, c.call(ctx, http.MethodGet, path("tokens"), nil, nil, &out)
}

// RevokeToken revokes a token by its ID (admin).
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, path("tokens", id), nil, nil, nil)
}

// Agents lists the agents (admin).
func (c *Client) Agents(ctx context.Context) ([]api.Agent, error) {
	var out []api.Agent
	return out, c.call(ctx, http.MethodGet, path("agents"), nil, nil, &out)
}

// Submit submits a session and returns it, with the ID the master gave it.
func (c *Client) Submit(ctx context.Context, s api.SessionSpec) (api.Session, error) {
	var out api.Session
	return out, c.call(ctx, http.MethodPost, path("sessions"), nil, s, &out)
}

// Sessions lists the sessions the token may see: running ones, and
// finished ones too when all is true.
func (c *Client) Sessions(ctx context.Context, all bool) ([]api.Session, error) {
	var q url.Values
	if all {
		q = url.Values{"all": {"true"}}
	}
	var out []api.Session
	return out, c.call(ctx, http.MethodGet, path("sessions"), q, nil, &out)
}

// Session is one session.
func (c *Client) Session(ctx context.Context, id string) (api.Session, error) {
	var out api.Session
	return out, c.call(ctx, http.MethodGet, path("sessions", id), nil, nil, &out)
}

// KillSession kills a session: its tasks are killed, its offers rescinded.
func (c *Client) KillSession(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, path("sessions", id), nil, nil, nil)
}

// Scale sets how many tasks a group of the session wants.
func (c *Client) Scale(ctx context.Context, session string, r api.ScaleRequest) error {
	return c.call(ctx, http.MethodPost, path("sessions", session, "scale"), nil, r, nil)
}

// Accept launches tasks of a framework session on an offer; a rejected
// accept comes back on the events stream as a conflict.
func (c *Client) Accept(ctx context.Context, session string, a api.Accept) error {
	return c.call(ctx, http.MethodPost, path("sessions", session, "accept"), nil, a, nil)
}

// Decline gives an offer back.
func (c *Client) Decline(ctx context.Context, session string, d api.Decline) error {
	return c.call(ctx, http.MethodPost, path("sessions", session, "decline"), nil, d, nil)
}

// Suppress stops the session's offers until Revive.
func (c *Client) Suppress(ctx context.Context, session string) error {
	return c.call(ctx, http.MethodPost, path("sessions", session, "suppress"), nil, nil, nil)
}

// Revive makes the session offered again, its decline filters cleared.
func (c *Client) Revive(ctx context.Context, session string) error {
	return c.call(ctx, http.MethodPost, path("sessions", session, "revive"), nil, nil, nil)
}

// Acknowledge says which status updates the program has handled; the
// others are sent again on the next events stream.
func (c *Client) Acknowledge(ctx context.Context, session string, a api.Acks) error {
	return c.call(ctx, http.MethodPost, path("sessions", session, "acknowledge"), nil, a, nil)
}

// Reconcile is every task of the session as the master knows it.
func (c *Client) Reconcile(ctx context.Context, session string) ([]api.Task, error) {
	var out []api.Task
	return out, c.call(ctx, http.MethodPost, path("sessions", session, "reconcile"), nil, nil, &out)
}

// Tasks lists the tasks the token may see, of one session when session
// is not empty.
func (c *Client) Tasks(ctx context.Context, session string) ([]api.Task, error) {
	var q url.Values
	if session != "" {
		q = url.Values{"session": {session}}
	}
	var out []api.Task
	return out, c.call(ctx, http.MethodGet, path("tasks"), q, nil, &out)
}

// Task is one task; its ID ("SESSION/GROUP/N") is escaped in the path.
func (c *Client) Task(ctx context.Context, id string) (api.Task, error) {
	var out api.Task
	return out, c.call(ctx, http.MethodGet, path("tasks", id), nil, nil, &out)
}

// KillTask kills one task; it is not started again.
func (c *Client) KillTask(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, path("tasks", id, "kill"), nil, nil, nil)
}
