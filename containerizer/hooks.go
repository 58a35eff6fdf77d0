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

// Adjustment is what a CreateHook changes in a container. It may set or
// remove an environment variable, a label, an annotation or a mount the
// request or the image set (the admin's hook wins), but nothing an isolator
// set (the variables, mounts and annotations that carry what the isolators
// granted: GPUs, networks, volumes, limits), nor a label or an annotation
// under caisson's own prefixes ("caisson.", "io.caisson."); a mount it
// adds goes where nothing is mounted, and the default mounts (/proc, /dev,
// /sys...) stay. It may add a device node, except one that an isolator owns
// (isolators.DeviceOwner: a GPU's) and did not grant; set resource limits
// (rlimits), the OOM score, the cpuset, the CPU weight and hugepage
// limits, and lower the memory and pids limits, never raise them past the
// grant. OCI hooks are appended to the spec's. Anything else it would
// change is refused.
type Adjustment struct {
	Env               map[string]string `json:"env,omitempty"`
	RemoveEnv         []string          `json:"remove_env,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	RemoveAnnotations []string          `json:"remove_annotations,omitempty"`
	Mounts            []specs.Mount     `json:"mounts,omitempty"`
	// RemoveMounts are destinations.
	RemoveMounts []string     `json:"remove_mounts,omitempty"`
	OCIHooks     *specs.Hooks `json:"oci_hooks,omitempty"`
	// Devices are device nodes to add, each with a rule that allows it.
	Devices     []specs.LinuxDevice  `json:"devices,omitempty"`
	Rlimits     []specs.POSIXRlimit  `json:"rlimits,omitempty"`
	OOMScoreAdj *int                 `json:"oom_score_adj,omitempty"`
	Resources   *ResourcesAdjustment `json:"resources,omitempty"`
}

// ResourcesAdjustment is what an Adjustment changes of the cgroup limits.
type ResourcesAdjustment struct {
	CPUShares *uint64 `json:"cpu_shares,omitempty"`
	// Cpus and Mems are the cpuset ("0-3,8"); empty keeps it.
	Cpus string `json:"cpus,omitempty"`
	Mems string `json:"mems,omitempty"`
	// MemoryLimit and PidsLimit may only lower the grant.
	MemoryLimit    *int64                     `json:"memory_limit,omitempty"`
	PidsLimit      *int64                     `json:"pids_limit,omitempty"`
	HugepageLimits []specs.LinuxHugepageLimit `json:"hugepage_limits,omitempty"`
}

// CreateHook sees the container's final runtime spec, after the isolators'
// changes and before the bundle is written, and returns what it changes
// (nil for nothing). An error refuses the launch: one wrapping
// api.ErrForbidden says the hook vetoed it.
type CreateHook interface {
	Hook
	CreateContainer(ctx context.Context, req *CreateRequest) (*Adjustment, error)
}

// CreateRequest is what a CreateHook is given.
type CreateRequest struct {
	Container *HookContainer
	// Spec is the container's runtime spec; the hook does not change it.
	Spec *specs.Spec
	// Check says why the containerizer would refuse adj (nil when it
	// would apply it), as it checks what the hook returns: a hook that
	// combines the adjustments of several parties (NRI plugins) checks
	// each party's to name the one at fault.
	Check func(adj *Adjustment) error
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

// RemovedHook is told that a container is gone: removed by Remove (by
// caisson rm, or the agent once a task ended), or, launched attached with
// AutoRemove, once its launcher hears of its end. Its monitor removes a
// detached container with AutoRemove, and does not tell.
type RemovedHook interface {
	Hook
	Removed(ctx context.Context, c *HookContainer)
}

// HookedContainer is a container as hooks know it, with its runtime spec:
// what an NRI plugin that registers is told of the containers there are.
type HookedContainer struct {
	Container HookContainer
	Spec      *specs.Spec
	// Running is false for a container created and not yet started.
	Running bool
}

// HookedContainers lists the containers that run or are being launched
// (created), with their runtime specs; exited ones are left out.
func (c *Containerizer) HookedContainers(ctx context.Context) ([]HookedContainer, error) {
	recs, _, err := c.listRecords()
	if err != nil {
		return nil, err
	}
	var out []HookedContainer
	for _, r := range recs {
		if r.Phase != phaseRunning && r.Phase != phasePrepared {
			continue
		}
		spec := c.readSpec(r.ID)
		if spec == nil {
			continue
		}
		out = append(out, HookedContainer{
			Container: HookContainer{ID: r.ID, Name: r.Name, Image: r.Image, Labels: maps.Clone(r.Spec.Labels), Pid: r.Pid, CgroupPath: r.CgroupPath},
			Spec:      spec, Running: r.Phase == phaseRunning,
		})
	}
	return out, ctx.Err()
}

// UpdateHook is told of a running container's live update (Update):
// UpdateContainer before the isolators apply it, which an error refuses
// (naming the hook), and PostUpdateContainer once it is applied.
type UpdateHook interface {
	Hook
	UpdateContainer(ctx context.Context, c *HookContainer, res api.Resources) error
	PostUpdateContainer(ctx context.Context, c *HookContainer, res api.Resources)
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
	owners := ln.c.deviceOwners()
	adj, err := h.CreateContainer(ctx, &CreateRequest{Container: ln.hookContainer(), Spec: ln.s, Check: func(a *Adjustment) error {
		return checkAdjustment(ln.s, ln.contribs, owners, a)
	}})
	if err != nil {
		return fmt.Errorf("hook %s: %w", h.Name(), err)
	}
	if adj == nil {
		return nil
	}
	if err := applyAdjustment(ln.s, ln.contribs, owners, adj); err != nil {
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

// deviceOwners are the isolators that own device nodes.
func (c *Containerizer) deviceOwners() []isolators.DeviceOwner {
	var out []isolators.DeviceOwner
	for _, iso := range c.cfg.Isolators {
		if o, ok := iso.(isolators.DeviceOwner); ok {
			out = append(out, o)
		}
	}
	return out
}

func (ln *launch) startedHook(ctx context.Context, h StartedHook) error {
	if err := h.PostStart(ctx, ln.hookContainer()); err != nil {
		return fmt.Errorf("hook %s: %w", h.Name(), err)
	}
	return nil
}

// applyAdjustment checks adj against what the isolators set (contribs),
// the devices they own (owners), caisson's reserved prefixes and the
// grant's limits, and applies it to s: all of it or, with an error
// wrapping api.ErrConflict or api.ErrInvalid, none.
func applyAdjustment(s *oci.Spec, contribs []isolators.Contribution, owners []isolators.DeviceOwner, adj *Adjustment) error {
	if err := checkAdjustment(s, contribs, owners, adj); err != nil {
		return err
	}
	env := make([]string, 0, len(adj.Env))
	for _, k := range slices.Sorted(maps.Keys(adj.Env)) {
		env = append(env, k+"="+adj.Env[k])
	}
	if err := oci.Apply(s, oci.WithEnv(env...), oci.WithAnnotations(adj.Annotations), oci.WithHooks(adj.OCIHooks)); err != nil {
		return err
	}
	if len(adj.RemoveEnv) > 0 && s.Process != nil {
		s.Process.Env = slices.DeleteFunc(s.Process.Env, func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return slices.Contains(adj.RemoveEnv, k)
		})
	}
	for _, k := range adj.RemoveAnnotations {
		delete(s.Annotations, k)
	}
	s.Mounts = slices.DeleteFunc(s.Mounts, func(m specs.Mount) bool { return slices.Contains(adj.RemoveMounts, m.Destination) })
	for _, m := range adj.Mounts {
		if m.Type == "" {
			m.Type = "bind"
		}
		s.Mounts = append(s.Mounts, m)
	}
	if len(adj.Devices) > 0 {
		var rules []specs.LinuxDeviceCgroup
		var devices []specs.LinuxDevice
		for _, d := range adj.Devices {
			if slices.ContainsFunc(s.Linux.Devices, func(x specs.LinuxDevice) bool { return x.Path == d.Path }) {
				continue // the same node, checked
			}
			major, minor := d.Major, d.Minor
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: "rwm"})
			devices = append(devices, d)
		}
		if err := oci.WithDevices(devices, rules)(s); err != nil {
			return err
		}
	}
	if len(adj.Rlimits) > 0 {
		s.Process.Rlimits = slices.DeleteFunc(s.Process.Rlimits, func(r specs.POSIXRlimit) bool {
			return slices.ContainsFunc(adj.Rlimits, func(x specs.POSIXRlimit) bool { return x.Type == r.Type })
		})
		s.Process.Rlimits = append(s.Process.Rlimits, adj.Rlimits...)
	}
	if adj.OOMScoreAdj != nil {
		v := *adj.OOMScoreAdj
		s.Process.OOMScoreAdj = &v
	}
	if r := adj.Resources; r != nil {
		res := s.Linux.Resources
		if r.CPUShares != nil || r.Cpus != "" || r.Mems != "" {
			if res.CPU == nil {
				res.CPU = &specs.LinuxCPU{}
			}
			if r.CPUShares != nil {
				v := *r.CPUShares
				res.CPU.Shares = &v
			}
			if r.Cpus != "" {
				res.CPU.Cpus = r.Cpus
			}
			if r.Mems != "" {
				res.CPU.Mems = r.Mems
			}
		}
		if r.MemoryLimit != nil {
			if res.Memory == nil {
				res.Memory = &specs.LinuxMemory{}
			}
			v := *r.MemoryLimit
			res.Memory.Limit = &v
			if res.Memory.Swap != nil && *res.Memory.Swap > v {
				res.Memory.Swap = &v // memory+swap no larger than memory: no swap, as caisson's limits have it
			}
		}
		if r.PidsLimit != nil {
			v := *r.PidsLimit
			res.Pids = &specs.LinuxPids{Limit: &v}
		}
		for _, h := range r.HugepageLimits {
			res.HugepageLimits = slices.DeleteFunc(res.HugepageLimits, func(x specs.LinuxHugepageLimit) bool { return x.Pagesize == h.Pagesize })
			res.HugepageLimits = append(res.HugepageLimits, h)
		}
	}
	return nil
}

// checkAdjustment says what is wrong with adj; see applyAdjustment.
func checkAdjustment(s *oci.Spec, contribs []isolators.Contribution, owners []isolators.DeviceOwner, adj *Adjustment) error {
	owner := isolatorParts(contribs)
	for _, k := range slices.Sorted(maps.Keys(adj.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(adj.Env[k], 0) {
			return fmt.Errorf("environment variable %q: not a name and a value: %w", k, api.ErrInvalid)
		}
	}
	for _, k := range append(slices.Sorted(maps.Keys(adj.Env)), adj.RemoveEnv...) {
		if iso, ok := owner[isolators.FieldEnv][k]; ok {
			return fmt.Errorf("environment variable %s is isolator %s's: %w", k, iso, api.ErrConflict)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(adj.Labels)) {
		if k == "" || reserved(k) {
			return fmt.Errorf("label %q: empty or under caisson's own prefixes (%s): %w", k, strings.Join(ReservedLabelPrefixes, ", "), api.ErrInvalid)
		}
	}
	for _, k := range append(slices.Sorted(maps.Keys(adj.Annotations)), adj.RemoveAnnotations...) {
		if k == "" || reserved(k) {
			return fmt.Errorf("annotation %q: empty or under caisson's own prefixes (%s): %w", k, strings.Join(ReservedLabelPrefixes, ", "), api.ErrInvalid)
		}
		if iso, ok := owner[isolators.FieldAnnotation][k]; ok {
			return fmt.Errorf("annotation %s is isolator %s's: %w", k, iso, api.ErrConflict)
		}
	}
	defaults := map[string]bool{}
	for _, m := range oci.Default().Mounts {
		defaults[m.Destination] = true
	}
	taken := map[string]bool{}
	for _, m := range s.Mounts {
		taken[m.Destination] = true
	}
	for _, dst := range adj.RemoveMounts {
		if iso, ok := owner[isolators.FieldMount][dst]; ok {
			return fmt.Errorf("mount %s is isolator %s's: %w", dst, iso, api.ErrConflict)
		}
		if defaults[dst] {
			return fmt.Errorf("mount %s: a mount every container has may not go: %w", dst, api.ErrInvalid)
		}
		delete(taken, dst)
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
	granted := map[string]bool{}
	for _, c := range contribs {
		for _, d := range c.Response.Devices {
			granted[d.Path] = true
		}
	}
	for _, d := range adj.Devices {
		if !strings.HasPrefix(d.Path, "/dev/") || !slices.Contains([]string{"c", "b", "u", "p"}, d.Type) {
			return fmt.Errorf("device %q of type %q: want a node under /dev of type c, b, u or p: %w", d.Path, d.Type, api.ErrInvalid)
		}
		for _, o := range owners {
			if o.OwnsDevice(d) && !granted[d.Path] {
				return fmt.Errorf("device %s is isolator %s's, and it did not grant it to this container: %w", d.Path, o.Name(), api.ErrConflict)
			}
		}
		if s.Linux != nil {
			for _, x := range s.Linux.Devices {
				if x.Path == d.Path && (x.Type != d.Type || x.Major != d.Major || x.Minor != d.Minor) {
					return fmt.Errorf("device %s: the container has another node there: %w", d.Path, api.ErrConflict)
				}
			}
		}
	}
	for _, r := range adj.Rlimits {
		if !strings.HasPrefix(r.Type, "RLIMIT_") || r.Soft > r.Hard {
			return fmt.Errorf("rlimit %s %d/%d: want an RLIMIT_ name and a soft limit no higher than the hard one: %w", r.Type, r.Soft, r.Hard, api.ErrInvalid)
		}
	}
	if v := adj.OOMScoreAdj; v != nil && (*v < -1000 || *v > 1000) {
		return fmt.Errorf("OOM score adjustment %d: want -1000 to 1000: %w", *v, api.ErrInvalid)
	}
	if r := adj.Resources; r != nil {
		var res specs.LinuxResources
		if s.Linux != nil && s.Linux.Resources != nil {
			res = *s.Linux.Resources
		}
		for what, v := range map[string]string{"cpuset cpus": r.Cpus, "cpuset mems": r.Mems} {
			if v != "" && strings.Trim(v, "0123456789,-") != "" {
				return fmt.Errorf("%s %q: want a list such as 0-3,8: %w", what, v, api.ErrInvalid)
			}
		}
		if v := r.MemoryLimit; v != nil {
			if *v <= 0 || (res.Memory != nil && res.Memory.Limit != nil && *res.Memory.Limit > 0 && *v > *res.Memory.Limit) {
				return fmt.Errorf("memory limit %d: may only lower the grant's: %w", *v, api.ErrConflict)
			}
		}
		if v := r.PidsLimit; v != nil {
			if *v <= 0 || (res.Pids != nil && res.Pids.Limit != nil && *res.Pids.Limit > 0 && *v > *res.Pids.Limit) {
				return fmt.Errorf("pids limit %d: may only lower the grant's: %w", *v, api.ErrConflict)
			}
		}
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
