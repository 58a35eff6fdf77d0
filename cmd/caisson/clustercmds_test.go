package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/client"
)

// seen is what the fake master saw of a request.
type seen struct {
	Method, Path, Query, Auth string
	Body                      any // the JSON body, decoded; nil without one
}

// fakeMaster answers the cluster's commands as a master would: each
// route ("GET /v1/sessions") with its canned status and body, anything
// else with 404. It records every request.
type fakeMaster struct {
	srv     *httptest.Server
	caFile  string
	answers map[string]cannedAnswer
	mu      sync.Mutex
	got     []seen
}

type cannedAnswer struct {
	status int
	body   string
}

func newFakeMaster(t *testing.T, answers map[string]cannedAnswer) *fakeMaster {
	t.Helper()
	f := &fakeMaster{answers: answers}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization")}
		if len(b) > 0 {
			if err := json.Unmarshal(b, &s.Body); err != nil {
				s.Body = "not JSON: " + string(b)
			}
		}
		f.mu.Lock()
		f.got = append(f.got, s)
		f.mu.Unlock()
		a, ok := f.answers[r.Method+" "+r.URL.EscapedPath()]
		if !ok {
			a = cannedAnswer{404, `{"code":"not_found","message":"no such route"}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	// A client that refuses the certificate is a test's, not news.
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fakeMaster) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.got...)
}

const cliToken = "tenant-token-0123456789"

// clusterEnv clears the settings' variables and the token's, and writes
// a token file.
func clusterEnv(t *testing.T) string {
	t.Helper()
	clearSettingsEnv(t)
	t.Setenv(tokenEnv, "")
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(cliToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tok
}

// runAgainst runs caisson with args and the flags that reach f.
func runAgainst(t *testing.T, f *fakeMaster, tokenFile string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(append(args, "--master", f.srv.URL, "--tls-ca", f.caFile, "--token-file", tokenFile))
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// jsonBody is v as the fake master decodes a body.
func jsonBody(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClusterCommands: each command sends its request, with the token,
// and prints the answer as a table or as JSON.
func TestClusterCommands(t *testing.T) {
	tok := clusterEnv(t)
	bearer := "Bearer " + cliToken
	submitted := time.Now().Add(-3*time.Hour - 30*time.Minute).UTC()
	exit := 137
	session := api.Session{ID: "s-1", State: "running", Submitted: submitted,
		Spec:   api.SessionSpec{Name: "train", Consumer: "/eng/ml", Priority: 10, Groups: []api.TaskGroup{{Name: "w", Count: 4}}},
		Groups: []api.GroupStatus{{Name: "ps", Count: 1, Running: 1}, {Name: "w", Count: 4, Running: 2, Pending: 2}}}
	tasks := []api.Task{
		{ID: "s-1/w/0", Session: "s-1", Group: "w", Agent: "a-1", State: api.TaskRunning, Resources: api.TaskResources{CPUs: 2, MemoryBytes: 8 << 30, GPUs: 1},
			GPUs: []string{"GPU-1"}, Ports: []int{31000, 31001}, Revocable: true, Usage: &api.Usage{CPUUsageNanos: 1_254_000_000, MemoryUsageBytes: 5 << 20}},
		{ID: "s-1/w/1", Session: "s-1", Group: "w", State: api.TaskKilled, ExitCode: &exit, Reason: "reclaimed", Resources: api.TaskResources{CPUs: 2}},
	}
	jobFile := writeFile(t, "job.yaml", "name: train\ngroups:\n  - name: w\n    count: 2\n    resources: {cpus: 0.5, memory: 64m}\n    image: busybox\n")
	treeFile := writeFile(t, "tree.yaml", "consumers:\n  - name: eng\n    owned: {cpus: 4, memory: 8g}\n    children:\n      - {name: ml, weight: 2}\n")
	for _, tc := range []struct {
		name    string
		args    []string
		answers map[string]cannedAnswer
		want    []seen
		stdout  string
	}{
		{"submit", []string{"submit", jobFile},
			map[string]cannedAnswer{"POST /v1/sessions": {201, `{"id":"s-1","spec":{"name":"train","groups":[]},"state":"running","submitted":"2026-01-02T03:04:05Z","groups":[]}`}},
			[]seen{{Method: "POST", Path: "/v1/sessions", Auth: bearer, Body: jsonBody(t, api.SessionSpec{Name: "train", Groups: []api.TaskGroup{{
				Name: "w", Count: 2, Resources: api.TaskResources{CPUs: 0.5, MemoryBytes: 64 << 20}, Container: api.ContainerSpec{Image: "busybox"}}}})}},
			"s-1\n"},
		{"consumer apply", []string{"consumer", "apply", "-f", treeFile},
			map[string]cannedAnswer{"PUT /v1/consumers": {204, ``}},
			[]seen{{Method: "PUT", Path: "/v1/consumers", Auth: bearer, Body: jsonBody(t, api.ConsumerTree{Consumers: []api.Consumer{
				{Path: "/eng", Owned: api.TaskResources{CPUs: 4, MemoryBytes: 8 << 30}}, {Path: "/eng/ml", Weight: 2}}})}},
			"consumer tree applied: 2 consumers\n"},
		{"consumer ls", []string{"consumer", "ls"},
			map[string]cannedAnswer{"GET /v1/consumers": {200, `[{"path":"/eng","owned":{"cpus":4,"memory_bytes":8589934592},"leaf":false,"held":{"cpus":6},"deserved":{"cpus":4},"pending":{},"sessions":0},
				{"path":"/eng/ml","weight":2,"no_lend":true,"grace":"30s","limit":{"gpus":2},"leaf":true,"held":{},"deserved":{},"pending":{"cpus":1},"sessions":3}]`}},
			[]seen{{Method: "GET", Path: "/v1/consumers", Auth: bearer}},
			"PATH      WEIGHT   OWNED             LIMIT    HELD     DESERVED   PENDING   SESSIONS   LEND   GRACE\n" +
				"/eng      1        cpus:4 mem:8GiB   -        cpus:6   cpus:4     -         0          yes    default\n" +
				"/eng/ml   2        -                 gpus:2   -        -          cpus:1    3          no     30s\n"},
		{"token create", []string{"token", "create", "--consumer", "/eng/ml", "--name", "ml team", "--ttl", "720h"},
			map[string]cannedAnswer{"POST /v1/tokens": {201, `{"id":"tok-2","role":"tenant","consumer":"/eng/ml","created":"2026-01-02T03:04:05Z","secret":"the-new-secret"}`}},
			[]seen{{Method: "POST", Path: "/v1/tokens", Auth: bearer, Body: map[string]any{"role": "tenant", "consumer": "/eng/ml", "name": "ml team", "ttl": "720h0m0s"}}},
			"the-new-secret\n"},
		{"token create admin", []string{"token", "create", "--role", "admin"},
			map[string]cannedAnswer{"POST /v1/tokens": {201, `{"id":"tok-3","role":"admin","created":"2026-01-02T03:04:05Z","secret":"s3"}`}},
			[]seen{{Method: "POST", Path: "/v1/tokens", Auth: bearer, Body: map[string]any{"role": "admin"}}},
			"s3\n"},
		{"token ls", []string{"token", "ls"},
			map[string]cannedAnswer{"GET /v1/tokens": {200, `[{"id":"tok-1","role":"admin","created":"2026-01-02T03:04:05Z"},{"id":"tok-2","role":"tenant","consumer":"/eng/ml","name":"ml","created":"2026-01-02T03:04:05Z","expires":"2026-02-01T03:04:05Z"}]`}},
			[]seen{{Method: "GET", Path: "/v1/tokens", Auth: bearer}},
			"ID      ROLE     CONSUMER   NAME   CREATED                EXPIRES\n" +
				"tok-1   admin    -          -      2026-01-02T03:04:05Z   never\n" +
				"tok-2   tenant   /eng/ml    ml     2026-01-02T03:04:05Z   2026-02-01T03:04:05Z\n"},
		{"token revoke", []string{"token", "revoke", "tok-1", "tok-2"},
			map[string]cannedAnswer{"DELETE /v1/tokens/tok-1": {204, ``}, "DELETE /v1/tokens/tok-2": {204, ``}},
			[]seen{{Method: "DELETE", Path: "/v1/tokens/tok-1", Auth: bearer}, {Method: "DELETE", Path: "/v1/tokens/tok-2", Auth: bearer}},
			"tok-1\ntok-2\n"},
		{"session ls", []string{"session", "ls"},
			map[string]cannedAnswer{"GET /v1/sessions": {200, jsonString(t, []api.Session{session})}},
			[]seen{{Method: "GET", Path: "/v1/sessions", Auth: bearer}},
			"ID    NAME    CONSUMER   KIND    PRIORITY   STATE     TASKS   PENDING   SUBMITTED\n" +
				"s-1   train   /eng/ml    batch   10         running   3/5     2         3 hours ago\n"},
		{"session ls all quiet", []string{"session", "ls", "--all", "-q"},
			map[string]cannedAnswer{"GET /v1/sessions": {200, jsonString(t, []api.Session{session, {ID: "s-0"}})}},
			[]seen{{Method: "GET", Path: "/v1/sessions", Query: "all=true", Auth: bearer}},
			"s-1\ns-0\n"},
		{"session scale", []string{"session", "scale", "s-1", "w", "8"},
			map[string]cannedAnswer{"POST /v1/sessions/s-1/scale": {200, `{}`}},
			[]seen{{Method: "POST", Path: "/v1/sessions/s-1/scale", Auth: bearer, Body: map[string]any{"group": "w", "count": 8.0}}},
			"s-1 w 8\n"},
		{"session kill", []string{"session", "kill", "s-1"},
			map[string]cannedAnswer{"DELETE /v1/sessions/s-1": {200, `{}`}},
			[]seen{{Method: "DELETE", Path: "/v1/sessions/s-1", Auth: bearer}},
			"s-1\n"},
		{"task ls", []string{"task", "ls", "--session", "s-1"},
			map[string]cannedAnswer{"GET /v1/tasks": {200, jsonString(t, tasks)}},
			[]seen{{Method: "GET", Path: "/v1/tasks", Query: "session=s-1", Auth: bearer}},
			"ID        STATE          AGENT   RESOURCES                CPU TIME   MEM USED   PORTS         GPUS    REASON\n" +
				"s-1/w/0   running        a-1     cpus:2 mem:8GiB gpus:1   1.25s      5MiB       31000,31001   GPU-1   revocable\n" +
				"s-1/w/1   killed (137)   -       cpus:2                   -          -          -             -       reclaimed\n"},
		{"task kill", []string{"task", "kill", "s-1/w/0"},
			map[string]cannedAnswer{"POST /v1/tasks/s-1%2Fw%2F0/kill": {200, `{}`}},
			[]seen{{Method: "POST", Path: "/v1/tasks/s-1%2Fw%2F0/kill", Auth: bearer}},
			"s-1/w/0\n"},
		{"logs of a task", []string{"logs", "-f", "s-1/w/0"},
			map[string]cannedAnswer{"GET /v1/tasks/s-1%2Fw%2F0/logs": {200, "hello\nworld\n"}},
			[]seen{{Method: "GET", Path: "/v1/tasks/s-1%2Fw%2F0/logs", Query: "follow=true", Auth: bearer}},
			"hello\nworld\n"},
		{"agents", []string{"agents"},
			map[string]cannedAnswer{"GET /v1/agents": {200, jsonString(t, []api.Agent{{ID: "a-1", Hostname: "node-1", Address: "10.0.0.1:7051", State: "connected",
				Resources: api.NodeResources{CPUs: 8, MemoryBytes: 16 << 30, DiskBytes: 100 << 30, GPUs: []api.GPU{{UUID: "GPU-1"}}}, Tasks: 2, LastSeen: time.Now().Add(-1500 * time.Millisecond)}})}},
			[]seen{{Method: "GET", Path: "/v1/agents", Auth: bearer}},
			"ID    HOSTNAME   ADDRESS         STATE       CPUS   MEMORY   DISK     GPUS   TASKS   LAST SEEN\n" +
				"a-1   node-1     10.0.0.1:7051   connected   8      16GiB    100GiB   1      2       2 seconds ago\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMaster(t, tc.answers)
			out, _, err := runAgainst(t, f, tok, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, f.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.stdout, out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClusterCommandsJSON: --format json prints the master's answer,
// which reads back as the wire type; inspect always prints JSON.
func TestClusterCommandsJSON(t *testing.T) {
	tok := clusterEnv(t)
	session := api.Session{ID: "s-1", State: "running", Spec: api.SessionSpec{Name: "train"}, Submitted: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Groups: []api.GroupStatus{{Name: "w", Count: 2}}}
	task := api.Task{ID: "s-1/w/0", Session: "s-1", Group: "w", State: api.TaskRunning, Launched: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := newFakeMaster(t, map[string]cannedAnswer{
		"GET /v1/sessions":           {200, jsonString(t, []api.Session{session})},
		"GET /v1/sessions/s-1":       {200, jsonString(t, session)},
		"GET /v1/tasks":              {200, `[]`},
		"GET /v1/tasks/s-1%2Fw%2F0":  {200, jsonString(t, task)},
		"GET /v1/agents":             {200, `[]`},
		"GET /v1/consumers":          {200, `[]`},
		"GET /v1/tokens":             {200, `[]`},
		"POST /v1/tokens":            {201, `{"id":"tok-9","role":"tenant","consumer":"/eng","created":"2026-01-02T03:04:05Z","secret":"s"}`},
		"DELETE /v1/sessions/s-1":    {200, `{}`},
		"GET /v1/sessions/s-missing": {404, `{"code":"not_found","message":"session s-missing"}`},
	})
	for _, tc := range []struct {
		args []string
		into any
		want any
	}{
		{[]string{"session", "ls", "--format", "json"}, &[]api.Session{}, &[]api.Session{session}},
		{[]string{"session", "inspect", "s-1"}, &[]api.Session{}, &[]api.Session{session}},
		{[]string{"task", "inspect", "s-1/w/0"}, &[]api.Task{}, &[]api.Task{task}},
		{[]string{"task", "ls", "--format", "json"}, &[]api.Task{}, &[]api.Task{}},
		{[]string{"agents", "--format", "json"}, &[]api.Agent{}, &[]api.Agent{}},
		{[]string{"consumer", "ls", "--format", "json"}, &[]api.ConsumerStatus{}, &[]api.ConsumerStatus{}},
		{[]string{"token", "ls", "--format", "json"}, &[]api.Token{}, &[]api.Token{}},
		{[]string{"token", "create", "--consumer", "/eng", "--format", "json"}, &api.Token{},
			&api.Token{ID: "tok-9", Role: "tenant", Consumer: "/eng", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Secret: "s"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, _, err := runAgainst(t, f, tok, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(out), tc.into); err != nil {
				t.Fatalf("%v in %s", err, out)
			}
			if diff := cmp.Diff(tc.want, tc.into); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	// An ID not found is an error, after what was found.
	out, _, err := runAgainst(t, f, tok, "session", "inspect", "s-1", "s-missing")
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("inspect s-1 s-missing: %v, want api.ErrNotFound", err)
	}
	var got []api.Session
	if jerr := json.Unmarshal([]byte(out), &got); jerr != nil || len(got) != 1 {
		t.Errorf("inspect s-1 s-missing printed %q (%v), want s-1", out, jerr)
	}
}

// TestClusterCommandsRefuse: bad arguments and files are refused before
// anything is sent.
func TestClusterCommandsRefuse(t *testing.T) {
	tok := clusterEnv(t)
	badJob := writeFile(t, "bad.yaml", "name: s\ngroups:\n  - name: g\n    resources: {cpus: 1, memory: 1x}\n    image: busybox\n")
	badTree := writeFile(t, "tree.yaml", "consumers:\n  - path: eng\n")
	for _, tc := range []struct {
		name string
		args []string
		is   error
	}{
		{"submit no file", []string{"submit"}, nil},
		{"submit missing file", []string{"submit", filepath.Join(t.TempDir(), "none.yaml")}, os.ErrNotExist},
		{"submit bad file", []string{"submit", badJob}, api.ErrInvalid},
		{"submit a directory", []string{"submit", t.TempDir()}, api.ErrInvalid},
		{"submit format", []string{"submit", badJob, "--format", "yaml"}, api.ErrInvalid},
		{"consumer apply without -f", []string{"consumer", "apply"}, api.ErrInvalid},
		{"consumer apply bad tree", []string{"consumer", "apply", "-f", badTree}, api.ErrInvalid},
		{"consumer apply an argument", []string{"consumer", "apply", "-f", badTree, "extra"}, nil},
		{"token create role", []string{"token", "create", "--role", "root"}, api.ErrInvalid},
		{"token create ttl negative", []string{"token", "create", "--ttl", "-1h"}, api.ErrInvalid},
		{"token create ttl no unit", []string{"token", "create", "--ttl", "30"}, api.ErrInvalid},
		{"token revoke nothing", []string{"token", "revoke"}, nil},
		{"session scale count", []string{"session", "scale", "s-1", "w", "many"}, api.ErrInvalid},
		{"session scale negative", []string{"session", "scale", "s-1", "w", "-1"}, api.ErrInvalid},
		{"session scale two args", []string{"session", "scale", "s-1", "w"}, nil},
		{"session ls format", []string{"session", "ls", "--format", "yaml"}, api.ErrInvalid},
		{"session inspect nothing", []string{"session", "inspect"}, nil},
		{"task ls format", []string{"task", "ls", "--format", "xml"}, api.ErrInvalid},
		{"task kill nothing", []string{"task", "kill"}, nil},
		{"logs of a task with timestamps", []string{"logs", "-t", "s-1/w/0"}, api.ErrInvalid},
		{"token and token file", []string{"agents", "--token", "x"}, api.ErrInvalid},
		{"empty token", []string{"session", "ls", "--token", ""}, api.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMaster(t, nil)
			_, _, err := runAgainst(t, f, tok, tc.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v, want %v", err, tc.is)
			}
			if got := f.requests(); len(got) > 0 {
				t.Errorf("sent %v", got)
			}
		})
	}
}

// TestSubmitErrorNamesLine: a mistake in a session file is named with
// the file, its line and the field.
func TestSubmitErrorNamesLine(t *testing.T) {
	tok := clusterEnv(t)
	job := writeFile(t, "job.yaml", "name: s\ngroups:\n  - name: g\n    resources: {cpus: 1}\n    image: busybox\n    kill_grace: soon\n")
	_, _, err := runAgainst(t, newFakeMaster(t, nil), tok, "submit", job)
	var fe *fileError
	if !errors.As(err, &fe) {
		t.Fatalf("%v, want a *fileError", err)
	}
	if diff := cmp.Diff(fileError{File: job, Line: 6, Field: "groups[0].kill_grace"}, fileError{File: fe.File, Line: fe.Line, Field: fe.Field}); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestClusterToken: where the token comes from, each source over the one
// below it: --token or --token-file, CAISSON_TOKEN, CAISSON_TOKEN_FILE,
// the config file's client.token_file.
func TestClusterToken(t *testing.T) {
	clearSettingsEnv(t)
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f := newFakeMaster(t, map[string]cannedAnswer{"GET /v1/agents": {200, `[]`}})
	conf := file("config.toml", "version = 1\n[client]\nmaster = \""+f.srv.URL+"\"\ntls_ca = \""+f.caFile+"\"\ntoken_file = \""+file("conf.token", "from-config-file\n")+"\"\n")
	flagFile, envFile := file("flag.token", "  from-flag-file \n"), file("env.token", "from-env-file")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"config file", nil, nil, "from-config-file"},
		{"CAISSON_TOKEN_FILE over the config file", nil, map[string]string{"CAISSON_TOKEN_FILE": envFile}, "from-env-file"},
		{"CAISSON_TOKEN over CAISSON_TOKEN_FILE", nil, map[string]string{"CAISSON_TOKEN_FILE": envFile, tokenEnv: "from-env"}, "from-env"},
		{"--token-file over CAISSON_TOKEN", []string{"--token-file", flagFile}, map[string]string{tokenEnv: "from-env"}, "from-flag-file"},
		{"--token over CAISSON_TOKEN", []string{"--token", "from-flag"}, map[string]string{tokenEnv: "from-env", "CAISSON_TOKEN_FILE": envFile}, "from-flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tokenEnv, "")
			t.Setenv("CAISSON_TOKEN_FILE", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			before := len(f.requests())
			if _, err := runCaisson(t, append([]string{"--config", conf, "agents"}, tc.args...)...); err != nil {
				t.Fatal(err)
			}
			got := f.requests()[before:]
			if len(got) != 1 || got[0].Auth != "Bearer "+tc.want {
				t.Errorf("sent %v, want the token %q", got, tc.want)
			}
		})
	}

	t.Run("none", func(t *testing.T) {
		t.Setenv(tokenEnv, "")
		t.Setenv("CAISSON_TOKEN_FILE", "")
		_, err := runCaisson(t, "agents", "--master", f.srv.URL, "--tls-ca", f.caFile)
		if !errors.Is(err, api.ErrUnauthorized) {
			t.Errorf("%v, want api.ErrUnauthorized", err)
		}
	})
	t.Run("a token file that holds none", func(t *testing.T) {
		_, err := runCaisson(t, "agents", "--master", f.srv.URL, "--tls-ca", f.caFile, "--token-file", file("empty.token", " \n"))
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%v, want api.ErrInvalid", err)
		}
	})
	t.Run("a bad token is not shown", func(t *testing.T) {
		_, err := runCaisson(t, "agents", "--master", f.srv.URL, "--tls-ca", f.caFile, "--token-file", file("bad.token", "secret part\n"))
		if !errors.Is(err, api.ErrInvalid) || strings.Contains(errorLine(withFlags(err)), "secret") {
			t.Errorf("%v: want api.ErrInvalid, without the token", err)
		}
	})
}

// TestClusterMasterErrors: what the master refuses comes back with its
// sentinel, and with the command's flag where the master names a field
// one sets; a master the client cannot verify is unavailable.
func TestClusterMasterErrors(t *testing.T) {
	tok := clusterEnv(t)
	f := newFakeMaster(t, map[string]cannedAnswer{
		"POST /v1/tokens":  {400, `{"code":"invalid","message":"consumer \"/nope\" is not in the tree","field":"consumer"}`},
		"GET /v1/sessions": {403, `{"code":"forbidden","message":"admin only"}`},
		"GET /v1/agents":   {401, `{"code":"unauthorized","message":"token expired"}`},
	})
	_, _, err := runAgainst(t, f, tok, "token", "create", "--consumer", "/nope")
	var fe *flagError
	if !errors.Is(err, api.ErrInvalid) || !errors.As(err, &fe) || !strings.HasPrefix(fe.msg, "--consumer: ") {
		t.Errorf("token create: %v, want api.ErrInvalid naming --consumer", err)
	}
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Field != "consumer" {
		t.Errorf("token create: %v, want the master's *client.Error", err)
	}
	if _, _, err := runAgainst(t, f, tok, "session", "ls"); !errors.Is(err, api.ErrForbidden) {
		t.Errorf("session ls: %v, want api.ErrForbidden", err)
	}
	if _, _, err := runAgainst(t, f, tok, "agents"); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("agents: %v, want api.ErrUnauthorized", err)
	}

	// Without the cluster's CA the master cannot be verified: nothing is
	// sent, and the error says which flag gives the CA.
	before := len(f.requests())
	_, err = runCaisson(t, "agents", "--master", f.srv.URL, "--token-file", tok)
	if !errors.Is(err, api.ErrUnavailable) || !errors.As(err, &fe) || !strings.Contains(fe.msg, "--tls-ca") {
		t.Errorf("agents without the CA: %v, want api.ErrUnavailable naming --tls-ca", err)
	}
	if got := f.requests()[before:]; len(got) > 0 {
		t.Errorf("sent %v to an unverified master", got)
	}
}

// TestClientSettingsRefused: the client section's settings are checked
// before any command runs, and named where they came from.
func TestClientSettingsRefused(t *testing.T) {
	clusterEnv(t)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want culprit
	}{
		{"http master", []string{"agents", "--master", "http://m:7050"}, nil, culprit{Key: "client.master", From: "--master"}},
		{"master from env", []string{"session", "ls"}, map[string]string{"CAISSON_MASTER": "m:7050"}, culprit{Key: "client.master", From: "CAISSON_MASTER"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := runCaisson(t, tc.args...)
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("%v, want api.ErrInvalid", err)
			}
			if diff := cmp.Diff([]culprit{tc.want}, culprits(err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestContainerLogsUnchanged: logs of a name without a slash is still a
// container's, read from the work dir, not asked of a master.
func TestContainerLogsUnchanged(t *testing.T) {
	tok := clusterEnv(t)
	f := newFakeMaster(t, nil)
	_, _, err := runAgainst(t, f, tok, "--root", t.TempDir(), "--run-root", t.TempDir(), "logs", "web")
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("logs web: %v, want api.ErrNotFound from the work dir", err)
	}
	if got := f.requests(); len(got) > 0 {
		t.Errorf("logs web asked the master: %v", got)
	}
}
