package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
)

// Limits on what the agent reads from the master.
const (
	maxAnswerBytes  = 4 << 20  // an answer to a call
	maxMessageBytes = 16 << 20 // one line of the stream (a launch)
	callTimeout     = 30 * time.Second
)

// masterClient calls the master's agent endpoints.
type masterClient struct {
	base  string // "https://host:port", no trailing slash
	token string
	http  *http.Client
}

func newMasterClient(base, token string, cfg *tls.Config) *masterClient {
	tr := &http.Transport{
		TLSClientConfig: cfg.Clone(),
		DialContext: (&net.Dialer{
			Timeout: 10 * time.Second,
			// Keepalives find a master that vanished under an open stream.
			KeepAlive: 15 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: callTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &masterClient{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Transport: tr}}
}

func (m *masterClient) close() { m.http.CloseIdleConnections() }

// call POSTs in to path and decodes the answer into out (when not nil).
func (m *masterClient) call(ctx context.Context, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(out); err != nil {
		return fmt.Errorf("master: POST %s: the answer: %w", path, err)
	}
	return nil
}

// stream opens the agent's stream of api.AgentMessage lines.
func (m *masterClient) stream(ctx context.Context, agentID string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+"/v1/agent/stream?agent="+url.QueryEscape(agentID), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := m.do(req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// do sends req with the token and turns an error answer into an error
// that wraps the sentinel its code names.
func (m *masterClient) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("master: %s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	e := &MasterError{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e.Body) != nil || e.Body.Message == "" {
		e.Body.Message = strings.TrimSpace(string(b))
	}
	return nil, fmt.Errorf("master: %s %s: %w", req.Method, req.URL.Path, e)
}

// MasterError is an error answer of the master: its HTTP status and its
// api.Error body. It matches, with errors.Is, the sentinel its code names
// (api.ErrUnauthorized for "unauthorized", ...).
type MasterError struct {
	Status int
	Body   api.Error
}

func (e *MasterError) Error() string {
	msg := e.Body.Message
	if e.Body.Field != "" {
		msg = e.Body.Field + ": " + msg
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%d %s", e.Status, msg)
}

// Unwrap is the sentinel of the error's code, or of its status when the
// code is missing.
func (e *MasterError) Unwrap() error {
	switch e.Body.Code {
	case "invalid":
		return api.ErrInvalid
	case "not_found":
		return api.ErrNotFound
	case "conflict":
		return api.ErrConflict
	case "forbidden":
		return api.ErrForbidden
	case "unauthorized":
		return api.ErrUnauthorized
	case "too_large":
		return api.ErrTooLarge
	case "unavailable":
		return api.ErrUnavailable
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return api.ErrUnauthorized
	case http.StatusForbidden:
		return api.ErrForbidden
	case http.StatusNotFound:
		return api.ErrNotFound
	case http.StatusServiceUnavailable:
		return api.ErrUnavailable
	}
	return nil
}

// errorsIsAny reports whether err matches any of the targets.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
