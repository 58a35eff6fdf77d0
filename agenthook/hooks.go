package agenthook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"time"

	nrilog "github.com/containerd/nri/pkg/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

// Config is the admin's hooks, as cmd/caisson reads them from the config
// file's [hooks] section.
type Config struct {
	// Exec are the exec hooks; those of one point run in this order.
	Exec []ExecHook
	// OCI are added to every container's runtime spec, in this order,
	// after the hooks the spec has.
	OCI []OCIHook
	// NRI, when enabled, has NRI plugins see and adjust every container.
	NRI NRIConfig
	// CgroupDir, when set, is a directory in a cgroup v2 hierarchy below
	// which each exec hook run gets a cgroup of its own, so that nothing it
	// starts outlives it. Without one (a host with cgroup v1 only), a run
	// is its process group: a process that leaves the group (setsid)
	// survives it.
	CgroupDir string
	Logger    *slog.Logger
}

// Validate checks every hook. Errors are *api.FieldError values whose
// field names the hook ("exec[1].timeout", "oci[0].stage"), joined; they
// wrap api.ErrInvalid.
func (c *Config) Validate() error {
	var errs []error
	for i := range c.Exec {
		errs = append(errs, prefixed(fmt.Sprintf("exec[%d].", i), c.Exec[i].Validate()))
	}
	for i := range c.OCI {
		errs = append(errs, prefixed(fmt.Sprintf("oci[%d].", i), c.OCI[i].Validate()))
	}
	errs = append(errs, prefixed("nri.", c.NRI.Validate()))
	return errors.Join(errs...)
}

// prefixed puts prefix before the field of every *api.FieldError in err.
func prefixed(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range unjoin(err) {
		var fe *api.FieldError
		if errors.As(e, &fe) {
			e = &api.FieldError{Field: prefix + fe.Field, Value: fe.Value, Err: fe.Err}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// Hooks runs the admin's hooks: for the containerizer (Container), and
// for the agent (AgentStart, Register).
type Hooks struct {
	cfg Config
	log *slog.Logger
	run *runner
	nri *nriHook
}

// New checks cfg and readies its hooks. A CgroupDir that cannot be used
// is logged, and exec hooks then run in their process groups alone.
func New(cfg Config) (*Hooks, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hooks{cfg: cfg, log: log, run: &runner{log: log}}
	if cfg.NRI.Enable {
		nrilog.Set(nriLogger{log.With("hook", NRIHooksName)})
		h.nri = &nriHook{cfg: cfg.NRI, log: log.With("hook", NRIHooksName), metrics: newNRIMetrics()}
	}
	if cfg.CgroupDir != "" && len(cfg.Exec) > 0 {
		j, err := newJail(cfg.CgroupDir)
		if err != nil {
			log.Warn("exec hooks run without cgroups of their own: what a hook leaves behind outside its process group survives it", "err", err)
		} else {
			h.run.jail = j
		}
	}
	return h, nil
}

// StartNRI gives the NRI hook the runtime it synchronises plugins with and
// updates containers through, and, with start, starts it now: the
// plugins in the plugin directory, and the socket others connect to.
// Without start it starts when a container is first created or removed.
// Without NRI it does nothing.
func (h *Hooks) StartNRI(rt NRIRuntime, start bool) error {
	if h.nri == nil {
		return nil
	}
	h.nri.mu.Lock()
	defer h.nri.mu.Unlock()
	h.nri.rt = rt
	if start {
		return h.nri.start()
	}
	return nil
}

// PrestartNRI starts the NRI plugins in the background, for a launch
// about to come: their start overlaps the launch's first phases, and the
// creation waits for it. Without NRI it does nothing.
func (h *Hooks) PrestartNRI() {
	if h.nri == nil {
		return
	}
	h.nri.mu.Lock() // held until started: a creation waits for it
	go func() {
		defer h.nri.mu.Unlock()
		if err := h.nri.start(); err != nil {
			h.log.Debug("NRI prestart", "err", err) // the creation reports it
		}
	}()
}

// Close stops what the hooks started: the NRI plugins and its socket.
func (h *Hooks) Close() {
	if h.nri != nil {
		h.nri.stop()
	}
}

// Request is what an exec hook reads on its standard input: the point,
// and what the point is about.
type Request struct {
	Point string `json:"point"`
	// Container, at pre-launch, post-launch and post-stop; with the
	// cluster's task for the agent's launches.
	Container *containerizer.HookContainer `json:"container,omitempty"`
	// Spec is the container's final runtime spec, at pre-launch.
	Spec *specs.Spec `json:"spec,omitempty"`
	// Termination and Usage say how the container ended, at post-stop
	// (Usage is absent when no sample could be taken).
	Termination *api.Termination `json:"termination,omitempty"`
	Usage       *api.Usage       `json:"usage,omitempty"`
	// Agent is what the agent is about to report, at agent-start and
	// agent-register.
	Agent *api.AgentRegistration `json:"agent,omitempty"`
}

// LaunchAnswer is what a pre-launch hook may answer: what to add to the
// container (see containerizer.Adjustment for what it may not change), or
// a veto, which refuses the launch with its reason.
type LaunchAnswer struct {
	Env         map[string]string `json:"env,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Veto        string            `json:"veto,omitempty"`
}

// RegisterAnswer is what an agent-register hook may answer: labels to
// add to the agent's (the scheduler's constraints match them), and the
// resources to report in place of those detected.
type RegisterAnswer struct {
	Labels    map[string]string `json:"labels,omitempty"`
	Resources *ResourceAnswer   `json:"resources,omitempty"`
}

// ResourceAnswer sets what it names of the resources an agent reports.
type ResourceAnswer struct {
	CPUs        *float64        `json:"cpus,omitempty"`
	MemoryBytes *int64          `json:"memory_bytes,omitempty"`
	DiskBytes   *int64          `json:"disk_bytes,omitempty"`
	Ports       []api.PortRange `json:"ports,omitempty"`
}

// Container returns the hooks of a container's life, for
// containerizer.Config.Hooks: the OCI hooks first (one hook that adds them
// all to every spec), then the exec hooks of the pre-launch, post-launch
// and post-stop points, in their order in the configuration.
func (h *Hooks) Container() []containerizer.Hook {
	var out []containerizer.Hook
	if len(h.cfg.OCI) > 0 {
		out = append(out, &ociHooks{hooks: h.cfg.OCI})
	}
	if h.nri != nil {
		out = append(out, h.nri)
	}
	for i := range h.cfg.Exec {
		e := execHook{ExecHook: &h.cfg.Exec[i], hooks: h}
		switch e.Point {
		case PointPreLaunch:
			out = append(out, &preLaunch{e})
		case PointPostLaunch:
			out = append(out, &postLaunch{e})
		case PointPostStop:
			out = append(out, &postStop{e})
		}
	}
	return out
}

// execHook is one configured exec hook.
type execHook struct {
	*ExecHook
	hooks *Hooks
}

func (e *execHook) Name() string { return e.name() }

// call runs the hook and decodes its answer into answer (nil ignores the
// output). A failure under PolicyIgnore is logged and reported as false
// with no error; under PolicyFail it is the error.
func (e *execHook) call(ctx context.Context, req *Request, answer any) (bool, error) {
	req.Point = e.Point
	begin := time.Now()
	out, err := e.hooks.run.run(ctx, e.ExecHook, req)
	if err == nil && answer != nil {
		err = decodeAnswer(e.Point, out, answer)
	}
	e.hooks.log.Debug("exec hook", "hook", e.name(), "point", e.Point, "duration", time.Since(begin), "err", err)
	if err == nil {
		return true, nil
	}
	if e.policy() == PolicyIgnore && ctx.Err() == nil {
		e.hooks.log.Warn("exec hook failed; ignored, as its policy says", "hook", e.name(), "point", e.Point, "err", err)
		return false, nil
	}
	return false, err
}

type preLaunch struct{ execHook }

func (p *preLaunch) CreateContainer(ctx context.Context, req *containerizer.CreateRequest) (*containerizer.Adjustment, error) {
	var a LaunchAnswer
	ok, err := p.call(ctx, &Request{Container: req.Container, Spec: req.Spec}, &a)
	if err != nil || !ok {
		return nil, err
	}
	if a.Veto != "" {
		return nil, fmt.Errorf("vetoed the launch: %s: %w", strings.TrimSpace(a.Veto), api.ErrForbidden)
	}
	return &containerizer.Adjustment{Env: a.Env, Labels: a.Labels, Annotations: a.Annotations, Mounts: a.Mounts}, nil
}

type postLaunch struct{ execHook }

func (p *postLaunch) PostStart(ctx context.Context, c *containerizer.HookContainer) error {
	_, err := p.call(ctx, &Request{Container: c}, nil)
	return err
}

type postStop struct{ execHook }

func (p *postStop) PostStop(ctx context.Context, c *containerizer.HookContainer, t *api.Termination, u *api.Usage) {
	if _, err := p.call(ctx, &Request{Container: c, Termination: t, Usage: u}, nil); err != nil {
		p.hooks.log.Warn("post-stop hook failed", "hook", p.name(), "container", c.ID, "err", err)
	}
}

// ociHooks adds the configured OCI hooks to every spec.
type ociHooks struct{ hooks []OCIHook }

// OCIHooksName is the name of the hook that adds the OCI hooks.
const OCIHooksName = "oci-hooks"

func (o *ociHooks) Name() string { return OCIHooksName }

func (o *ociHooks) CreateContainer(context.Context, *containerizer.CreateRequest) (*containerizer.Adjustment, error) {
	out := &specs.Hooks{}
	for _, h := range o.hooks {
		hook := specs.Hook{Path: h.Path, Args: append([]string{h.Path}, h.Args...), Env: h.Env}
		if h.Timeout > 0 {
			t := h.Timeout
			hook.Timeout = &t
		}
		switch h.Stage {
		case "prestart":
			//lint:ignore SA1019 deprecated by the runtime spec, and still what runc and crun run
			out.Prestart = append(out.Prestart, hook)
		case "createRuntime":
			out.CreateRuntime = append(out.CreateRuntime, hook)
		case "createContainer":
			out.CreateContainer = append(out.CreateContainer, hook)
		case "startContainer":
			out.StartContainer = append(out.StartContainer, hook)
		case "poststart":
			out.Poststart = append(out.Poststart, hook)
		case "poststop":
			out.Poststop = append(out.Poststop, hook)
		}
	}
	return &containerizer.Adjustment{OCIHooks: out}, nil
}

// AgentStart runs the agent-start hooks, in order, with what the agent
// will report (its resources and labels, its ID once it has one). A
// failure under PolicyFail is the error, naming the hook.
func (h *Hooks) AgentStart(ctx context.Context, reg *api.AgentRegistration) error {
	for i := range h.cfg.Exec {
		e := execHook{ExecHook: &h.cfg.Exec[i], hooks: h}
		if e.Point != PointAgentStart {
			continue
		}
		if _, err := e.call(ctx, &Request{Agent: reg}, nil); err != nil {
			return fmt.Errorf("hook %s: %w", e.name(), err)
		}
	}
	return nil
}

// Has reports whether any exec hook of point is configured.
func (h *Hooks) Has(point string) bool {
	for i := range h.cfg.Exec {
		if h.cfg.Exec[i].Point == point {
			return true
		}
	}
	return false
}

// Register runs the agent-register hooks, in order, each on reg as those
// before it left it, and applies their answers to reg: labels added (a
// hook's value wins), resources set. A failure under PolicyFail, or an
// answer with resources that make no sense, is the error, naming the
// hook.
func (h *Hooks) Register(ctx context.Context, reg *api.AgentRegistration) error {
	for i := range h.cfg.Exec {
		e := execHook{ExecHook: &h.cfg.Exec[i], hooks: h}
		if e.Point != PointAgentRegister {
			continue
		}
		var a RegisterAnswer
		ok, err := e.call(ctx, &Request{Agent: reg}, &a)
		if err == nil && ok {
			err = apply(reg, &a)
		}
		if err != nil {
			return fmt.Errorf("hook %s: %w", e.name(), err)
		}
	}
	return nil
}

// apply applies an agent-register hook's answer to reg: all of it or,
// with an error wrapping api.ErrInvalid, none.
func apply(reg *api.AgentRegistration, a *RegisterAnswer) error {
	for k := range a.Labels {
		if k == "" || strings.ContainsAny(k, "\x00") {
			return fmt.Errorf("agent-register hook: label %q: %w", k, api.ErrInvalid)
		}
	}
	res := reg.Resources
	if r := a.Resources; r != nil {
		if r.CPUs != nil {
			if *r.CPUs < 0 {
				return fmt.Errorf("agent-register hook: cpus %v: must not be negative: %w", *r.CPUs, api.ErrInvalid)
			}
			res.CPUs = *r.CPUs
		}
		if r.MemoryBytes != nil {
			if *r.MemoryBytes < 0 {
				return fmt.Errorf("agent-register hook: memory_bytes %d: must not be negative: %w", *r.MemoryBytes, api.ErrInvalid)
			}
			res.MemoryBytes = *r.MemoryBytes
		}
		if r.DiskBytes != nil {
			if *r.DiskBytes < 0 {
				return fmt.Errorf("agent-register hook: disk_bytes %d: must not be negative: %w", *r.DiskBytes, api.ErrInvalid)
			}
			res.DiskBytes = *r.DiskBytes
		}
		if r.Ports != nil {
			for _, p := range r.Ports {
				if p.Begin < 1 || p.End > 65535 || p.Begin > p.End {
					return fmt.Errorf("agent-register hook: port range %d-%d: want BEGIN-END within 1-65535: %w", p.Begin, p.End, api.ErrInvalid)
				}
			}
			res.Ports = r.Ports
		}
	}
	reg.Resources = res
	if len(a.Labels) > 0 {
		labels := maps.Clone(reg.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, a.Labels)
		reg.Labels = labels
	}
	return nil
}

// Info describes a configured hook, for caisson hooks ls.
type Info struct {
	// Kind is "exec" or "oci".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Point is an exec hook's point, or an OCI hook's stage.
	Point     string        `json:"point"`
	Path      string        `json:"path"`
	Args      []string      `json:"args,omitempty"`
	Timeout   time.Duration `json:"timeout_ns,omitempty"`
	OnFailure string        `json:"on_failure,omitempty"`
	MaxOutput int64         `json:"max_output,omitempty"`
}

// List describes the configured hooks: the exec hooks in the order of
// their points, then the OCI hooks.
func (c *Config) List() []Info {
	var out []Info
	for _, p := range Points {
		for i := range c.Exec {
			e := &c.Exec[i]
			if e.Point == p {
				out = append(out, Info{Kind: "exec", Name: e.name(), Point: p, Path: e.Path, Args: e.Args,
					Timeout: e.timeout(), OnFailure: e.policy(), MaxOutput: e.maxOutput()})
			}
		}
	}
	for _, o := range c.OCI {
		info := Info{Kind: "oci", Name: OCIHooksName, Point: o.Stage, Path: o.Path, Args: o.Args}
		if o.Timeout > 0 {
			info.Timeout = time.Duration(o.Timeout) * time.Second
		}
		out = append(out, info)
	}
	if n := c.NRI; n.Enable {
		timeout := n.RequestTimeout
		if timeout == 0 {
			timeout = DefaultNRIRequestTimeout
		}
		for _, p := range n.plugins() {
			out = append(out, Info{Kind: "nri", Name: filepath.Base(p), Point: "pre-registered", Path: p, Timeout: timeout})
		}
		if n.SocketPath != "" {
			out = append(out, Info{Kind: "nri", Name: "(plugins that connect)", Point: "agent socket", Path: n.SocketPath, Timeout: timeout})
		}
	}
	return out
}
