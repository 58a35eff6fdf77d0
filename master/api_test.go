package master

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/pki"
	"github.com/google/go-cmp/cmp"
)

// TestAPIReferenceMatchesRoutes: docs/api.md's table of the master's
// endpoints lists exactly the routes the master serves.
func TestAPIReferenceMatchesRoutes(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := masterTable(t, string(doc))
	var served []string
	for _, rt := range (&Master{}).routes() {
		served = append(served, rt.pattern)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if diff := cmp.Diff(documented, served); diff != "" {
		t.Errorf("docs/api.md's endpoints (-) against the master's routes (+):\n%s", diff)
	}
}

// masterTable reads the rows of the first table under "## Endpoints":
// "| `METHOD PATH[?QUERY]` | ...", as "METHOD PATH".
func masterTable(t *testing.T, doc string) []string {
	_, rest, ok := strings.Cut(doc, "\n## Endpoints\n")
	if !ok {
		t.Fatal("docs/api.md has no ## Endpoints section")
	}
	row := regexp.MustCompile("^\\| `([A-Z]+) ([^`?]+)(\\?[^`]*)?` \\|")
	var out []string
	inTable := false
	sc := bufio.NewScanner(strings.NewReader(rest))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break // the master's table ends; the agent's own comes later
			}
			continue
		}
		inTable = true
		if m := row.FindStringSubmatch(line); m != nil {
			out = append(out, m[1]+" "+m[2])
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/api.md's endpoints table has no rows")
	}
	return out
}

// TestTaskLogs: a task's logs are proxied from its agent's own API, over
// mutual TLS with the master's certificate; follow streams them.
func TestTaskLogs(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	pkiDir := filepath.Join(s.dir, "pki")
	agentServer, err := (pki.Files{CA: filepath.Join(pkiDir, pki.CAFile), Cert: filepath.Join(pkiDir, pki.AgentFile), Key: filepath.Join(pkiDir, pki.AgentKeyFile)}).ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	var task string
	logs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if role, err := pki.PeerRole(r.TLS); err != nil || role != pki.RoleMaster {
			http.Error(w, "not the master", http.StatusUnauthorized)
			return
		}
		if r.URL.EscapedPath() != "/v1/containers/"+url.PathEscape(task)+"/logs" {
			http.Error(w, "no such container "+r.URL.EscapedPath(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "hello")
		if r.URL.Query().Get("follow") == "true" {
			w.(http.Flusher).Flush()
			fmt.Fprintln(w, "more")
		}
	}))
	logs.TLS = agentServer
	logs.StartTLS()
	t.Cleanup(logs.Close)

	a := s.newAgent(s.agentTok, "node", nodeResources(2, 1<<30), nil)
	a.reg.Address = logs.URL
	a.start()
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("job", 1, 1), http.StatusCreated, nil)
	task = a.nextLaunch().Task
	for _, c := range []struct {
		query, want string
	}{{"", "hello\n"}, {"?follow=true", "hello\nmore\n"}} {
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+taskPath(task)+"/logs"+c.query, nil)
		req.Header.Set("Authorization", "Bearer "+s.ml.token)
		resp, err := s.ml.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != c.want {
			t.Errorf("logs%s: %d %q, want 200 %q", c.query, resp.StatusCode, body, c.want)
		}
	}
}

// TestMetrics: the admin reads the master's metrics in Prometheus' text
// format.
func TestMetrics(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node", nodeResources(2, 1<<30), nil).start()
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("job", 1, 1), http.StatusCreated, nil)
	l := a.nextLaunch()
	u := update(l.Task, api.TaskFailed)
	u.Reason = "launch-failed: no such image"
	a.report(u)
	s.advance(time.Second)
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.admin)
	resp, err := s.adminClient().http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"caisson_master_placements_total 2",
		"caisson_master_launches_total 2",
		`caisson_master_launch_failures_total{reason="launch-failed"} 1`,
		`caisson_master_consumer_held{consumer="/eng/ml",resource="cpus"} 1`,
		`caisson_master_agents{state="connected"} 1`,
		"caisson_master_store_write_seconds_count",
		"caisson_master_store_batch_records_count",
		"caisson_master_offers_sent_total 0",
		"caisson_master_reclaim_notices_total 0",
	} {
		if !strings.Contains(string(body), want+"\n") && !strings.Contains(string(body), want+" ") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestTaskIDsInPaths: a task ID's slashes travel escaped in one path
// segment.
func TestTaskIDsInPaths(t *testing.T) {
	s := newSetup(t, clusterOptions{})
	a := s.newAgent(s.agentTok, "node", nodeResources(2, 1<<30), nil).start()
	s.ml.must(http.MethodPost, "/v1/sessions", batchSpec("job", 1, 1), http.StatusCreated, nil)
	task := a.nextLaunch().Task
	var got api.Task
	s.ml.must(http.MethodGet, taskPath(task), nil, http.StatusOK, &got)
	s.ml.must(http.MethodPost, taskPath(task)+"/kill", nil, http.StatusOK, &got)
	if k := a.nextKill(); k.Task != task || k.Reason != "killed" || k.Grace != api.Duration(DefaultKillGrace) {
		t.Errorf("kill %+v", k)
	}
}

// FuzzDecodeRequest: whatever the body, decoding a request gives a value
// or an error wrapping api.ErrInvalid (a 400); a session spec that
// decodes and passes the checks is accepted by a master (201) or refused
// with a 4xx, never a 5xx.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","groups":[{"name":"g","count":2,"resources":{"cpus":1,"memory_bytes":1024},"container":{"image":"busybox"}}]}`,
		`{"groups":[{"name":"g","count":1,"min":2,"max":1,"resources":{"gpus":1.5}}]}`,
		`{"groups":[{"name":"g","kill_grace":"1s","ports":[{"container_port":80,"host_port":0,"protocol":"tcp"}],"resources":{"cpus":1,"ports":1}}]}`,
		`{"consumers":[{"path":"/a","owned":{"cpus":2},"grace":"30s"}]}`,
		`{"offer":"o1","tasks":[{"group":"g","count":1}]}`,
		`{"agent":"x","updates":[{"uuid":"u","task":"t","state":"running","exit_code":1}]}`,
		`{"hostname":"h","address":"a:1","resources":{"cpus":1,"ports":[{"begin":1,"end":2}]}}`,
		`{"groups":[{"name":"g","count":1e300}]}`, `[]`, `null`, `{"name":1}`, `{"kill_grace":-1}`, "",
	} {
		f.Add([]byte(seed))
	}
	s := newCluster(f, clusterOptions{})
	s.consumers(api.Consumer{Path: "/t"})
	tenant := s.client(s.newToken(api.TokenRequest{Consumer: "/t"}), false)
	f.Fuzz(func(t *testing.T, body []byte) {
		targets := []any{&api.SessionSpec{}, &api.ConsumerTree{}, &api.TokenRequest{}, &api.ScaleRequest{}, &api.Accept{},
			&api.Decline{}, &api.Acks{}, &api.AgentRegistration{}, &api.StatusUpdates{}, &api.Heartbeat{}}
		for _, v := range targets {
			if err := decodeBytes(body, v); err != nil && !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("decode %T: %v does not wrap api.ErrInvalid", v, err)
			}
		}
		var spec api.SessionSpec
		if decodeBytes(body, &spec) != nil || checkSpec(spec) != nil {
			return
		}
		data, _ := json.Marshal(spec)
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, s.srv.URL+"/v1/sessions", strings.NewReader(string(data)))
		req.Header.Set("Authorization", "Bearer "+tenant.token)
		resp, err := tenant.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 || (resp.StatusCode != http.StatusCreated && resp.StatusCode/100 != 4) {
			t.Fatalf("a checked spec %s: %d %s", data, resp.StatusCode, msg)
		}
	})
}
