package runc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

// Defaults for Config.
const (
	DefaultCommand       = "runc"
	DefaultTimeout       = 30 * time.Second
	DefaultCreateTimeout = 2 * time.Minute
)

// Config says which runtime to run and how.
type Config struct {
	// Command is the runtime binary, a path or a name looked up in $PATH:
	// "runc" (the default) or "crun".
	Command string
	// Root is the runtime's state directory (--root), e.g. /run/caisson/runc.
	// Empty leaves the runtime's own default.
	Root string
	// Timeout bounds each call; zero means DefaultTimeout.
	Timeout time.Duration
	// CreateTimeout bounds Create, which mounts and may pull in hooks; zero
	// means DefaultCreateTimeout.
	CreateTimeout time.Duration
	// CleanupTimeout bounds Kill and Delete, which undo and stop; zero
	// means the longer of Timeout and DefaultTimeout, so that a Timeout too
	// short for the runtime does not also keep it from cleaning up after
	// the failure it caused.
	CleanupTimeout time.Duration
	// Logger receives a debug line per call and the runtime's warnings; nil
	// discards them. The caller scopes it (With("runtime", ...)).
	Logger *slog.Logger
}

// Runtime runs an OCI runtime binary. It holds no state beyond its
// configuration and is safe for concurrent use.
type Runtime struct {
	command        string
	name           string
	root           string
	timeout        time.Duration
	createTimeout  time.Duration
	cleanupTimeout time.Duration
	logger         *slog.Logger
	// wrap, when set, runs the runtime through another command (see
	// hybridWrapper).
	wrap []string
}

var (
	_ containerizer.Runtime        = (*Runtime)(nil)
	_ containerizer.RuntimeChecker = (*Runtime)(nil)
)

// New returns a Runtime for cfg, with defaults filled in. It does not look for
// the binary: a missing one shows as api.ErrUnavailable on the first call (see
// Version for a check at startup).
func New(cfg Config) *Runtime {
	r := &Runtime{
		command:        cfg.Command,
		root:           cfg.Root,
		timeout:        cfg.Timeout,
		createTimeout:  cfg.CreateTimeout,
		cleanupTimeout: cfg.CleanupTimeout,
		logger:         cfg.Logger,
	}
	if r.command == "" {
		r.command = DefaultCommand
	}
	r.name = filepath.Base(r.command)
	if r.name == "crun" {
		r.wrap = hybridWrapper()
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.createTimeout <= 0 {
		r.createTimeout = DefaultCreateTimeout
	}
	if r.cleanupTimeout <= 0 {
		r.cleanupTimeout = max(r.timeout, DefaultTimeout)
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// Name returns the base name of the runtime binary ("runc", "crun").
func (r *Runtime) Name() string { return r.name }

// Check reports whether the runtime binary can be run: that it exists (a
// path, or a name found in $PATH) and is an executable file. A launch
// checks before it makes anything; the error wraps api.ErrUnavailable.
func (r *Runtime) Check(context.Context) error {
	path, err := exec.LookPath(r.command)
	if err != nil {
		return fmt.Errorf("OCI runtime %q: %w: %w", r.command, err, api.ErrUnavailable)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("OCI runtime %q: %w: %w", r.command, err, api.ErrUnavailable)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("OCI runtime %q: %s is not a regular file: %w", r.command, path, api.ErrUnavailable)
	}
	return nil
}

// known reports whether the runtime may hold state for id: its state
// directory, <root>/<id>, exists. Without a root, it may.
func (r *Runtime) known(id string) bool {
	if r.root == "" {
		return true
	}
	_, err := os.Lstat(filepath.Join(r.root, id))
	return !errors.Is(err, fs.ErrNotExist)
}

// Version returns the runtime's version, such as "1.1.5+ds1" for runc or
// "1.8.1" for crun: the first line of "--version" without "<name> version ".
func (r *Runtime) Version(ctx context.Context) (string, error) {
	out, err := r.invoke(ctx, invocation{sub: "version", args: []string{"--version"}, bare: true})
	if err != nil {
		return "", r.fail("version", err, nil)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line = strings.TrimSpace(line)
	if _, v, ok := strings.Cut(line, " version "); ok {
		return strings.TrimSpace(v), nil
	}
	if line == "" {
		return "", fmt.Errorf("%s --version: empty output", r.name)
	}
	return line, nil
}

// Create creates container id from the OCI bundle directory and returns the
// pid of its init process, which waits for Start. The container's standard
// streams are opts.Stdin, Stdout and Stderr (nil: /dev/null); the runtime
// hands them to the container, and its own error messages on stderr go there
// too. On error, the caller should Delete(force) the id: a create that timed
// out or failed late may have left state behind.
func (r *Runtime) Create(ctx context.Context, id, bundle string, opts *containerizer.CreateOpts) (int, error) {
	if err := checkID(id); err != nil {
		return 0, fmt.Errorf("%s create: %w", r.name, err)
	}
	if opts == nil {
		opts = &containerizer.CreateOpts{}
	}
	pidFile := opts.PidFile
	if pidFile == "" {
		f, err := os.CreateTemp("", "caisson-"+r.name+"-*.pid")
		if err != nil {
			return 0, fmt.Errorf("%s create: pid file: %w", r.name, err)
		}
		pidFile = f.Name()
		f.Close()
		defer os.Remove(pidFile)
	}
	// runc's run --detach is create and start in one call, and the init is
	// runc's own child until it exits, so a subreaper inherits it. crun's
	// detached run hands the init over through an intermediate process that
	// may reap a short-lived container first: there, create and start.
	oneCall := opts.Start && r.name == "runc"
	sub, args := "create", []string{"create", "--bundle", bundle, "--pid-file", pidFile, id}
	if oneCall {
		sub, args = "run", []string{"run", "--detach", "--bundle", bundle, "--pid-file", pidFile, id}
	}
	_, err := r.invoke(ctx, invocation{sub: sub, args: args, timeout: r.createTimeout, stdio: opts})
	if err != nil {
		return 0, r.fail(sub, err, classifyCreate)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("%s create: read pid file: %w", r.name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s create: pid file %s holds %q", r.name, pidFile, data)
	}
	if opts.Start && !oneCall {
		if err := r.Start(ctx, id); err != nil {
			_ = r.Delete(context.WithoutCancel(ctx), id, true)
			return 0, err
		}
	}
	return pid, nil
}

// Start lets the created container's process run. An unknown id gives an
// error wrapping api.ErrNotFound; a container that already started,
// api.ErrWrongState.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("%s start: %w", r.name, err)
	}
	_, err := r.invoke(ctx, invocation{sub: "start", args: []string{"start", id}})
	if err != nil {
		return r.fail("start", err, func(msg string) error {
			switch {
			case isNotFound(msg, id):
				return api.ErrNotFound
			case isNotStartable(msg, id):
				return api.ErrWrongState
			}
			return nil
		})
	}
	return nil
}

type stateJSON struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

func (s stateJSON) runtimeState() containerizer.RuntimeState {
	return containerizer.RuntimeState{ID: s.ID, Pid: s.Pid, Status: s.Status, Bundle: s.Bundle}
}

// State returns the runtime's view of container id; an unknown id gives an
// error wrapping api.ErrNotFound.
func (r *Runtime) State(ctx context.Context, id string) (*containerizer.RuntimeState, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("%s state: %w", r.name, err)
	}
	out, err := r.invoke(ctx, invocation{sub: "state", args: []string{"state", id}})
	if err != nil {
		return nil, r.fail("state", err, func(msg string) error {
			if isNotFound(msg, id) {
				return api.ErrNotFound
			}
			return nil
		})
	}
	var s stateJSON
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("%s state: parse %q: %w", r.name, truncate(out), err)
	}
	st := s.runtimeState()
	return &st, nil
}

// Kill sends sig to the container's init process, or to all its processes
// when all is set. A stopped or unknown container is not an error.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("%s kill: %w", r.name, err)
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	args = append(args, id, strconv.Itoa(int(sig)))
	if !r.known(id) {
		return nil // nothing to kill: also when the runtime cannot even run
	}
	_, err := r.invoke(ctx, invocation{sub: "kill", args: args, timeout: r.cleanupTimeout})
	if err == nil {
		return nil
	}
	var re *runtimeError
	if !errors.As(err, &re) {
		return r.fail("kill", err, nil)
	}
	if isNotFound(re.msg, id) || isNotRunning(re.msg) {
		return nil
	}
	// A message this package does not know: ask for the state, so that a
	// container that is gone still counts as killed.
	st, serr := r.State(ctx, id)
	if errors.Is(serr, api.ErrNotFound) || (serr == nil && st.Status == "stopped") {
		return nil
	}
	return r.fail("kill", err, nil)
}

// Delete removes the runtime's state for container id, and the cgroup it
// made. With force, a running container is killed first; without it, deleting
// a running container gives api.ErrWrongState. An unknown id is not an error.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("%s delete: %w", r.name, err)
	}
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	args = append(args, id)
	if !r.known(id) {
		// Nothing to delete, and no need for the runtime: a launch whose
		// runtime cannot run is undone all the same.
		return nil
	}
	_, err := r.invoke(ctx, invocation{sub: "delete", args: args, timeout: r.cleanupTimeout})
	if err == nil {
		return nil
	}
	var re *runtimeError
	if errors.As(err, &re) && isNotFound(re.msg, id) {
		return nil
	}
	return r.fail("delete", err, func(msg string) error {
		if isNotStopped(msg) {
			return api.ErrWrongState
		}
		return nil
	})
}

// List returns every container under the runtime's root. A root directory
// that does not exist yet holds none.
func (r *Runtime) List(ctx context.Context) ([]containerizer.RuntimeState, error) {
	if r.root != "" {
		if _, err := os.Stat(r.root); errors.Is(err, fs.ErrNotExist) {
			return []containerizer.RuntimeState{}, nil
		}
	}
	out, err := r.invoke(ctx, invocation{sub: "list", args: []string{"list", "--format", "json"}})
	if err != nil {
		return nil, r.fail("list", err, nil)
	}
	var list []stateJSON // runc prints "null" for none, crun "[]"
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("%s list: parse %q: %w", r.name, truncate(out), err)
	}
	states := make([]containerizer.RuntimeState, 0, len(list))
	for _, s := range list {
		states = append(states, s.runtimeState())
	}
	return states, nil
}

// checkID refuses what the runtime would misread: an empty id, or one that
// looks like a flag.
func checkID(id string) error {
	if id == "" || strings.HasPrefix(id, "-") || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("container id %q: %w", id, api.ErrInvalid)
	}
	return nil
}

// fail turns an invoke error into the error a method returns. For a runtime
// that ran and failed, classify maps its message to a sentinel (nil: none), and
// the error wraps the sentinel, or else the exit error.
func (r *Runtime) fail(sub string, err error, classify func(msg string) error) error {
	var re *runtimeError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s %s: %w", r.name, sub, err)
	}
	if classify != nil {
		if sentinel := classify(re.msg); sentinel != nil {
			return fmt.Errorf("%s %s: %s: %w", r.name, sub, re.msg, sentinel)
		}
	}
	return fmt.Errorf("%s %s: %s: %w", r.name, sub, re.msg, re.err)
}

func truncate(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
