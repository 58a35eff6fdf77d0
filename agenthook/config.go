package agenthook

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
)

// The points at which exec hooks run.
const (
	// PointAgentStart runs once when the agent starts, before it
	// registers; with the fail policy, a failure stops the agent.
	PointAgentStart = "agent-start"
	// PointAgentRegister runs before each registration (and before a
	// heartbeat reports changed resources): it may add labels and set the
	// cpus, memory, disk and ports the agent reports.
	PointAgentRegister = "agent-register"
	// PointPreLaunch runs before the runtime creates a container, with the
	// container and its final runtime spec: it may add environment
	// variables, labels, annotations and mounts, or veto the launch.
	PointPreLaunch = "pre-launch"
	// PointPostLaunch runs once the container runs; with the fail policy,
	// a failure destroys it and fails the launch.
	PointPostLaunch = "post-launch"
	// PointPostStop runs once the container has exited and been cleaned
	// up, with its exit status, termination reason and last usage.
	PointPostStop = "post-stop"
)

// Points lists the exec hook points, in the order of a container's life.
var Points = []string{PointAgentStart, PointAgentRegister, PointPreLaunch, PointPostLaunch, PointPostStop}

// The failure policies: what a hook's failure (an exit status other than
// 0, a timeout, output that is too long or not the answer it should be)
// does. A veto is an answer, not a failure: it refuses the launch under
// either policy.
const (
	// PolicyFail fails what the hook is part of: the launch, the agent's
	// start or registration. It is the default.
	PolicyFail = "fail"
	// PolicyIgnore logs the failure and goes on as if the hook had
	// answered nothing.
	PolicyIgnore = "ignore"
)

// Limits of an exec hook.
const (
	DefaultTimeout   = 10 * time.Second
	MinTimeout       = 100 * time.Millisecond
	MaxTimeout       = 10 * time.Minute
	DefaultMaxOutput = 1 << 20
	MaxMaxOutput     = 64 << 20
)

// ExecHook is an executable the admin runs at a point of a container's or
// the agent's life. It gets a JSON request on its standard input and may
// answer one JSON object on its standard output (see Request and the
// answers of each point); what it writes on its standard error goes to
// the error that reports its failure.
type ExecHook struct {
	// Name names the hook in errors, logs and hooks ls; empty is the
	// executable's base name.
	Name string
	// Point is one of Points.
	Point string
	// Path is the executable, an absolute path; Args follow it.
	Path string
	Args []string
	// Env are KEY=VALUE variables added to the hook's environment, which
	// otherwise holds PATH, CAISSON_HOOK_POINT and CAISSON_HOOK_NAME only.
	Env []string
	// Timeout bounds the hook's run: past it the hook and everything it
	// started are killed. Zero is DefaultTimeout.
	Timeout time.Duration
	// OnFailure is PolicyFail (the default, when empty) or PolicyIgnore.
	OnFailure string
	// MaxOutput bounds the standard output, in bytes: more is a failure.
	// Zero is DefaultMaxOutput.
	MaxOutput int64
}

// name is the hook's name.
func (h *ExecHook) name() string {
	if h.Name != "" {
		return h.Name
	}
	return filepath.Base(h.Path)
}

func (h *ExecHook) timeout() time.Duration {
	if h.Timeout == 0 {
		return DefaultTimeout
	}
	return h.Timeout
}

func (h *ExecHook) maxOutput() int64 {
	if h.MaxOutput == 0 {
		return DefaultMaxOutput
	}
	return h.MaxOutput
}

func (h *ExecHook) policy() string {
	if h.OnFailure == "" {
		return PolicyFail
	}
	return h.OnFailure
}

// Validate checks the hook, its executable included. Errors are
// *api.FieldError values naming the field ("point", "path", "timeout"...)
// and wrap api.ErrInvalid.
func (h *ExecHook) Validate() error {
	var errs fieldErrors
	if !slices.Contains(Points, h.Point) {
		errs.add("point", fmt.Sprintf("%q", h.Point), fmt.Errorf("unknown hook point (want one of %s)", strings.Join(Points, ", ")))
	}
	if err := checkExecutable(h.Path); err != nil {
		errs.add("path", fmt.Sprintf("%q", h.Path), err)
	}
	if h.Name != "" && (strings.ContainsAny(h.Name, "/\x00 ") || len(h.Name) > 64) {
		errs.add("name", fmt.Sprintf("%q", h.Name), errors.New("a name has at most 64 characters, none of them a slash or a space"))
	}
	if err := checkEnv(h.Env); err != nil {
		errs.add("env", "", err)
	}
	if h.Timeout != 0 && (h.Timeout < MinTimeout || h.Timeout > MaxTimeout) {
		errs.add("timeout", h.Timeout.String(), fmt.Errorf("want %s to %s", MinTimeout, MaxTimeout))
	}
	if !slices.Contains([]string{"", PolicyFail, PolicyIgnore}, h.OnFailure) {
		errs.add("on_failure", fmt.Sprintf("%q", h.OnFailure), fmt.Errorf("want %s or %s", PolicyFail, PolicyIgnore))
	}
	if h.MaxOutput != 0 && (h.MaxOutput < 1 || h.MaxOutput > MaxMaxOutput) {
		errs.add("max_output", fmt.Sprint(h.MaxOutput), fmt.Errorf("want 1 byte to %d MiB", MaxMaxOutput>>20))
	}
	return errs.join()
}

// The stages of an OCI hook, as the runtime spec names them.
var OCIStages = []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}

// OCIHook is a runtime-spec hook added to every container's spec: the
// runtime runs it at its stage with the container's state on its standard
// input. The path of a startContainer hook is the container's; every
// other stage's is the host's.
type OCIHook struct {
	Stage string
	Path  string
	Args  []string
	Env   []string
	// Timeout is in whole seconds, as the runtime spec has it; zero is
	// none (the runtime's own).
	Timeout int
}

// Validate checks the hook, its executable included where it is the
// host's. Errors are *api.FieldError values wrapping api.ErrInvalid.
func (h *OCIHook) Validate() error {
	var errs fieldErrors
	if !slices.Contains(OCIStages, h.Stage) {
		errs.add("stage", fmt.Sprintf("%q", h.Stage), fmt.Errorf("unknown OCI hook stage (want one of %s)", strings.Join(OCIStages, ", ")))
	}
	if h.Stage == "startContainer" {
		if !filepath.IsAbs(h.Path) {
			errs.add("path", fmt.Sprintf("%q", h.Path), errors.New("want an absolute path (in the container)"))
		}
	} else if err := checkExecutable(h.Path); err != nil {
		errs.add("path", fmt.Sprintf("%q", h.Path), err)
	}
	if err := checkEnv(h.Env); err != nil {
		errs.add("env", "", err)
	}
	if h.Timeout < 0 || h.Timeout > int(MaxTimeout/time.Second) {
		errs.add("timeout", fmt.Sprint(h.Timeout), fmt.Errorf("want 0 to %d seconds", int(MaxTimeout/time.Second)))
	}
	return errs.join()
}

// fieldErrors gathers what a Validate finds, each a *api.FieldError
// wrapping api.ErrInvalid.
type fieldErrors []error

func (e *fieldErrors) add(field, value string, err error) {
	*e = append(*e, &api.FieldError{Field: field, Value: value, Err: fmt.Errorf("%w: %w", err, api.ErrInvalid)})
}

func (e fieldErrors) join() error { return errors.Join(e...) }

// checkExecutable says why path is not an absolute path to an executable
// regular file; nil when it is.
func checkExecutable(path string) error {
	if !filepath.IsAbs(path) {
		return errors.New("want the absolute path of an executable")
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("no such file")
		}
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

func checkEnv(env []string) error {
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("%q is not KEY=VALUE", kv)
		}
	}
	return nil
}
