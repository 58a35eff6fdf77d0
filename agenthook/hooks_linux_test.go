package agenthook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/internal/testutil"
)

// script writes an executable shell script with body and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// newHooks readies cfg's hooks, with a cgroup directory of their own when
// the test runs as root on a host with cgroup v2 (removed at the end).
func newHooks(t *testing.T, cfg Config) *Hooks {
	t.Helper()
	if os.Geteuid() == 0 && cfg.CgroupDir == "" {
		parent := fmt.Sprintf("/caisson-test-hooks-%08x", rand.Uint32())
		if dir := CgroupDir(parent); dir != "" {
			cfg.CgroupDir = dir
			t.Cleanup(func() {
				for _, d := range []string{dir, filepath.Dir(dir)} {
					if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
						t.Errorf("remove %s: %v", d, err)
					}
				}
			})
		}
	}
	cfg.Logger = testutil.Logger(t)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// createHook is the one CreateHook of h.
func createHook(t *testing.T, h *Hooks) containerizer.CreateHook {
	t.Helper()
	for _, c := range h.Container() {
		if ch, ok := c.(containerizer.CreateHook); ok {
			return ch
		}
	}
	t.Fatal("no create hook")
	return nil
}

// gone reports whether the process whose pid is in file has exited.
func gone(t *testing.T, file string) bool {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// A zombie is gone too: its parent (init) has not reaped it yet.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] == "Z"
}

// A pre-launch hook reads the container and its spec, and its answer
// becomes the adjustment; its environment holds the point and its name.
func TestPreLaunchDecorates(t *testing.T) {
	dir := t.TempDir()
	path := script(t, `cat > `+dir+`/request.json
echo "$CAISSON_HOOK_POINT $CAISSON_HOOK_NAME $EXTRA" > `+dir+`/env
echo '{"env": {"RACK": "r12"}, "labels": {"team": "ml"}, "annotations": {"example.com/a": "1"},
       "mounts": [{"source": "/srv", "destination": "/srv", "type": "bind", "options": ["rbind", "ro"]}]}'`)
	h := newHooks(t, Config{Exec: []ExecHook{{Name: "rack", Point: PointPreLaunch, Path: path, Env: []string{"EXTRA=x"}}}})
	c := &containerizer.HookContainer{ID: "c1", Name: "web", Labels: map[string]string{"app": "web"},
		Task: &api.TaskLaunch{Task: "s/g/1"}}
	spec := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}}
	adj, err := createHook(t, h).CreateContainer(context.Background(), &containerizer.CreateRequest{Container: c, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	want := &containerizer.Adjustment{
		Env: map[string]string{"RACK": "r12"}, Labels: map[string]string{"team": "ml"},
		Annotations: map[string]string{"example.com/a": "1"},
		Mounts:      []specs.Mount{{Source: "/srv", Destination: "/srv", Type: "bind", Options: []string{"rbind", "ro"}}},
	}
	if diff := cmp.Diff(want, adj); diff != "" {
		t.Errorf("adjustment (-want +got):\n%s", diff)
	}
	var req Request
	data, err := os.ReadFile(filepath.Join(dir, "request.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &req); err != nil {
		t.Fatalf("request %s: %v", data, err)
	}
	if req.Point != PointPreLaunch || req.Container == nil || req.Container.ID != "c1" || req.Container.Task == nil ||
		req.Container.Task.Task != "s/g/1" || req.Spec == nil || req.Spec.Process.Args[0] != "sh" {
		t.Errorf("request: %s", data)
	}
	if env, _ := os.ReadFile(filepath.Join(dir, "env")); strings.TrimSpace(string(env)) != "pre-launch rack x" {
		t.Errorf("hook environment: %q", env)
	}
}

// A veto refuses the launch with its reason, under either policy.
func TestPreLaunchVeto(t *testing.T) {
	for _, policy := range []string{PolicyFail, PolicyIgnore} {
		path := script(t, `echo '{"veto": "no launches on this rack today"}'`)
		h := newHooks(t, Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: path, OnFailure: policy}}})
		_, err := createHook(t, h).CreateContainer(context.Background(), &containerizer.CreateRequest{Container: &containerizer.HookContainer{ID: "c"}, Spec: &specs.Spec{}})
		if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "no launches on this rack today") {
			t.Errorf("policy %s: veto = %v, want an error wrapping api.ErrForbidden with the reason", policy, err)
		}
	}
}

// A hook that fails (an exit status, garbage, output too long, a
// timeout) fails under PolicyFail, saying why, and is ignored under
// PolicyIgnore.
func TestExecHookFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		hook    ExecHook
		message string
	}{
		{name: "exit status", body: `echo "the licence server is down" >&2; exit 3`, message: "exit status 3: the licence server is down"},
		{name: "garbage", body: `echo 'this is not json'`, message: "not the answer it may give"},
		{name: "unknown field", body: `echo '{"evn": {"A": "1"}}'`, message: "unknown field"},
		{name: "two values", body: `echo '{} {}'`, message: "more than one JSON value"},
		{name: "too long", body: `head -c 5000 /dev/zero`, hook: ExecHook{MaxOutput: 1000}, message: "over 1000 bytes"},
		{name: "timeout", body: `exec sleep 1000`, hook: ExecHook{Timeout: 200 * time.Millisecond}, message: "timed out after 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, policy := range []string{PolicyFail, PolicyIgnore} {
				hook := tc.hook
				hook.Point, hook.Path, hook.OnFailure = PointPreLaunch, script(t, tc.body), policy
				h := newHooks(t, Config{Exec: []ExecHook{hook}})
				adj, err := createHook(t, h).CreateContainer(context.Background(), &containerizer.CreateRequest{Container: &containerizer.HookContainer{ID: "c"}, Spec: &specs.Spec{}})
				if policy == PolicyIgnore {
					if err != nil || adj != nil {
						t.Errorf("ignored: adjustment %+v, error %v; want neither", adj, err)
					}
					continue
				}
				if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), "pre-launch hook") {
					t.Errorf("error %v, want one wrapping api.ErrUnavailable that says %q", err, tc.message)
				}
			}
		})
	}
}

// Nothing a hook starts outlives it: not what it left in the background,
// not what it hid in a new session (with a cgroup v2 hierarchy), not what
// it left running when it timed out; a daemon that keeps the hook's
// output open does not hold the launch up.
func TestExecHookLeavesNothing(t *testing.T) {
	testutil.RequiresRoot(t)
	if CgroupDir("/x") == "" {
		t.Fatal("this host has no cgroup v2 hierarchy, not even a hybrid one: exec hooks cannot be jailed")
	}
	for _, tc := range []struct {
		name, body string
		timeout    time.Duration
	}{
		{name: "background", body: `sleep 1000 & echo $! > $DIR/pid; echo '{}'`},
		{name: "keeps the output open", body: `sh -c 'echo $$ > $DIR/pid; exec sleep 1000' &
while ! test -s $DIR/pid; do :; done; echo '{}'`},
		{name: "new session", body: `setsid sh -c 'echo $$ > $DIR/pid; exec sleep 1000' </dev/null >/dev/null 2>&1 &
while ! test -s $DIR/pid; do :; done; echo '{}'`},
		{name: "timed out", body: `sleep 1000 & echo $! > $DIR/pid; exec sleep 1000`, timeout: 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHooks(t, Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: script(t, tc.body), Env: []string{"DIR=" + dir}, Timeout: tc.timeout}}})
			_, err := createHook(t, h).CreateContainer(context.Background(), &containerizer.CreateRequest{Container: &containerizer.HookContainer{ID: "c"}, Spec: &specs.Spec{}})
			if (err != nil) != (tc.timeout > 0) {
				t.Fatalf("error %v", err)
			}
			if !gone(t, filepath.Join(dir, "pid")) {
				t.Errorf("what the hook started still runs")
			}
			if _, err := os.Stat(h.run.jail.dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the hooks' cgroup directory is left, or cannot be read: %v", err)
			}
		})
	}
}

// The post-launch hook is told the container; with PolicyFail its failure
// fails the launch. The post-stop hook is told the exit and the usage;
// its failure is only logged.
func TestPostHooks(t *testing.T) {
	dir := t.TempDir()
	post := script(t, `cat > $DIR/$CAISSON_HOOK_POINT.json; test ! -e $DIR/fail`)
	h := newHooks(t, Config{Exec: []ExecHook{
		{Point: PointPostLaunch, Path: post, Env: []string{"DIR=" + dir}},
		{Point: PointPostStop, Path: post, Env: []string{"DIR=" + dir}},
	}})
	var started containerizer.StartedHook
	var stopped containerizer.StoppedHook
	for _, c := range h.Container() {
		if s, ok := c.(containerizer.StartedHook); ok {
			started = s
		}
		if s, ok := c.(containerizer.StoppedHook); ok {
			stopped = s
		}
	}
	ctx := context.Background()
	c := &containerizer.HookContainer{ID: "c", Pid: 42}
	if err := started.PostStart(ctx, c); err != nil {
		t.Fatal(err)
	}
	stopped.PostStop(ctx, c, &api.Termination{ExitCode: 137, Reason: api.ReasonOOM}, &api.Usage{CPUUsageNanos: 7})
	var req Request
	for point, check := range map[string]func() bool{
		PointPostLaunch: func() bool { return req.Container.Pid == 42 },
		PointPostStop: func() bool {
			return req.Termination != nil && req.Termination.ExitCode == 137 && req.Termination.Reason == api.ReasonOOM &&
				req.Usage != nil && req.Usage.CPUUsageNanos == 7
		},
	} {
		data, err := os.ReadFile(filepath.Join(dir, point+".json"))
		if err != nil {
			t.Fatal(err)
		}
		req = Request{}
		if err := json.Unmarshal(data, &req); err != nil || req.Point != point || req.Container == nil || !check() {
			t.Errorf("%s request: %s (%v)", point, data, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "fail"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := started.PostStart(ctx, c); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("failing post-launch hook: %v, want an error wrapping api.ErrUnavailable", err)
	}
	stopped.PostStop(ctx, c, &api.Termination{}, nil) // logged only
}

// Agent-register hooks add labels and set resources, each seeing what
// those before it changed; a bad answer or a failure is an error naming
// the hook. Agent-start hooks fail the start under PolicyFail.
func TestAgentHooks(t *testing.T) {
	ctx := context.Background()
	rack := script(t, `echo '{"labels": {"rack": "r12"}, "resources": {"cpus": 6, "ports": [{"begin": 31000, "end": 31009}]}}'`)
	licences := script(t, `grep -q '"rack":"r12"' && echo '{"labels": {"licences": "4"}}'`)
	h := newHooks(t, Config{Exec: []ExecHook{
		{Name: "rack", Point: PointAgentRegister, Path: rack},
		{Name: "licences", Point: PointAgentRegister, Path: licences},
	}})
	if !h.Has(PointAgentRegister) || h.Has(PointAgentStart) {
		t.Fatal("Has is wrong about the configured points")
	}
	reg := &api.AgentRegistration{Hostname: "n1", Labels: map[string]string{"zone": "a"},
		Resources: api.NodeResources{CPUs: 8, MemoryBytes: 1 << 30, Ports: []api.PortRange{{Begin: 1, End: 2}}}}
	if err := h.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	want := &api.AgentRegistration{Hostname: "n1", Labels: map[string]string{"zone": "a", "rack": "r12", "licences": "4"},
		Resources: api.NodeResources{CPUs: 6, MemoryBytes: 1 << 30, Ports: []api.PortRange{{Begin: 31000, End: 31009}}}}
	if diff := cmp.Diff(want, reg); diff != "" {
		t.Errorf("registration (-want +got):\n%s", diff)
	}

	bad := newHooks(t, Config{Exec: []ExecHook{{Name: "bad", Point: PointAgentRegister, Path: script(t, `echo '{"resources": {"cpus": -1}}'`)}}})
	reg = &api.AgentRegistration{Resources: api.NodeResources{CPUs: 8}}
	if err := bad.Register(ctx, reg); !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "hook bad") || reg.Resources.CPUs != 8 {
		t.Errorf("bad answer: %v, cpus %v", err, reg.Resources.CPUs)
	}

	start := newHooks(t, Config{Exec: []ExecHook{{Name: "mounted", Point: PointAgentStart, Path: script(t, `echo "/data is not mounted" >&2; exit 1`)}}})
	if err := start.AgentStart(ctx, &api.AgentRegistration{}); !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "hook mounted") ||
		!strings.Contains(err.Error(), "/data is not mounted") {
		t.Errorf("failing agent-start hook: %v", err)
	}
}

// The OCI hooks become one hook that adds them to every spec, at their
// stages, in order.
func TestOCIHooks(t *testing.T) {
	path := script(t, `true`)
	h := newHooks(t, Config{OCI: []OCIHook{
		{Stage: "createRuntime", Path: path, Args: []string{"a"}, Timeout: 5},
		{Stage: "poststop", Path: path, Env: []string{"X=1"}},
		{Stage: "createRuntime", Path: path},
	}})
	adj, err := createHook(t, h).CreateContainer(context.Background(), &containerizer.CreateRequest{Container: &containerizer.HookContainer{ID: "c"}, Spec: &specs.Spec{}})
	if err != nil {
		t.Fatal(err)
	}
	five := 5
	want := &specs.Hooks{
		CreateRuntime: []specs.Hook{{Path: path, Args: []string{path, "a"}, Timeout: &five}, {Path: path, Args: []string{path}}},
		Poststop:      []specs.Hook{{Path: path, Args: []string{path}, Env: []string{"X=1"}}},
	}
	if diff := cmp.Diff(want, adj.OCIHooks); diff != "" {
		t.Errorf("OCI hooks (-want +got):\n%s", diff)
	}
}

// Bad configuration is refused, naming the hook's field.
func TestConfigValidate(t *testing.T) {
	exe := script(t, `true`)
	notExe := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Exec: []ExecHook{{Point: "pre-start", Path: exe}}}, "exec[0].point"},
		{Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: "/no/such/hook"}}}, "exec[0].path"},
		{Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: "hook"}}}, "exec[0].path"},
		{Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: exe}, {Point: PointPreLaunch, Path: notExe}}}, "exec[1].path"},
		{Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: exe, Timeout: time.Millisecond}}}, "exec[0].timeout"},
		{Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: exe, OnFailure: "retry"}}}, "exec[0].on_failure"},
		{Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: exe, Env: []string{"NOVALUE"}}}}, "exec[0].env"},
		{Config{Exec: []ExecHook{{Point: PointPreLaunch, Path: exe, MaxOutput: -1}}}, "exec[0].max_output"},
		{Config{OCI: []OCIHook{{Stage: "prestop", Path: exe}}}, "oci[0].stage"},
		{Config{OCI: []OCIHook{{Stage: "poststop", Path: "/no/such/hook"}}}, "oci[0].path"},
		{Config{OCI: []OCIHook{{Stage: "poststop", Path: exe, Timeout: -1}}}, "oci[0].timeout"},
	} {
		err := tc.cfg.Validate()
		var fe *api.FieldError
		if !errors.Is(err, api.ErrInvalid) || !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error of field %s", tc.cfg, err, tc.field)
		}
	}
	ok := Config{Exec: []ExecHook{{Point: PointPostStop, Path: exe}}, OCI: []OCIHook{{Stage: "startContainer", Path: "/in/the/container"}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	if _, err := New(Config{Exec: []ExecHook{{Point: "x", Path: exe}}}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("New with a bad hook: %v", err)
	}
}
