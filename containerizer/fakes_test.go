package containerizer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// One set of scripted fakes for the containerizer's own tests, after
// Nomad's drivers/mock: a runtime, a provisioner and isolators that write
// every call to a journal and answer it as a script says.
//
// Part of a launch runs in the container's monitor, a process of its own:
// here the monitor is this test binary (see TestMain), which builds the
// same fakes from the same script, so that one journal holds the calls of
// both processes, in order. The fake runtime keeps its state in files, as
// runc does, and its containers are processes of this test binary too
// (fakeInitMain): each waits to be started, as runc's init does, and then
// does what its command says: "wait" until killed, or "exit N".

// errFake is what a fake fails with when its script says "fake".
var errFake = errors.New("fake failure")

// fakeErrors are the errors a script can make a call return, by kind. The
// monitor reports the kinds of errKinds to the launcher: a call in the
// monitor that fails with one of those is seen as it in the launcher.
var fakeErrors = map[string]error{
	"fake":              errFake,
	"invalid":           api.ErrInvalid,
	"not-found":         api.ErrNotFound,
	"unavailable":       api.ErrUnavailable,
	"forbidden":         api.ErrForbidden,
	"command-not-found": api.ErrCommandNotFound,
}

// Roles of the processes that call the fakes.
const (
	roleLauncher = "launcher" // the test, and what it calls: Launch, Recover, Remove...
	roleMonitor  = "monitor"  // a container's monitor
)

// fakeRule scripts the answer to some calls.
type fakeRule struct {
	// Call is the call it answers: "runtime create", "provision",
	// "test/a prepare"...
	Call string `json:"call"`
	// ID limits it to the calls for one container; empty matches any.
	ID string `json:"id,omitempty"`
	// Nth limits it to the n-th of the calls that Call and ID match,
	// counted from 1; 0 matches every one.
	Nth int `json:"nth,omitempty"`
	// Err is the kind of error the call returns (see fakeErrors).
	Err string `json:"err,omitempty"`
	// Limit is the limitation a Watch reports at once.
	Limit api.TerminationReason `json:"limit,omitempty"`
}

// err is the error the rule makes call return; nil for no rule.
func (r *fakeRule) err(call string) error {
	if r == nil || r.Err == "" {
		return nil
	}
	sentinel, ok := fakeErrors[r.Err]
	if !ok {
		panic("fake script: unknown error kind " + r.Err)
	}
	return fmt.Errorf("%s refused by the script: %w", call, sentinel)
}

// fakeIsolatorSpec is one isolator of a script.
type fakeIsolatorSpec struct {
	Name string `json:"name"`
	// Isolates makes it a PidIsolator: the launch then creates and starts
	// the container in two runtime calls, with Isolate in between.
	Isolates bool `json:"isolates,omitempty"`
	// Started makes it a StartedIsolator: it acts once the container runs,
	// which needs no second runtime call.
	Started bool `json:"started,omitempty"`
	// Prepare is what its Prepare answers; it runs in the launcher only.
	Prepare *isolators.PrepareResponse `json:"-"`
}

// fakeHookSpec is one hook of a script.
type fakeHookSpec struct {
	Name string `json:"name"`
	// Adjust is what its CreateContainer answers.
	Adjust *Adjustment `json:"adjust,omitempty"`
}

// fakeScript is what the fakes of one test do, in every process.
type fakeScript struct {
	// Dir holds the journal, the runtime's state and the script itself.
	Dir       string             `json:"dir"`
	Root      string             `json:"root"`
	RunRoot   string             `json:"run_root"`
	Isolators []fakeIsolatorSpec `json:"isolators"`
	Hooks     []fakeHookSpec     `json:"hooks,omitempty"`
	Rules     []fakeRule         `json:"rules,omitempty"`
	// MonitorCrashAt is the crash point at which the monitor exits as if
	// it crashed.
	MonitorCrashAt string `json:"monitor_crash_at,omitempty"`
}

func (s *fakeScript) path() string { return filepath.Join(s.Dir, "script.json") }

// fakeCall is one journal entry.
type fakeCall struct {
	Role string `json:"role"`
	Call string `json:"call"`
	ID   string `json:"id,omitempty"`
}

// fakeCrashCode is how a monitor that crashes on purpose exits.
const fakeCrashCode = 99

// fakes is the state the fakes of one process share.
type fakes struct {
	role string
	mu   sync.Mutex
	s    fakeScript
	// onCall, when set, is called (in the launcher) on each call after
	// it is journaled.
	onCall func(fakeCall)
}

func (f *fakes) script() fakeScript {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

// call journals a call and returns the rule that answers it, or nil.
func (f *fakes) call(call, id string) *fakeRule {
	s := f.script()
	j, err := os.OpenFile(filepath.Join(s.Dir, "journal"), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		panic(err)
	}
	defer j.Close()
	if err := unix.Flock(int(j.Fd()), unix.LOCK_EX); err != nil {
		panic(err)
	}
	before, err := decodeJournal(j)
	if err != nil {
		panic(err)
	}
	entry := fakeCall{Role: f.role, Call: call, ID: id}
	data, _ := json.Marshal(entry)
	if _, err := j.Write(append(data, '\n')); err != nil {
		panic(err)
	}
	_ = unix.Flock(int(j.Fd()), unix.LOCK_UN)
	if f.onCall != nil {
		f.onCall(entry)
	}
	for i := range s.Rules {
		r := &s.Rules[i]
		if r.Call != call || (r.ID != "" && r.ID != id) {
			continue
		}
		if r.Nth == 0 {
			return r
		}
		n := 1 // this call
		for _, c := range before {
			if c.Call == call && (r.ID == "" || r.ID == c.ID) {
				n++
			}
		}
		if n == r.Nth {
			return r
		}
	}
	return nil
}

func decodeJournal(r io.Reader) ([]fakeCall, error) {
	var out []fakeCall
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var c fakeCall
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, sc.Err()
}

// config is a containerizer's configuration on these fakes.
func (f *fakes) config() Config {
	s := f.script()
	var isos []isolators.Isolator
	for _, spec := range s.Isolators {
		iso := &fakeIsolator{fx: f, name: spec.Name, resp: spec.Prepare}
		switch {
		case spec.Started:
			isos = append(isos, &fakeStartedIsolator{iso})
		case spec.Isolates:
			isos = append(isos, &fakePidIsolator{iso})
		default:
			isos = append(isos, iso)
		}
	}
	var hooks []Hook
	for _, h := range s.Hooks {
		hooks = append(hooks, &fakeHook{fx: f, name: h.Name, adj: h.Adjust})
	}
	return Config{
		Root: s.Root, RunRoot: s.RunRoot,
		Runtime: &fakeRuntime{fx: f}, Provisioner: &fakeProvisioner{fx: f}, Isolators: isos, Hooks: hooks,
		MonitorCommand: []string{testBinary(), "-fake-monitor", s.path()},
	}
}

var (
	testBinaryOnce sync.Once
	testBinaryPath string
)

// testBinary is this test binary, which plays the monitor and the
// containers' init processes.
func testBinary() string {
	testBinaryOnce.Do(func() {
		p, err := os.Executable()
		if err != nil {
			panic(err)
		}
		testBinaryPath = p
	})
	return testBinaryPath
}

// fakeRuntime runs containers that are processes of this test binary. Its
// state is a directory per container under the script's Dir: state.json
// and exec.fifo, which the init opens to wait for the start.
type fakeRuntime struct{ fx *fakes }

var (
	_ Runtime        = (*fakeRuntime)(nil)
	_ RuntimeChecker = (*fakeRuntime)(nil)
)

// fakeState is a container's state in the fake runtime.
type fakeState struct {
	Pid     int    `json:"pid"`
	Start   uint64 `json:"start"`
	Started bool   `json:"started"`
}

func (r *fakeRuntime) Name() string { return "fake" }

func (r *fakeRuntime) dir(id string) string { return filepath.Join(r.fx.script().Dir, "runtime", id) }

func (r *fakeRuntime) Check(context.Context) error {
	return r.fx.call("runtime check", "").err("runtime check")
}

func (r *fakeRuntime) Create(ctx context.Context, id, bundle string, opts *CreateOpts) (int, error) {
	if err := r.fx.call("runtime create", id).err("runtime create"); err != nil {
		return 0, err
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return 0, err
	}
	var s oci.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return 0, err
	}
	dir := r.dir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	fifo := filepath.Join(dir, "exec.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return 0, err
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	files := []*os.File{opts.Stdin, opts.Stdout, opts.Stderr}
	for i, f := range files {
		if f == nil {
			files[i] = null
		}
	}
	args := append([]string{testBinary(), "-fake-init", fifo}, s.Process.Args...)
	p, err := os.StartProcess(testBinary(), args, &os.ProcAttr{Files: files})
	if err != nil {
		return 0, err
	}
	pid := p.Pid
	_ = p.Release() // the monitor, its parent, reaps it
	if err := r.save(id, fakeState{Pid: pid, Start: procStartTime(pid)}); err != nil {
		return 0, err
	}
	if opts.PidFile != "" {
		if err := os.WriteFile(opts.PidFile, []byte(strconv.Itoa(pid)), 0o600); err != nil {
			return 0, err
		}
	}
	if opts.Start {
		if err := os.WriteFile(r.fx.startedByCreatePath(id), nil, 0o600); err != nil {
			return 0, err
		}
		return pid, r.release(id)
	}
	return pid, nil
}

// startedByCreatePath marks a container that the runtime's create also
// started (one call, no isolation between create and start).
func (f *fakes) startedByCreatePath(id string) string {
	return filepath.Join(f.script().Dir, "started-by-create-"+id)
}

// startedByCreate reports whether the runtime's create of container id also
// started it.
func (f *fakes) startedByCreate(t *testing.T, id string) bool {
	t.Helper()
	_, err := os.Stat(f.startedByCreatePath(id))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func (r *fakeRuntime) save(id string, st fakeState) error {
	data, _ := json.Marshal(st)
	return atomicfile.Write(filepath.Join(r.dir(id), "state.json"), data, 0o600, false)
}

func (r *fakeRuntime) load(id string) (*fakeState, error) {
	data, err := os.ReadFile(filepath.Join(r.dir(id), "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w", id, api.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var st fakeState
	return &st, json.Unmarshal(data, &st)
}

func (st *fakeState) alive() bool { return st.Start != 0 && procStartTime(st.Pid) == st.Start }

// release lets a created container's init run: it waits on the other end
// of exec.fifo, as runc's does.
func (r *fakeRuntime) release(id string) error {
	st, err := r.load(id)
	if err != nil {
		return err
	}
	if err := awaitFifo(filepath.Join(r.dir(id), "exec.fifo"), st.Pid); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	st.Started = true
	return r.save(id, *st)
}

func (r *fakeRuntime) Start(_ context.Context, id string) error {
	if err := r.fx.call("runtime start", id).err("runtime start"); err != nil {
		return err
	}
	return r.release(id)
}

func (r *fakeRuntime) State(_ context.Context, id string) (*RuntimeState, error) {
	if err := r.fx.call("runtime state", id).err("runtime state"); err != nil {
		return nil, err
	}
	st, err := r.load(id)
	if err != nil {
		return nil, err
	}
	status := "created"
	switch {
	case !st.alive():
		status = "stopped"
	case st.Started:
		status = "running"
	}
	return &RuntimeState{ID: id, Pid: st.Pid, Status: status}, nil
}

func (r *fakeRuntime) Kill(_ context.Context, id string, sig syscall.Signal, _ bool) error {
	if err := r.fx.call("runtime kill", id).err("runtime kill"); err != nil {
		return err
	}
	st, err := r.load(id)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.alive() {
		return syscall.Kill(st.Pid, sig)
	}
	return nil
}

func (r *fakeRuntime) Delete(_ context.Context, id string, force bool) error {
	if err := r.fx.call("runtime delete", id).err("runtime delete"); err != nil {
		return err
	}
	st, err := r.load(id)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.alive() {
		if !force {
			return fmt.Errorf("container %s is running: %w", id, api.ErrWrongState)
		}
		_ = syscall.Kill(st.Pid, syscall.SIGKILL)
		waitGone(st.Pid, st.Start, 10*time.Second)
	}
	return os.RemoveAll(r.dir(id))
}

// fakeProvisioner makes an empty root filesystem in the container's
// directory.
type fakeProvisioner struct{ fx *fakes }

var (
	_ Provisioner = (*fakeProvisioner)(nil)
	_ Unmounter   = (*fakeProvisioner)(nil)
)

// containerOf is the container ID of a root filesystem's directory
// (.../<id>/fs).
func containerOf(dir string) string { return filepath.Base(filepath.Dir(dir)) }

func (p *fakeProvisioner) Provision(_ context.Context, req *ProvisionRequest) (*Rootfs, error) {
	if err := p.fx.call("provision", req.ContainerID).err("provision"); err != nil {
		return nil, err
	}
	root := filepath.Join(req.Dir, "rootfs")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return &Rootfs{Path: root, Readonly: true}, nil
}

func (p *fakeProvisioner) Release(_ context.Context, dir string) error {
	if err := p.fx.call("release", containerOf(dir)).err("release"); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

func (p *fakeProvisioner) Unmount(_ context.Context, dir string) error {
	return p.fx.call("unmount", containerOf(dir)).err("unmount")
}

// fakeIsolator has every capability but PidIsolator; its calls are named
// after it ("test/a prepare").
type fakeIsolator struct {
	fx   *fakes
	name string
	resp *isolators.PrepareResponse
}

var (
	_ isolators.Preparer        = (*fakeIsolator)(nil)
	_ isolators.Watcher         = (*fakeIsolator)(nil)
	_ isolators.Updater         = (*fakeIsolator)(nil)
	_ isolators.UsageReporter   = (*fakeIsolator)(nil)
	_ isolators.StatusReporter  = (*fakeIsolator)(nil)
	_ isolators.Cleaner         = (*fakeIsolator)(nil)
	_ isolators.Recoverer       = (*fakeIsolator)(nil)
	_ isolators.PidIsolator     = (*fakePidIsolator)(nil)
	_ isolators.StartedIsolator = (*fakeStartedIsolator)(nil)
)

func (f *fakeIsolator) Name() string { return f.name }

func (f *fakeIsolator) do(op, id string) *fakeRule { return f.fx.call(f.name+" "+op, id) }

func (f *fakeIsolator) Prepare(_ context.Context, req *isolators.PrepareRequest, resp *isolators.PrepareResponse) error {
	if err := f.do("prepare", req.ContainerID).err(f.name + " prepare"); err != nil {
		return err
	}
	if f.resp != nil {
		*resp = *f.resp
	}
	return nil
}

func (f *fakeIsolator) Watch(ctx context.Context, req *isolators.WatchRequest) (*isolators.Limitation, error) {
	r := f.do("watch", req.ContainerID)
	if err := r.err(f.name + " watch"); err != nil {
		return nil, err
	}
	if r != nil && r.Limit != "" {
		return &isolators.Limitation{Reason: r.Limit, Message: "scripted limitation of " + f.name}, nil
	}
	<-ctx.Done()
	return nil, nil
}

func (f *fakeIsolator) Update(_ context.Context, req *isolators.UpdateRequest) error {
	return f.do("update", req.ContainerID).err(f.name + " update")
}

func (f *fakeIsolator) Usage(_ context.Context, req *isolators.UsageRequest, u *api.Usage) error {
	if err := f.do("usage", req.ContainerID).err(f.name + " usage"); err != nil {
		return err
	}
	u.Pids++
	return nil
}

func (f *fakeIsolator) Status(_ context.Context, req *isolators.StatusRequest, resp *isolators.StatusResponse) error {
	if err := f.do("status", req.ContainerID).err(f.name + " status"); err != nil {
		return err
	}
	resp.Networks = append(resp.Networks, api.NetworkStatus{Name: f.name})
	return nil
}

func (f *fakeIsolator) Cleanup(_ context.Context, req *isolators.CleanupRequest) error {
	return f.do("cleanup", req.ContainerID).err(f.name + " cleanup")
}

func (f *fakeIsolator) Recover(_ context.Context, req *isolators.RecoverRequest) error {
	return f.do("recover", "").err(f.name + " recover")
}

// fakePidIsolator is a fakeIsolator that is also a PidIsolator.
type fakePidIsolator struct{ *fakeIsolator }

func (f *fakePidIsolator) Isolate(_ context.Context, req *isolators.IsolateRequest) error {
	return f.do("isolate", req.ContainerID).err(f.name + " isolate")
}

// fakeHook is a hook at every point: it journals each call ("NAME
// create", "NAME poststart", and "NAME poststop exit N usage BOOL" in the
// monitor), answers CreateContainer with its adjustment, and fails where
// the script says.
type fakeHook struct {
	fx   *fakes
	name string
	adj  *Adjustment
}

var (
	_ CreateHook  = (*fakeHook)(nil)
	_ StartedHook = (*fakeHook)(nil)
	_ StoppedHook = (*fakeHook)(nil)
	_ RemovedHook = (*fakeHook)(nil)
	_ UpdateHook  = (*fakeHook)(nil)
)

func (h *fakeHook) Name() string { return h.name }

func (h *fakeHook) CreateContainer(_ context.Context, req *CreateRequest) (*Adjustment, error) {
	if err := h.fx.call(h.name+" create", req.Container.ID).err(h.name + " create"); err != nil {
		return nil, err
	}
	return h.adj, nil
}

func (h *fakeHook) PostStart(_ context.Context, c *HookContainer) error {
	return h.fx.call(h.name+" poststart", c.ID).err(h.name + " poststart")
}

func (h *fakeHook) UpdateContainer(_ context.Context, c *HookContainer, res api.Resources) error {
	return h.fx.call(fmt.Sprintf("%s update %v", h.name, res.CPUs), c.ID).err(h.name + " update")
}

func (h *fakeHook) PostUpdateContainer(_ context.Context, c *HookContainer, res api.Resources) {
	h.fx.call(fmt.Sprintf("%s updated %v", h.name, res.CPUs), c.ID)
}

func (h *fakeHook) Removed(_ context.Context, c *HookContainer) {
	h.fx.call(h.name+" removed", c.ID)
}

func (h *fakeHook) PostStop(_ context.Context, c *HookContainer, t *api.Termination, u *api.Usage) {
	h.fx.call(fmt.Sprintf("%s poststop exit %d usage %v", h.name, t.ExitCode, u != nil), c.ID)
}

// fakeStartedIsolator is a fakeIsolator that is also a StartedIsolator.
type fakeStartedIsolator struct{ *fakeIsolator }

func (f *fakeStartedIsolator) Started(_ context.Context, req *isolators.IsolateRequest) error {
	return f.do("started", req.ContainerID).err(f.name + " started")
}

// fakeEnv is a containerizer on the fakes, in temporary directories.
type fakeEnv struct {
	t  *testing.T
	c  *Containerizer
	fx *fakes
}

// defaultIsolators is what a script without isolators gets.
var defaultIsolators = []fakeIsolatorSpec{{Name: "test/fake"}}

// newFakeEnv makes a containerizer on fakes that follow s (its Dir, Root
// and RunRoot are filled in), with cfg's other fields. Every process the
// fakes start is killed when the test ends.
func newFakeEnv(t *testing.T, s fakeScript, cfg ...Config) *fakeEnv {
	t.Helper()
	requireSelfExec(t)
	dir := t.TempDir()
	s.Dir = filepath.Join(dir, "fakes")
	s.Root, s.RunRoot = filepath.Join(dir, "lib"), filepath.Join(dir, "run")
	if s.Isolators == nil {
		s.Isolators = defaultIsolators
	}
	mustDo(t, os.MkdirAll(s.Dir, 0o700))
	e := &fakeEnv{t: t, fx: &fakes{role: roleLauncher, s: s}}
	e.writeScript()
	t.Cleanup(e.killAll)
	var tune Config
	if len(cfg) > 0 {
		tune = cfg[0]
	}
	e.c = e.open(tune)
	return e
}

// open makes another containerizer over the same directories and fakes,
// as a new process would.
func (e *fakeEnv) open(tune Config) *Containerizer {
	e.t.Helper()
	cfg := e.fx.config()
	cfg.SeccompAllow, cfg.Logger, cfg.CrashPoint = tune.SeccompAllow, tune.Logger, tune.CrashPoint
	if tune.MonitorCommand != nil {
		cfg.MonitorCommand = tune.MonitorCommand
	}
	cfg.PrepareMonitor = tune.PrepareMonitor
	c, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *fakeEnv) writeScript() {
	e.t.Helper()
	s := e.fx.script()
	data, err := json.Marshal(s)
	mustDo(e.t, err)
	mustDo(e.t, os.WriteFile(s.path(), data, 0o600))
}

// setRules replaces the script's rules, in this process and in the
// monitors started from now on.
func (e *fakeEnv) setRules(rules ...fakeRule) {
	e.t.Helper()
	e.fx.mu.Lock()
	e.fx.s.Rules = rules
	e.fx.mu.Unlock()
	e.writeScript()
}

// journal returns every call so far.
func (e *fakeEnv) journal() []fakeCall {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.fx.script().Dir, "journal"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	mustDo(e.t, err)
	defer f.Close()
	calls, err := decodeJournal(f)
	mustDo(e.t, err)
	return calls
}

// mark returns the journal's length, for since.
func (e *fakeEnv) mark() int { return len(e.journal()) }

// since returns the calls a role made after mark, by name: the watches
// of a monitor, which its goroutines make in any order, are left out (see
// watches).
func (e *fakeEnv) since(mark int, role string) []string {
	var out []string
	for _, c := range e.journal()[mark:] {
		if c.Role == role && !strings.HasSuffix(c.Call, " watch") {
			out = append(out, c.Call)
		}
	}
	return out
}

// watches returns, sorted, the watches monitors started after mark.
func (e *fakeEnv) watches(mark int) []string {
	var out []string
	for _, c := range e.journal()[mark:] {
		if strings.HasSuffix(c.Call, " watch") {
			out = append(out, c.Call)
		}
	}
	sort.Strings(out)
	return out
}

// ids returns the container IDs of the calls named call, in order.
func (e *fakeEnv) ids(call string) []string {
	var out []string
	for _, c := range e.journal() {
		if c.Call == call {
			out = append(out, c.ID)
		}
	}
	return out
}

// count is how many calls named call were made.
func (e *fakeEnv) count(call string) int { return len(e.ids(call)) }

// processes lists the live processes of this test's fakes: its monitors
// and their containers' inits, whose arguments name the fakes' directory.
func (e *fakeEnv) processes() []fakeProcess { return fakeProcesses(e.fx.script().Dir) }

// fakeProcess is a process, named across pid reuse.
type fakeProcess struct {
	pid   int
	start uint64
}

// killAll kills whatever the fakes started and is still alive.
func (e *fakeEnv) killAll() {
	for _, p := range e.processes() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		waitGone(p.pid, p.start, 10*time.Second)
	}
}

// awaitProcesses waits for the fakes' processes to exit by themselves,
// for a while: a monitor whose launch crashed before it wrote the bundle
// exits once it finds its control pipe closed.
func (e *fakeEnv) awaitProcesses() {
	for _, p := range e.processes() {
		waitGone(p.pid, p.start, 10*time.Second)
	}
}

// left lists what is left of containers: their directories, ledger
// entries, trash, the fake runtime's state and live processes.
func (e *fakeEnv) left() []string {
	e.t.Helper()
	var out []string
	s := e.fx.script()
	for _, dir := range []string{filepath.Join(s.Root, "containers"), filepath.Join(s.Root, "owned"), filepath.Join(s.Root, "trash"), filepath.Join(s.Dir, "runtime")} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			e.t.Fatal(err)
		}
		for _, de := range entries {
			rel, _ := filepath.Rel(filepath.Dir(dir), filepath.Join(dir, de.Name()))
			out = append(out, rel)
		}
	}
	for _, p := range e.processes() {
		out = append(out, fmt.Sprintf("process %d", p.pid))
	}
	return out
}

// plant makes the files (path: content) under the work dir, with their
// directories.
func (e *fakeEnv) plant(t *testing.T, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(e.c.cfg.Root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// tree lists every file under the work dir's dir, relative to the work
// dir, sorted.
func (e *fakeEnv) tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := e.c.cfg.Root
	err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// entries lists what a directory of the work dir holds.
func entries(t *testing.T, c *Containerizer, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(c.cfg.Root, dir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// fakeMonitorMain is the body of a monitor started by a test: args are
// the script's path and the container's ID.
func fakeMonitorMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "fake monitor: want a script and an ID")
		return 2
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fx := &fakes{role: roleMonitor}
	if err := json.Unmarshal(data, &fx.s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := fx.config()
	cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	crashAt := fx.s.MonitorCrashAt
	cfg.CrashPoint = func(step string) {
		if step == crashAt {
			os.Exit(fakeCrashCode)
		}
	}
	c, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	syncFD, err1 := strconv.Atoi(os.Getenv("CAISSON_MONITOR_SYNC_FD"))
	controlFD, err2 := strconv.Atoi(os.Getenv("CAISSON_MONITOR_CONTROL_FD"))
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := c.Monitor(context.Background(), args[1], os.NewFile(uintptr(syncFD), "sync"), os.NewFile(uintptr(controlFD), "control")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// fakeInitMain is the body of a fake container's init: args are its
// exec.fifo and its command. It waits until the runtime starts it, as
// runc's init does, and then does what the command says.
func fakeInitMain(args []string) int {
	if len(args) < 2 {
		return 120
	}
	f, err := os.OpenFile(args[0], os.O_WRONLY, 0)
	if err != nil {
		return 121
	}
	_, err = f.Write([]byte{0})
	_ = f.Close()
	if err != nil {
		return 122
	}
	switch args[1] {
	case "exit":
		if len(args) == 3 {
			if n, err := strconv.Atoi(args[2]); err == nil {
				return n
			}
		}
	case "wait":
		// Until a signal kills it. SIGUSR1, which nobody sends, keeps the
		// runtime from taking the wait for a deadlock.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1)
		<-ch
		return 0
	}
	return 127
}
