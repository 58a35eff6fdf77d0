package agent

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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/pki"
)

// guard bounds every wait of a test, so a bug shows as a failure rather
// than a hang; it is never what a test waits for.
const guard = 60 * time.Second

// recv receives from ch, failing the test when nothing comes.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// fakeClock is a Clock whose time moves only when a test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced when a timer is made
}

type fakeTimer struct {
	c  *fakeClock
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), changed: make(chan struct{})}
}

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
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	n := len(t.c.timers)
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *fakeTimer) bool { return x == t })
	return len(t.c.timers) < n
}

// Advance moves the time on by d and fires the timers due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.timers = slices.DeleteFunc(c.timers, func(t *fakeTimer) bool {
		if t.at.After(c.now) {
			return false
		}
		t.ch <- c.now
		return true
	})
}

// pendingWithin reports whether a timer is set to fire within d from now.
func (c *fakeClock) pendingWithin(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.timers, func(x *fakeTimer) bool { return !x.at.After(c.now.Add(d)) })
}

// waitTimer blocks until a timer is set to fire within d from now.
func (c *fakeClock) waitTimer(t *testing.T, d time.Duration) {
	t.Helper()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if c.pendingWithin(d) {
			return
		}
		recv(t, ch, fmt.Sprintf("timer within %v", d))
	}
}

// call is a call to the fake containers that changes something.
type call struct {
	op   string // "launch", "kill", "remove"
	id   string
	sig  syscall.Signal
	spec api.ContainerSpec
}

// fakeContainers plays the containerizer: containers run until a test
// ends them (exit) or they get SIGKILL.
type fakeContainers struct {
	mu       sync.Mutex
	n        int
	byID     map[string]*fakeContainer
	log      []call
	calls    chan call
	launched chan string // container IDs, as launches succeed
	// failLaunch makes the launch of a task fail with its error; with
	// leave, it leaves an exited container behind, as a broken
	// containerizer would.
	failLaunch map[string]error
	leave      bool
	// termExit, when set, is the termination SIGTERM gives.
	termExit *api.Termination
	// onRemove runs at each removal, before it; removeErr, when set, is
	// the error of each removal, which then leaves the container.
	onRemove  func(id string)
	removeErr error
	// gate, when set, holds each launch until it is closed or the
	// launch's context is done; launching says a launch is held.
	gate      chan struct{}
	launching chan string
}

type fakeContainer struct {
	c    api.Container
	done chan struct{}
	out  []byte // its log: "output of ID", then what print adds
}

func newFakeContainers() *fakeContainers {
	return &fakeContainers{
		byID: map[string]*fakeContainer{}, calls: make(chan call, 1000), launched: make(chan string, 100),
		failLaunch: map[string]error{}, launching: make(chan string, 100),
	}
}

func (f *fakeContainers) record(c call) {
	f.log = append(f.log, c)
	f.calls <- c
}

// add makes a container of spec in state, as if launched before.
func (f *fakeContainers) add(spec api.ContainerSpec, state api.State) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addLocked(spec, state)
}

func (f *fakeContainers) addLocked(spec api.ContainerSpec, state api.State) string {
	f.n++
	id := fmt.Sprintf("c%02d", f.n)
	fc := &fakeContainer{
		c: api.Container{ID: id, Name: spec.Name, Spec: spec, State: state}, done: make(chan struct{}),
		out: []byte("output of " + id + "\n"),
	}
	if state == api.StateExited {
		fc.c.Termination = &api.Termination{Reason: api.ReasonExited}
		close(fc.done)
	}
	f.byID[id] = fc
	return id
}

func (f *fakeContainers) Launch(ctx context.Context, spec api.ContainerSpec, _ *api.TaskLaunch) (string, error) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		f.launching <- spec.Labels[LabelTask]
		select {
		case <-gate:
		case <-ctx.Done():
			return "", fmt.Errorf("launch: %w", ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(call{op: "launch", spec: spec})
	if err := f.failLaunch[spec.Labels[LabelTask]]; err != nil {
		if f.leave {
			f.addLocked(spec, api.StateExited)
		}
		return "", err
	}
	id := f.addLocked(spec, api.StateRunning)
	f.launched <- id
	return id, nil
}

// exit ends a running container with term.
func (f *fakeContainers) exit(id string, term api.Termination) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.exitLocked(id, term)
}

func (f *fakeContainers) exitLocked(id string, term api.Termination) {
	fc := f.byID[id]
	if fc == nil || fc.c.State != api.StateRunning {
		return
	}
	fc.c.State, fc.c.Termination = api.StateExited, &term
	close(fc.done)
}

// print adds s to a container's log.
func (f *fakeContainers) print(id, s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fc := f.byID[id]; fc != nil {
		fc.out = append(fc.out, s...)
	}
}

// vanish removes a container behind the agent's back.
func (f *fakeContainers) vanish(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fc := f.byID[id]
	delete(f.byID, id)
	if fc != nil && fc.c.State == api.StateRunning {
		close(fc.done)
	}
}

func (f *fakeContainers) Wait(ctx context.Context, id string) (*api.Termination, error) {
	f.mu.Lock()
	fc := f.byID[id]
	f.mu.Unlock()
	if fc == nil {
		return nil, nil
	}
	select {
	case <-fc.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byID[id]; !ok {
		return nil, nil
	}
	return fc.c.Termination, nil
}

func (f *fakeContainers) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(call{op: "kill", id: id, sig: sig})
	fc := f.byID[id]
	if fc == nil {
		return fmt.Errorf("no such container: %s: %w", id, api.ErrNotFound)
	}
	if fc.c.State != api.StateRunning {
		return fmt.Errorf("container %s is not running: %w", id, api.ErrWrongState)
	}
	switch {
	case sig == syscall.SIGKILL:
		f.exitLocked(id, api.Termination{ExitCode: 137, Signal: "SIGKILL", Reason: api.ReasonKilled})
	case sig == syscall.SIGTERM && f.termExit != nil:
		f.exitLocked(id, *f.termExit)
	}
	return nil
}

func (f *fakeContainers) Remove(ctx context.Context, id string, force bool) error {
	if f.onRemove != nil {
		f.onRemove(id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(call{op: "remove", id: id})
	if f.removeErr != nil {
		return f.removeErr
	}
	fc := f.byID[id]
	if fc == nil {
		return fmt.Errorf("no such container: %s: %w", id, api.ErrNotFound)
	}
	if fc.c.State == api.StateRunning {
		if !force {
			return fmt.Errorf("container %s is running: %w", id, api.ErrWrongState)
		}
		f.exitLocked(id, api.Termination{ExitCode: 137, Reason: api.ReasonKilled})
	}
	delete(f.byID, id)
	return nil
}

func (f *fakeContainers) List(ctx context.Context) ([]api.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Container
	for _, fc := range f.byID {
		out = append(out, fc.c)
	}
	// Newest first, as the containerizer lists them.
	slices.SortFunc(out, func(a, b api.Container) int { return -cmpString(a.ID, b.ID) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (f *fakeContainers) Usage(ctx context.Context, id string) (*api.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byID[id] == nil {
		return nil, fmt.Errorf("no such container: %s: %w", id, api.ErrNotFound)
	}
	return &api.Usage{CPUUsageNanos: 42, MemoryUsageBytes: 1 << 20}, nil
}

// Logs writes the container's log a line at a time, as the
// containerizer writes its records; with follow, what is added until the
// container has ended too.
func (f *fakeContainers) Logs(ctx context.Context, id string, follow bool, w io.Writer) error {
	f.mu.Lock()
	fc := f.byID[id]
	var out []byte
	if fc != nil {
		out = slices.Clone(fc.out)
	}
	f.mu.Unlock()
	if fc == nil {
		return fmt.Errorf("no such container: %s: %w", id, api.ErrNotFound)
	}
	writeLines(w, out)
	if !follow {
		return nil
	}
	select {
	case <-fc.done:
		f.mu.Lock()
		rest := slices.Clone(fc.out[len(out):])
		f.mu.Unlock()
		writeLines(w, rest)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func writeLines(w io.Writer, b []byte) {
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) > 0 {
			_, _ = w.Write(line)
		}
	}
}

// count is how many calls of op there were.
func (f *fakeContainers) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.log {
		if c.op == op {
			n++
		}
	}
	return n
}

// nextCall returns the next call of op, skipping others.
func (f *fakeContainers) nextCall(t *testing.T, op string) call {
	t.Helper()
	for {
		if c := recv(t, f.calls, op+" call"); c.op == op {
			return c
		}
	}
}

// tlsFiles is the cluster's TLS material, made by pki.Init.
type tlsFiles struct{ dir string }

func newTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := pki.Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	return tlsFiles{dir}
}

func (f tlsFiles) files(role string) pki.Files {
	p := func(n string) string { return filepath.Join(f.dir, n) }
	if role == pki.RoleMaster {
		return pki.Files{CA: p(pki.CAFile), Cert: p(pki.MasterFile), Key: p(pki.MasterKeyFile)}
	}
	return pki.Files{CA: p(pki.CAFile), Cert: p(pki.AgentFile), Key: p(pki.AgentKeyFile)}
}

func (f tlsFiles) server(t *testing.T, role string) *tls.Config {
	t.Helper()
	cfg, err := f.files(role).ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// client is a client configuration with role's certificate; "" for none.
func (f tlsFiles) client(t *testing.T, role string) *tls.Config {
	t.Helper()
	files := f.files(role)
	if role == "" {
		files.Cert, files.Key = "", ""
	}
	cfg, err := files.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const agentToken = "agent-secret"

// fakeMaster serves the master's agent endpoints over mutual TLS.
type fakeMaster struct {
	srv *httptest.Server

	mu       sync.Mutex
	down     bool
	noAck    bool
	kill     []string
	assigned int
	// delivered are the tasks' states of the updates received.
	delivered map[[2]string]bool

	attempts   chan struct{} // every registration, reached or not
	regs       chan api.AgentRegistration
	streams    chan *fakeStream
	updates    chan api.StatusUpdate
	heartbeats chan api.Heartbeat
	seen       map[string]bool // the UUIDs next took (the test's goroutine only)
}

type fakeStream struct {
	msgs chan api.AgentMessage
	drop chan struct{}
}

func (s *fakeStream) send(m api.AgentMessage) { s.msgs <- m }

// heartbeatEvery is the heartbeat period the fake master asks for.
const heartbeatEvery = time.Hour

func newFakeMaster(t *testing.T, files tlsFiles) *fakeMaster {
	m := &fakeMaster{
		attempts: make(chan struct{}, 100), regs: make(chan api.AgentRegistration, 100),
		streams: make(chan *fakeStream, 100), updates: make(chan api.StatusUpdate, 10000),
		heartbeats: make(chan api.Heartbeat, 100), seen: map[string]bool{},
		delivered: map[[2]string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/agent/register", m.register)
	mux.HandleFunc("GET /v1/agent/stream", m.stream)
	mux.HandleFunc("POST /v1/agent/updates", m.statusUpdates)
	mux.HandleFunc("POST /v1/agent/heartbeat", m.heartbeat)
	m.srv = httptest.NewUnstartedServer(m.gate(mux))
	m.srv.TLS = files.server(t, pki.RoleMaster)
	m.srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	m.srv.StartTLS()
	t.Cleanup(m.srv.Close)
	return m
}

func (m *fakeMaster) url() string { return m.srv.URL }

func (m *fakeMaster) set(f func(m *fakeMaster)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(m)
}

// gate refuses what the real master refuses, and drops the connection
// while the master is down.
func (m *fakeMaster) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/agent/register" {
			m.attempts <- struct{}{}
		}
		m.mu.Lock()
		down := m.down
		m.mu.Unlock()
		if down {
			panic(http.ErrAbortHandler)
		}
		if role, err := pki.PeerRole(r.TLS); err != nil || role != pki.RoleAgent || r.Header.Get("Authorization") != "Bearer "+agentToken {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(api.Error{Code: "unauthorized", Message: "no"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (m *fakeMaster) register(w http.ResponseWriter, r *http.Request) {
	var reg api.AgentRegistration
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	out := api.Registered{ID: reg.ID, Heartbeat: api.Duration(heartbeatEvery), Kill: m.kill}
	m.kill = nil
	if out.ID == "" {
		m.assigned++
		out.ID = fmt.Sprintf("agent-%d", m.assigned)
	}
	m.mu.Unlock()
	m.regs <- reg
	_ = json.NewEncoder(w).Encode(out)
}

func (m *fakeMaster) stream(w http.ResponseWriter, r *http.Request) {
	s := &fakeStream{msgs: make(chan api.AgentMessage, 16), drop: make(chan struct{})}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	m.streams <- s
	enc := json.NewEncoder(w)
	for {
		select {
		case msg := <-s.msgs:
			_ = enc.Encode(msg)
			w.(http.Flusher).Flush()
		case <-s.drop:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (m *fakeMaster) statusUpdates(w http.ResponseWriter, r *http.Request) {
	var in api.StatusUpdates
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	noAck := m.noAck
	for _, u := range in.Updates {
		m.delivered[[2]string{u.Task, u.State}] = true
	}
	m.mu.Unlock()
	acks := api.Acks{UUIDs: []string{}}
	for _, u := range in.Updates {
		m.updates <- u
		if !noAck {
			acks.UUIDs = append(acks.UUIDs, u.UUID)
		}
	}
	_ = json.NewEncoder(w).Encode(acks)
}

func (m *fakeMaster) heartbeat(w http.ResponseWriter, r *http.Request) {
	var hb api.Heartbeat
	if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m.heartbeats <- hb
	w.WriteHeader(http.StatusNoContent)
}

// received reports whether an update of task to state came.
func (m *fakeMaster) received(task, state string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.delivered[[2]string{task, state}]
}

// next returns the next update the master had not seen (by UUID).
func (m *fakeMaster) next(t *testing.T) api.StatusUpdate {
	t.Helper()
	for {
		u := recv(t, m.updates, "status update")
		if !m.seen[u.UUID] {
			m.seen[u.UUID] = true
			return u
		}
	}
}

// nextOf returns the next new update of task.
func (m *fakeMaster) nextOf(t *testing.T, task string) api.StatusUpdate {
	t.Helper()
	for {
		if u := m.next(t); u.Task == task {
			return u
		}
	}
}

// env is an agent's world: a fake master, fake containers, a fake clock
// and a state dir, which outlive each agent run over them.
type env struct {
	tls        tlsFiles
	master     *fakeMaster
	containers *fakeContainers
	clock      *fakeClock
	stateDir   string
	resources  func(context.Context) (api.NodeResources, error)
	// forgotten receives the tasks whose records the agents delete.
	forgotten chan string
}

func newEnv(t *testing.T) *env {
	files := newTLSFiles(t)
	return &env{
		tls: files, master: newFakeMaster(t, files), containers: newFakeContainers(), clock: newFakeClock(),
		stateDir: filepath.Join(t.TempDir(), "agent"), forgotten: make(chan string, 100),
		resources: func(context.Context) (api.NodeResources, error) {
			return api.NodeResources{CPUs: 4, MemoryBytes: 8 << 30, Ports: []api.PortRange{{Begin: 31000, End: 32000}}}, nil
		},
	}
}

// oneGPU makes the host's resources 4 CPUs and one GPU, and returns a
// function that marks the GPU unhealthy for reason and returns the
// resources then.
func (e *env) oneGPU() func(reason string) api.NodeResources {
	var mu sync.Mutex
	res := api.NodeResources{CPUs: 4, GPUs: []api.GPU{{UUID: "GPU-1"}}}
	snapshot := func() api.NodeResources {
		r := res
		r.GPUs = append([]api.GPU(nil), res.GPUs...)
		return r
	}
	e.resources = func(context.Context) (api.NodeResources, error) {
		mu.Lock()
		defer mu.Unlock()
		return snapshot(), nil
	}
	return func(reason string) api.NodeResources {
		mu.Lock()
		defer mu.Unlock()
		res.GPUs[0].Unhealthy = reason
		return snapshot()
	}
}

// beat lets a heartbeat period pass and returns the heartbeat the master
// got.
func (e *env) beat(t *testing.T) api.Heartbeat {
	t.Helper()
	e.clock.waitTimer(t, heartbeatEvery)
	e.clock.Advance(heartbeatEvery)
	return recv(t, e.master.heartbeats, "heartbeat")
}

func (e *env) config(t *testing.T) Config {
	return Config{
		StateDir: e.stateDir, MasterURL: e.master.url(), TLS: e.tls.client(t, pki.RoleAgent), Token: agentToken,
		ListenAddr: "127.0.0.1:0", ServerTLS: e.tls.server(t, pki.RoleAgent), Hostname: "node1",
		Resources: e.resources, Labels: map[string]string{"zone": "a"}, Containers: e.containers,
		Version: "test", Logger: testLogger(t), Clock: e.clock,
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// waitForgotten waits until an agent deletes the record of task.
func (e *env) waitForgotten(t *testing.T, task string) {
	t.Helper()
	for recv(t, e.forgotten, "task forgotten") != task {
	}
}

// runningAgent is an agent whose Run is under way.
type runningAgent struct {
	*Agent
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
}

// start runs a new agent over e until stop or the test's end.
func (e *env) start(t *testing.T) *runningAgent {
	t.Helper()
	return e.startWith(t, e.config(t))
}

func (e *env) startWith(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.forgotten = func(task string) { e.forgotten <- task }
	ctx, cancel := context.WithCancel(context.Background())
	ra := &runningAgent{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { ra.done <- a.Run(ctx) }()
	t.Cleanup(func() { ra.stop(t) })
	return ra
}

// stop ends Run, as a kill -9 would for what it leaves: the containers.
func (ra *runningAgent) stop(t *testing.T) {
	t.Helper()
	ra.stopped.Do(func() {
		ra.cancel()
		if err := recv(t, ra.done, "end of Run"); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// apiURL is the base URL of the agent's API, once it listens.
func (ra *runningAgent) apiURL() string {
	<-ra.listening
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return "https://" + ra.apiAddr
}

// apiClient is a client of an agent's API with role's certificate; ""
// for none.
func (e *env) apiClient(t *testing.T, role string) *http.Client {
	tr := &http.Transport{TLSClientConfig: e.tls.client(t, role)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get asks the agent's API for path with c, within the guard; it returns
// the status and the whole body.
func (ra *runningAgent) get(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ra.apiURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// connected waits for the agent's registration and stream.
func (e *env) connected(t *testing.T) (api.AgentRegistration, *fakeStream) {
	t.Helper()
	reg := recv(t, e.master.regs, "registration")
	return reg, recv(t, e.master.streams, "stream")
}

func launchOf(task string) *api.TaskLaunch {
	session, _, _ := strings.Cut(task, "/")
	return &api.TaskLaunch{
		Task: task, Session: session, Group: "web",
		Resources: api.TaskResources{CPUs: 0.5, MemoryBytes: 64 << 20, Ports: 1},
		Ports:     []int{31001},
		Container: api.ContainerSpec{Image: "busybox", Command: []string{"sleep", "1000"}},
	}
}
