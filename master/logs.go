package master

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/caisson/caisson/api"
)

// taskLogs proxies a task's output from its agent's own API:
// GET {address}/v1/containers/{task}/logs, over mutual TLS with
// Config.AgentTLS.
func (m *Master) taskLogs(w http.ResponseWriter, r *http.Request, c caller) error {
	id := r.PathValue("id")
	res, err := m.do(r.Context(), func(*txn) (any, error) {
		t, err := m.visibleTask(c, id)
		if err != nil {
			return nil, err
		}
		a := m.agents[t.Agent]
		if a == nil || a.lost {
			return nil, fmt.Errorf("task %s: its agent %s is gone: %w", id, t.Agent, api.ErrUnavailable)
		}
		return a.reg.Address, nil
	})
	if err != nil {
		return err
	}
	u := agentURL(res.(string)) + "/v1/containers/" + url.PathEscape(id) + "/logs"
	if r.URL.Query().Get("follow") == "true" {
		u += "?follow=true"
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("task %s: its agent's address: %w: %w", id, err, api.ErrUnavailable)
	}
	resp, err := m.logClient.Do(req)
	if err != nil {
		return fmt.Errorf("task %s: its agent: %w: %w", id, err, api.ErrUnavailable)
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil
			}
			_ = rc.Flush()
		}
		if err == io.EOF || err != nil {
			return nil
		}
	}
}

// agentURL is an agent's address as a base URL: https unless it says.
func agentURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	return strings.TrimRight(addr, "/")
}
