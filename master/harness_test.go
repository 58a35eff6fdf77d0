package master

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/pki"
	"github.com/caisson/caisson/scheduler/store"
	"github.com/google/go-cmp/cmp"
)

// The test harness: a master served over HTTPS with the cluster's TLS
// material, clients with tokens, and fake agents that speak the real
// protocol (register, stream, updates, heartbeats) without containers.
// The benchmark uses it too.

// waitFor bounds every wait of a test on something that must happen.
const waitFor = 30 * time.Second

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock moves only when a test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.ch <- c.now
	}
	c.timers = kept
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// cluster is a master on a bbolt store in a temporary directory, served
// over TLS on loopback.
type cluster struct {
	tb        testing.TB
	dir       string
	cfg       Config
	clock     *fakeClock
	m         *Master
	srv       *httptest.Server
	st        *store.Bolt
	cancel    context.CancelFunc
	runErr    chan error
	admin     string
	userTLS   *tls.Config
	agentTLS  *tls.Config
	serverTLS *tls.Config
	detached  chan string
	noSync    bool
}

type clusterOptions struct {
	// realClock keeps the master on the real clock; tests use a fake one.
	realClock bool
	noSync    bool
	logger    *slog.Logger
	config    func(*Config)
}

func newCluster(tb testing.TB, o clusterOptions) *cluster {
	tb.Helper()
	dir := tb.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	if err := pki.Init(pkiDir, nil); err != nil {
		tb.Fatal(err)
	}
	at := func(name string) string { return filepath.Join(pkiDir, name) }
	c := &cluster{tb: tb, dir: dir, detached: make(chan string, 1024), noSync: o.noSync}
	var err error
	if c.serverTLS, err = (pki.Files{CA: at(pki.CAFile), Cert: at(pki.MasterFile), Key: at(pki.MasterKeyFile)}).ServerConfig(); err != nil {
		tb.Fatal(err)
	}
	if c.userTLS, err = (pki.Files{CA: at(pki.CAFile)}).ClientConfig(); err != nil {
		tb.Fatal(err)
	}
	if c.agentTLS, err = (pki.Files{CA: at(pki.CAFile), Cert: at(pki.AgentFile), Key: at(pki.AgentKeyFile)}).ClientConfig(); err != nil {
		tb.Fatal(err)
	}
	masterClient, err := (pki.Files{CA: at(pki.CAFile), Cert: at(pki.MasterFile), Key: at(pki.MasterKeyFile)}).ClientConfig()
	if err != nil {
		tb.Fatal(err)
	}
	logger := o.logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.cfg = Config{Logger: logger, AgentTLS: masterClient, Version: "test"}
	if !o.realClock {
		c.clock = newFakeClock()
		c.cfg.Clock = c.clock
	}
	if o.config != nil {
		o.config(&c.cfg)
	}
	c.start()
	tb.Cleanup(c.stop)
	secret, created, err := c.m.BootstrapAdmin()
	if err != nil || !created {
		tb.Fatalf("BootstrapAdmin: %q, %t, %v", secret, created, err)
	}
	c.admin = secret
	return c
}

// start opens the store, restores a master from it and serves it.
func (c *cluster) start() {
	c.tb.Helper()
	st, err := store.Open(filepath.Join(c.dir, "master.db"), store.Options{NoSync: c.noSync})
	if err != nil {
		c.tb.Fatal(err)
	}
	c.st = st
	c.cfg.Store = st
	m, err := New(c.cfg)
	if err != nil {
		c.tb.Fatal(err)
	}
	m.onDetach = func(id string) {
		select {
		case c.detached <- id:
		default:
		}
	}
	c.m = m
	c.srv = httptest.NewUnstartedServer(m.Handler())
	c.srv.TLS = c.serverTLS.Clone()
	c.srv.StartTLS()
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.runErr = make(chan error, 1)
	go func() { c.runErr <- m.Run(ctx) }()
}

// stop stops the master and closes its store, as a crash would leave it:
// nothing is saved at the end.
func (c *cluster) stop() {
	if c.m == nil {
		return
	}
	c.cancel()
	if err := <-c.runErr; err != nil {
		c.tb.Errorf("Run: %v", err)
	}
	_ = c.m.Close()
	c.srv.CloseClientConnections()
	c.srv.Close()
	_ = c.st.Close()
	c.m = nil
}

// restart stops the master and starts a new one from the same store,
// and checks that the new one's state is the old one's.
func (c *cluster) restart() {
	c.tb.Helper()
	before := c.state()
	c.stop()
	c.start()
	if diff := cmp.Diff(before, c.state()); diff != "" {
		c.tb.Errorf("the restored master's state (-stopped +restored):\n%s", diff)
	}
}

// state is the master's tables and core, as its snapshot encodes them.
func (c *cluster) state() map[string]any {
	c.tb.Helper()
	data := inLoop(c, func(m *Master) []byte {
		b, err := m.encodeSnapshot()
		if err != nil {
			c.tb.Fatal(err)
		}
		return b
	})
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		c.tb.Fatal(err)
	}
	return v
}

// advance moves the fake clock and has the master tick at the new time.
func (c *cluster) advance(d time.Duration) {
	c.tb.Helper()
	c.clock.Advance(d)
	c.tick()
}

// tick runs one of the loop's periodic ticks now, and returns once it is
// durable and acted on.
func (c *cluster) tick() {
	c.tb.Helper()
	if _, err := c.m.do(context.Background(), func(tx *txn) (any, error) {
		c.m.timerTick(tx)
		return nil, nil
	}); err != nil {
		c.tb.Fatal(err)
	}
}

// inLoop runs f in the master's loop, for a look at its tables.
func inLoop[T any](c *cluster, f func(m *Master) T) T {
	c.tb.Helper()
	res, err := c.m.do(context.Background(), func(*txn) (any, error) { return f(c.m), nil })
	if err != nil {
		c.tb.Fatal(err)
	}
	return res.(T)
}

// client calls the API with a token; agent clients also present the
// agent certificate.
type client struct {
	c     *cluster
	token string
	http  *http.Client
}

func (c *cluster) client(token string, agentCert bool) *client {
	cfg := c.userTLS
	if agentCert {
		cfg = c.agentTLS
	}
	return &client{c: c, token: token, http: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.Clone(), MaxIdleConnsPerHost: 4}}}
}

func (c *cluster) adminClient() *client { return c.client(c.admin, false) }

// newToken makes a token with the admin's client and returns its secret.
func (c *cluster) newToken(req api.TokenRequest) string {
	c.tb.Helper()
	var tok api.Token
	c.adminClient().must(http.MethodPost, "/v1/tokens", req, http.StatusCreated, &tok)
	return tok.Secret
}

// call sends a request; body is JSON-encoded unless it is []byte. It
// returns the status and, for an error status, the api.Error.
func (cl *client) call(method, path string, body, out any) (int, api.Error) {
	cl.c.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(body)
		if err != nil {
			cl.c.tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, cl.c.srv.URL+path, rd)
	if err != nil {
		cl.c.tb.Fatal(err)
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		cl.c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		cl.c.tb.Fatal(err)
	}
	var apiErr api.Error
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &apiErr); err != nil {
			cl.c.tb.Fatalf("%s %s: %d with a body that is not an api.Error: %q", method, path, resp.StatusCode, data)
		}
		return resp.StatusCode, apiErr
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			cl.c.tb.Fatalf("%s %s: %v in %q", method, path, err, data)
		}
	}
	return resp.StatusCode, apiErr
}

// must is call that fails the test unless the status is want.
func (cl *client) must(method, path string, body any, want int, out any) {
	cl.c.tb.Helper()
	if got, apiErr := cl.call(method, path, body, out); got != want {
		cl.c.tb.Fatalf("%s %s: status %d (%+v), want %d", method, path, got, apiErr, want)
	}
}

// stream opens an NDJSON stream and sends each line, decoded as T, on the
// returned channel until the stream ends (then the channel is closed).
func openStream[T any](cl *client, ctx context.Context, path string) (<-chan T, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.c.srv.URL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	resp, err := cl.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	out := make(chan T, 256)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		dec := json.NewDecoder(resp.Body)
		for {
			var v T
			if err := dec.Decode(&v); err != nil {
				return
			}
			out <- v
		}
	}()
	return out, nil
}

// next waits for the next value on ch that keep accepts.
func next[T any](tb testing.TB, ch <-chan T, what string, keep func(T) bool) T {
	tb.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				tb.Fatalf("waiting for %s: the stream ended", what)
			}
			if keep == nil || keep(v) {
				return v
			}
		case <-timeout:
			tb.Fatalf("waiting for %s: nothing in %s", what, waitFor)
		}
	}
}

// fakeAgent is an agent without containers: it registers, holds its
// stream, records what the master sends and reports what the test says.
type fakeAgent struct {
	c   *cluster
	cl  *client
	reg api.AgentRegistration
	ID  string

	mu       sync.Mutex
	launches map[string]int // task → launches received
	kills    []api.TaskKill
	runs     map[string]string // task → its state, as the agent knows it

	msgs   chan api.AgentMessage
	cancel context.CancelFunc
	done   chan struct{}
	// onLaunch, when set, is called for every launch received (in the
	// stream's goroutine), instead of passing it on msgs.
	onLaunch func(api.TaskLaunch)
}

func (c *cluster) newAgent(token, hostname string, res api.NodeResources, labels map[string]string) *fakeAgent {
	return &fakeAgent{
		c: c, cl: c.client(token, true),
		reg:      api.AgentRegistration{Hostname: hostname, Address: "127.0.0.1:1", Resources: res, Labels: labels},
		launches: map[string]int{}, runs: map[string]string{}, msgs: make(chan api.AgentMessage, 1024),
	}
}

func nodeResources(cpus float64, mem int64) api.NodeResources {
	return api.NodeResources{CPUs: cpus, MemoryBytes: mem, Ports: []api.PortRange{}, GPUs: []api.GPU{}}
}

// register registers (again), listing the tasks the agent runs, and
// returns the master's answer.
func (f *fakeAgent) register() api.Registered {
	f.c.tb.Helper()
	reg := f.reg
	reg.ID = f.ID
	f.mu.Lock()
	for id, st := range f.runs {
		reg.Tasks = append(reg.Tasks, api.AgentTask{ID: id, Container: "c-" + id, State: st})
	}
	f.mu.Unlock()
	var out api.Registered
	f.cl.must(http.MethodPost, "/v1/agent/register", reg, http.StatusOK, &out)
	f.ID = out.ID
	return out
}

// connect opens the agent's stream.
func (f *fakeAgent) connect() {
	f.c.tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := openStream[api.AgentMessage](f.cl, ctx, "/v1/agent/stream?agent="+f.ID)
	if err != nil {
		cancel()
		f.c.tb.Fatal(err)
	}
	f.cancel, f.done = cancel, make(chan struct{})
	go func() {
		defer close(f.done)
		for msg := range ch {
			if msg.Ping {
				continue
			}
			f.mu.Lock()
			if msg.Launch != nil {
				f.launches[msg.Launch.Task]++
				if _, ok := f.runs[msg.Launch.Task]; !ok {
					f.runs[msg.Launch.Task] = api.TaskStaging
				}
			}
			if msg.Kill != nil {
				f.kills = append(f.kills, *msg.Kill)
			}
			f.mu.Unlock()
			if msg.Launch != nil && f.onLaunch != nil {
				f.onLaunch(*msg.Launch)
				continue
			}
			f.msgs <- msg
		}
	}()
	f.c.tb.Cleanup(f.disconnect)
}

// start registers and connects.
func (f *fakeAgent) start() *fakeAgent {
	f.register()
	f.connect()
	return f
}

// disconnect closes the stream and waits for its reader.
func (f *fakeAgent) disconnect() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
		f.cancel = nil
	}
}

// waitGone waits until the agent's stream, if it had one, has ended.
func (f *fakeAgent) waitGone() {
	if f.done != nil {
		<-f.done
	}
}

// nextLaunch waits for a launch.
func (f *fakeAgent) nextLaunch() api.TaskLaunch {
	f.c.tb.Helper()
	return *next(f.c.tb, f.msgs, "a launch on "+f.ID, func(m api.AgentMessage) bool { return m.Launch != nil }).Launch
}

// nextKill waits for a kill.
func (f *fakeAgent) nextKill() api.TaskKill {
	f.c.tb.Helper()
	return *next(f.c.tb, f.msgs, "a kill on "+f.ID, func(m api.AgentMessage) bool { return m.Kill != nil }).Kill
}

// report sends status updates and returns the master's acks.
func (f *fakeAgent) report(updates ...api.StatusUpdate) api.Acks {
	f.c.tb.Helper()
	f.mu.Lock()
	for _, u := range updates {
		if api.TaskTerminal(u.State) {
			delete(f.runs, u.Task)
		} else {
			f.runs[u.Task] = u.State
		}
	}
	f.mu.Unlock()
	var acks api.Acks
	f.cl.must(http.MethodPost, "/v1/agent/updates", api.StatusUpdates{Agent: f.ID, Updates: updates}, http.StatusOK, &acks)
	return acks
}

func (f *fakeAgent) launchCount(task string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.launches[task]
}

var updateSeq struct {
	sync.Mutex
	n int
}

// update is a status update with a fresh UUID.
func update(task, state string) api.StatusUpdate {
	updateSeq.Lock()
	defer updateSeq.Unlock()
	updateSeq.n++
	return api.StatusUpdate{UUID: fmt.Sprintf("u%d", updateSeq.n), Task: task, State: state, Container: "c-" + task}
}

// waitDetached waits until the master has seen the agent's stream go.
func (c *cluster) waitDetached(id string) {
	c.tb.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case got := <-c.detached:
			if got == id {
				return
			}
		case <-timeout:
			c.tb.Fatalf("the master did not see agent %s's stream go", id)
		}
	}
}

// consumers sets a consumer tree with the admin's client.
func (c *cluster) consumers(cs ...api.Consumer) {
	c.tb.Helper()
	c.adminClient().must(http.MethodPut, "/v1/consumers", api.ConsumerTree{Consumers: cs}, http.StatusOK, nil)
}

// batchSpec is a batch session of one group.
func batchSpec(name string, count int, cpus float64) api.SessionSpec {
	return api.SessionSpec{Name: name, Groups: []api.TaskGroup{{
		Name: "work", Count: count, Resources: api.TaskResources{CPUs: cpus, MemoryBytes: 64 << 20},
		Container: api.ContainerSpec{Image: "busybox", Command: []string{"true"}},
	}}}
}
