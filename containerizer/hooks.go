package containerizer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// Hook is an admin's hook around containers' lives (package agenthook:
// exec hooks, OCI hooks). Like an isolator, it implements the points it
// cares about, each an interface of its own found by type assertion:
//
//	isolators Prepare ─▶ merge ─▶ CreateContainer (in order; may adjust the
//	spec or refuse) ─▶ bundle ─▶ runtime create and start ─▶ running
//	checkpoint ─▶ PostStart (in order) ─▶ … the container exits (monitor) ─▶
//	cleanup ─▶ PostStop (in order) ─▶ the exit is reported
//
// Hooks run in Config.Hooks order. A hook keeps its own failure policy: an
// error it returns fails the launch (CreateContainer, PostStart) and names
// the hook; one it swallows is its own to log.
type Hook interface {
	Name() string
}

// HookContainer is what a hook is told of a container.
type HookContainer struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Image  string            `json:"image,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Task is the cluster's task that the container runs, for the agent's
	// launches (LaunchOptions.Task).
	Task *api.TaskLaunch `json:"task,omitempty"`
	// Pid is the container's init process as the host sees it, once it
	// exists; CgroupPath its cgroup.
	Pid        int    `json:"pid,omitempty"`
	CgroupPath string `json:"cgroup_path,omitempty"`
}

// Adjustment is what a CreateHook changes in a container: it adds. It may
// set an environment variable, a label or an annotation the request or
// the image already set (the admin's value wins), but nothing an isolator
// set (the variables, mounts and annotations that carry what the isolators
// granted: GPUs, networks, volumes, limits), nor a label or an annotation
// under caisson's own prefixes ("caisson.", "io.caisson."); a mount goes
// to a destination nothing else mounts. OCI hooks are appended to the
// spec's.
type Adjustment struct {
	Env         map[string]string `json:"env,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	OCIHooks    *specs.Hooks      `json:"oci_hooks,omitempty"`
}

// CreateHook sees the container's final runtime spec, after the isolators'
// changes and before the bundle is written, and returns what it changes
// (nil for nothing). An error refuses the launch: one wrapping
// api.ErrForbidden says the hook vetoed it.
type CreateHook interface {
	Hook
	CreateContainer(ctx context.Context, c *HookContainer, spec *specs.Spec) (*Adjustment, error)
}

// StartedHook is told that the container runs (its running checkpoint is
// written). An error fails the launch: the container is destroyed.
type StartedHook interface {
	Hook
	PostStart(ctx context.Context, c *HookContainer) error
}

// StoppedHook is told, by the container's monitor, how the container
// ended once it is cleaned up and before its end is reported to whoever
// waits for it; usage is its last sample (nil when none could be taken).
// A container whose monitor died (recovery records it as lost) is not
// reported to it.
type StoppedHook interface {
	Hook
	PostStop(ctx context.Context, c *HookContainer, t *api.Termination, usage *api.Usage)
}

// ReservedLabelPrefixes are the label and annotation prefixes that are
// caisson's own: the agent's task labels, the isolators' annotations.
var ReservedLabelPrefixes = []string{"caisson.", "io.caisson."}

// reserved reports whether key is under a ReservedLabelPrefixes prefix.
func reserved(key string) bool {
	for _, p := range ReservedLabelPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// hookContainer is what hooks are told of the launch's container.
func (ln *launch) hookContainer() *HookContainer {
	hc := &HookContainer{
		ID: ln.rec.ID, Name: ln.rec.Name, Image: ln.rec.Image, Labels: maps.Clone(ln.rec.Spec.Labels),
		Task: ln.opts.Task, Pid: ln.rec.Pid, CgroupPath: ln.rec.CgroupPath,
	}
	return hc
}

// createHook runs one CreateHook and applies its adjustment.
func (ln *launch) createHook(ctx context.Context, h CreateHook) error {
	adj, err := h.CreateContainer(ctx, ln.hookContainer(), ln.s)
	if err != nil {
		return fmt.Errorf("hook %s: %w", h.Name(), err)
	}
	if adj == nil {
		return nil
	}
	if err := applyAdjustment(ln.s, ln.contribs, adj); err != nil {
		return fmt.Errorf("hook %s: %w", h.Name(), err)
	}
	if len(adj.Labels) > 0 {
		if ln.rec.Spec.Labels == nil {
			ln.rec.Spec.Labels = map[string]string{}
		}
		maps.Copy(ln.rec.Spec.Labels, adj.Labels)
	}
	return nil
}

func (ln *launch) startedHook(ctx context.Context, h StartedHook) error {
	if err := h.PostStart(ctx, ln.hookContainer()); err != nil {
		return fmt.Errorf("hook %s: %w", h.Name(), err)
	}
	return nil
}

// applyAdjustment checks adj against what the isolators set (contribs) and
// caisson's reserved prefixes, and applies it to s: all of it or, with an
// error wrapping api.ErrConflict or api.ErrInvalid, none.
func applyAdjustment(s *oci.Spec, contribs []isolators.Contribution, adj *Adjustment) error {
	owner := isolatorParts(contribs)
	for _, k := range slices.Sorted(maps.Keys(adj.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(adj.Env[k], 0) {
			return fmt.Errorf("environment variable %q: not a name and a value: %w", k, api.ErrInvalid)
		}
		if iso, ok := owner[isolators.FieldEnv][k]; ok {
			return fmt.Errorf("environment variable %s is isolator %s's: %w", k, iso, api.ErrConflict)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(adj.Labels)) {
		if k == "" || reserved(k) {
			return fmt.Errorf("label %q: empty or under caisson's own prefixes (%s): %w", k, strings.Join(ReservedLabelPrefixes, ", "), api.ErrInvalid)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(adj.Annotations)) {
		if k == "" || reserved(k) {
			return fmt.Errorf("annotation %q: empty or under caisson's own prefixes (%s): %w", k, strings.Join(ReservedLabelPrefixes, ", "), api.ErrInvalid)
		}
		if iso, ok := owner[isolators.FieldAnnotation][k]; ok {
			return fmt.Errorf("annotation %s is isolator %s's: %w", k, iso, api.ErrConflict)
		}
	}
	taken := map[string]bool{}
	for _, m := range s.Mounts {
		taken[m.Destination] = true
	}
	for _, m := range adj.Mounts {
		if !strings.HasPrefix(m.Destination, "/") || m.Source == "" {
			return fmt.Errorf("mount %q from %q: want an absolute destination and a source: %w", m.Destination, m.Source, api.ErrInvalid)
		}
		if taken[m.Destination] {
			if iso, ok := owner[isolators.FieldMount][m.Destination]; ok {
				return fmt.Errorf("mount %s is isolator %s's: %w", m.Destination, iso, api.ErrConflict)
			}
			return fmt.Errorf("mount %s: the container mounts something there already: %w", m.Destination, api.ErrConflict)
		}
		taken[m.Destination] = true
	}
	env := make([]string, 0, len(adj.Env))
	for _, k := range slices.Sorted(maps.Keys(adj.Env)) {
		env = append(env, k+"="+adj.Env[k])
	}
	if err := oci.Apply(s, oci.WithEnv(env...), oci.WithAnnotations(adj.Annotations)); err != nil {
		return err
	}
	for _, m := range adj.Mounts {
		if m.Type == "" {
			m.Type = "bind"
		}
		s.Mounts = append(s.Mounts, m)
	}
	if h := adj.OCIHooks; h != nil {
		if s.Hooks == nil {
			s.Hooks = &specs.Hooks{}
		}
		//nolint:staticcheck // Prestart is deprecated by the runtime spec, and still what runc runs.
		s.Hooks.Prestart = append(s.Hooks.Prestart, h.Prestart...)
		s.Hooks.CreateRuntime = append(s.Hooks.CreateRuntime, h.CreateRuntime...)
		s.Hooks.CreateContainer = append(s.Hooks.CreateContainer, h.CreateContainer...)
		s.Hooks.StartContainer = append(s.Hooks.StartContainer, h.StartContainer...)
		s.Hooks.Poststart = append(s.Hooks.Poststart, h.Poststart...)
		s.Hooks.Poststop = append(s.Hooks.Poststop, h.Poststop...)
	}
	return nil
}

// isolatorParts maps each field's keys that the isolators set to the
// isolator that set them.
func isolatorParts(contribs []isolators.Contribution) map[isolators.Field]map[string]string {
	out := map[isolators.Field]map[string]string{
		isolators.FieldEnv: {}, isolators.FieldAnnotation: {}, isolators.FieldMount: {},
	}
	for _, c := range contribs {
		for _, kv := range c.Response.Env {
			k, _, _ := strings.Cut(kv, "=")
			out[isolators.FieldEnv][k] = c.Isolator
		}
		for k := range c.Response.Annotations {
			out[isolators.FieldAnnotation][k] = c.Isolator
		}
		for _, m := range c.Response.Mounts {
			out[isolators.FieldMount][m.Destination] = c.Isolator
		}
	}
	return out
}
