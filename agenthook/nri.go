package agenthook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/adaptation/builtin"
	nriapi "github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

// NRI's defaults, as containerd and CRI-O have them.
const (
	DefaultNRIPluginPath       = nri.DefaultPluginPath
	DefaultNRIPluginConfigPath = nri.DefaultPluginConfigPath
	DefaultNRISocketPath       = nri.DefaultSocketPath
	// DefaultNRIRegistrationTimeout and DefaultNRIRequestTimeout are NRI's.
	DefaultNRIRegistrationTimeout = nri.DefaultPluginRegistrationTimeout
	DefaultNRIRequestTimeout      = nri.DefaultPluginRequestTimeout
)

// NRIConfig makes Caisson an NRI-enabled runtime (the Node Resource
// Interface of containerd and CRI-O): plugins see each container as a pod
// sandbox with its one container, and adjust it at its creation.
type NRIConfig struct {
	Enable bool
	// PluginPath holds the plugins Caisson starts itself, each an
	// executable named IDX-NAME ("10-devices"), started in the order of
	// their indexes; PluginConfigPath their configuration files
	// (IDX-NAME.conf, or NAME.conf).
	PluginPath       string
	PluginConfigPath string
	// SocketPath is where plugins that run on their own connect, in a
	// process that stays (the agent); empty: none connect.
	SocketPath string
	// RegistrationTimeout bounds a plugin's registration, RequestTimeout
	// its answer to each event: past them the plugin is disconnected and
	// the event goes on without it, unless the plugin's own failure policy
	// says that the request fails. Zero is NRI's default.
	RegistrationTimeout time.Duration
	RequestTimeout      time.Duration
}

// Validate checks the paths, the plugins' names in PluginPath and the
// timeouts. Errors are *api.FieldError values wrapping api.ErrInvalid.
func (c *NRIConfig) Validate() error {
	if !c.Enable {
		return nil
	}
	var errs fieldErrors
	for field, p := range map[string]string{"plugin_path": c.PluginPath, "plugin_config_path": c.PluginConfigPath} {
		if !filepath.IsAbs(p) {
			errs.add(field, fmt.Sprintf("%q", p), errors.New("want an absolute path"))
		}
	}
	if c.SocketPath != "" && !filepath.IsAbs(c.SocketPath) {
		errs.add("socket", fmt.Sprintf("%q", c.SocketPath), errors.New("want an absolute path, or nothing"))
	}
	if filepath.IsAbs(c.PluginPath) {
		entries, err := os.ReadDir(c.PluginPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs.add("plugin_path", fmt.Sprintf("%q", c.PluginPath), err)
		}
		for _, e := range entries {
			if info, err := e.Info(); err != nil || e.IsDir() || info.Mode()&0o111 == 0 {
				continue
			}
			if _, _, err := nriapi.ParsePluginName(e.Name()); err != nil {
				errs.add("plugin_path", fmt.Sprintf("%q", filepath.Join(c.PluginPath, e.Name())), fmt.Errorf("a plugin's name is IDX-NAME, as 10-devices: %w", err))
			}
		}
	}
	for field, d := range map[string]time.Duration{"registration_timeout": c.RegistrationTimeout, "request_timeout": c.RequestTimeout} {
		if d != 0 && (d < MinTimeout || d > MaxTimeout) {
			errs.add(field, d.String(), fmt.Errorf("want %s to %s", MinTimeout, MaxTimeout))
		}
	}
	return errs.join()
}

// plugins are the executables in PluginPath named as plugins, in the
// order NRI starts them.
func (c *NRIConfig) plugins() []string {
	entries, err := os.ReadDir(c.PluginPath)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries { // sorted by name: by index first
		info, err := e.Info()
		if err != nil || e.IsDir() || info.Mode()&0o111 == 0 {
			continue
		}
		if _, _, err := nriapi.ParsePluginName(e.Name()); err == nil {
			out = append(out, filepath.Join(c.PluginPath, e.Name()))
		}
	}
	return out
}

// NRIRuntime is what the NRI hook needs of the containers' runtime (the
// containerizer): the containers there are, to synchronise a plugin that
// registers, and what a plugin may ask for unsolicited.
type NRIRuntime interface {
	// HookedContainers are the containers that run or have been created.
	HookedContainers(ctx context.Context) ([]containerizer.HookedContainer, error)
	// Update sets a running container's limits through the isolators'
	// live update.
	Update(ctx context.Context, id string, res api.Resources) error
	// Evict kills a container a plugin evicts.
	Evict(ctx context.Context, id, reason string) error
}

// nriHook is the NRI runtime side: one adaptation, started on first use
// (or by StartNRI), whose plugins see every launch.
type nriHook struct {
	cfg     NRIConfig
	log     *slog.Logger
	metrics *nriMetrics

	mu  sync.Mutex // serialises creations: current is the one under way
	rt  NRIRuntime
	a   *nri.Adaptation
	err error // the start's
	// current is the creation whose adjustment the validator checks, and
	// refused what the validator refused of it.
	current *containerizer.CreateRequest
	refused error
}

// nriPluginName is the name of the built-in plugin that checks each
// plugin's part of an adjustment.
const nriPluginName = "caisson"

// NRIHooksName is the hook's name in errors and logs.
const NRIHooksName = "nri"

func (h *nriHook) Name() string { return NRIHooksName }

// start starts the adaptation once: it starts the pre-registered plugins
// and, with a socket, listens for others. h.mu is held.
func (h *nriHook) start() error {
	if h.a != nil || h.err != nil {
		return h.err
	}
	if h.cfg.RegistrationTimeout > 0 {
		nri.SetPluginRegistrationTimeout(h.cfg.RegistrationTimeout)
	}
	if h.cfg.RequestTimeout > 0 {
		nri.SetPluginRequestTimeout(h.cfg.RequestTimeout)
	}
	opts := []nri.Option{
		nri.WithPluginPath(h.cfg.PluginPath), nri.WithPluginConfigPath(h.cfg.PluginConfigPath), nri.WithMetrics(h.metrics),
		nri.WithBuiltinPlugins(&builtin.BuiltinPlugin{Base: nriPluginName, Index: "00", Handlers: builtin.BuiltinHandlers{
			ValidateContainerAdjustment: h.validate,
		}}),
	}
	if h.cfg.SocketPath == "" {
		opts = append(opts, nri.WithDisabledExternalConnections())
	} else {
		// NRI takes the socket's path over, removing what is there: not
		// from a runtime that listens on it (containerd, CRI-O, another
		// agent).
		if conn, err := net.DialTimeout("unix", h.cfg.SocketPath, time.Second); err == nil {
			_ = conn.Close()
			h.err = fmt.Errorf("NRI: another runtime listens on %s (containerd, CRI-O, another agent): set hooks.nri.socket to another path: %w",
				h.cfg.SocketPath, api.ErrUnavailable)
			return h.err
		}
		opts = append(opts, nri.WithSocketPath(h.cfg.SocketPath))
	}
	a, err := nri.New("caisson", "1", h.sync, h.update, opts...)
	if err == nil {
		err = a.Start()
	}
	if err != nil {
		h.err = fmt.Errorf("NRI: %w: %w", err, api.ErrUnavailable)
		return h.err
	}
	h.a = a
	return nil
}

// sync is NRI's SyncFn: a plugin that registers learns every container.
func (h *nriHook) sync(ctx context.Context, cb nri.SyncCB) error {
	if h.rt == nil {
		_, err := cb(ctx, nil, nil)
		return err
	}
	list, err := h.rt.HookedContainers(ctx)
	if err != nil {
		return err
	}
	var pods []*nri.PodSandbox
	var ctrs []*nri.Container
	for _, c := range list {
		pods = append(pods, nriPod(&c.Container, c.Spec))
		state := nriapi.ContainerState_CONTAINER_CREATED
		if c.Running {
			state = nriapi.ContainerState_CONTAINER_RUNNING
		}
		ctrs = append(ctrs, nriContainer(&c.Container, c.Spec, state))
	}
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	h.apply(ctx, updates, nil)
	return nil
}

// update is NRI's UpdateFn: a plugin's unsolicited updates. It returns
// those that failed.
func (h *nriHook) update(ctx context.Context, updates []*nri.ContainerUpdate) ([]*nri.ContainerUpdate, error) {
	return h.apply(ctx, updates, nil), nil
}

// fromNRI marks the context of a plugin's own update: NRI does not tell
// plugins of those, and the hook does not take its lock for them (its
// holder may be waiting for the update).
type fromNRI struct{}

// apply applies plugins' updates of other containers through the
// runtime's live update, and their evictions, and returns the updates
// that failed (logged).
func (h *nriHook) apply(ctx context.Context, updates []*nri.ContainerUpdate, evict []*nri.ContainerEviction) []*nri.ContainerUpdate {
	ctx = context.WithValue(ctx, fromNRI{}, true)
	var failed []*nri.ContainerUpdate
	for _, u := range updates {
		err := errors.New("no runtime to update it")
		if h.rt != nil {
			var res api.Resources
			if res, err = nriUpdate(u); err == nil {
				err = h.rt.Update(ctx, u.GetContainerId(), res)
			}
		}
		if err != nil {
			h.log.Warn("NRI: a plugin's update of a container failed", "container", u.GetContainerId(), "err", err)
			if !u.GetIgnoreFailure() {
				failed = append(failed, u)
			}
		}
	}
	for _, e := range evict {
		if h.rt == nil {
			continue
		}
		if err := h.rt.Evict(ctx, e.GetContainerId(), e.GetReason()); err != nil {
			h.log.Warn("NRI: a plugin's eviction of a container failed", "container", e.GetContainerId(), "err", err)
		}
	}
	return failed
}

// nriUpdate is what of an NRI container update the live update applies:
// the CPU quota over its period, the memory limit and the pids limit.
func nriUpdate(u *nri.ContainerUpdate) (api.Resources, error) {
	var res api.Resources
	r := u.GetLinux().GetResources()
	if r == nil {
		return res, fmt.Errorf("no resources to update: %w", api.ErrInvalid)
	}
	if q, p := r.GetCpu().GetQuota(), r.GetCpu().GetPeriod(); q != nil && p != nil && p.GetValue() > 0 && q.GetValue() > 0 {
		res.CPUs = float64(q.GetValue()) / float64(p.GetValue())
	}
	if l := r.GetMemory().GetLimit(); l != nil {
		res.MemoryBytes = l.GetValue()
	}
	if p := r.GetPids(); p != nil {
		res.PidsLimit = p.GetLimit()
	}
	if res == (api.Resources{}) {
		return res, fmt.Errorf("caisson's live update sets the CPU quota, the memory limit and the pids limit, and the update sets none: %w", api.ErrInvalid)
	}
	return res, nil
}

func (h *nriHook) CreateContainer(ctx context.Context, req *containerizer.CreateRequest) (*containerizer.Adjustment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.start(); err != nil {
		return nil, err
	}
	pod := nriPod(req.Container, req.Spec)
	if err := h.a.RunPodSandbox(ctx, &nri.RunPodSandboxRequest{Pod: pod}); err != nil {
		return nil, fmt.Errorf("NRI RunPodSandbox: %w", err)
	}
	h.current, h.refused = req, nil
	resp, err := h.a.CreateContainer(ctx, &nri.CreateContainerRequest{Pod: pod, Container: nriContainer(req.Container, req.Spec, nriapi.ContainerState_CONTAINER_CREATED)})
	refused := h.refused
	h.current, h.refused = nil, nil
	if err != nil {
		h.endPod(ctx, pod)
		if refused != nil {
			return nil, refused // caisson's own check, which names the plugin
		}
		// A plugin's own refusal comes through ttrpc as an rpc error.
		msg := strings.TrimPrefix(err.Error(), "rpc error: code = Unknown desc = ")
		return nil, fmt.Errorf("an NRI plugin refused the container: %s: %w", msg, api.ErrForbidden)
	}
	adj, err := toAdjustment(resp.GetAdjust())
	if err != nil {
		h.endPod(ctx, pod)
		return nil, err
	}
	h.apply(ctx, resp.GetUpdate(), resp.GetEvict())
	return adj, nil
}

// endPod tells the plugins that a pod whose container was refused is
// gone.
func (h *nriHook) endPod(ctx context.Context, pod *nri.PodSandbox) {
	ctx = context.WithoutCancel(ctx)
	if err := h.a.StopPodSandbox(ctx, &nri.StopPodSandboxRequest{Pod: pod}); err != nil {
		h.log.Warn("NRI StopPodSandbox", "pod", pod.Id, "err", err)
	}
	if err := h.a.RemovePodSandbox(ctx, &nri.RemovePodSandboxRequest{Pod: pod}); err != nil {
		h.log.Warn("NRI RemovePodSandbox", "pod", pod.Id, "err", err)
	}
}

// validate is the built-in plugin's check of the plugins' combined
// adjustment: each plugin's part as the containerizer would check it, so
// that an error names the plugin.
func (h *nriHook) validate(_ context.Context, req *nriapi.ValidateContainerAdjustmentRequest) error {
	cur := h.current
	if cur == nil || cur.Check == nil {
		return nil
	}
	parts, err := splitAdjustment(req.GetAdjust(), req.GetOwners(), req.GetContainer().GetId())
	if err == nil {
		for _, name := range slices.Sorted(maps.Keys(parts)) {
			if err = cur.Check(parts[name]); err != nil {
				err = fmt.Errorf("NRI plugin %s: %w", name, err)
				break
			}
		}
	}
	h.refused = err
	return err
}

func (h *nriHook) PostStart(ctx context.Context, c *containerizer.HookContainer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.a == nil {
		return nil
	}
	pod := nriPod(c, nil)
	ctr := nriContainer(c, nil, nriapi.ContainerState_CONTAINER_CREATED)
	if err := h.a.PostCreateContainer(ctx, &nri.PostCreateContainerRequest{Pod: pod, Container: ctr}); err != nil {
		h.log.Warn("NRI PostCreateContainer", "container", c.ID, "err", err)
	}
	if err := h.a.StartContainer(ctx, &nri.StartContainerRequest{Pod: pod, Container: ctr}); err != nil {
		return fmt.Errorf("NRI StartContainer: %w: %w", err, api.ErrForbidden)
	}
	ctr.State = nriapi.ContainerState_CONTAINER_RUNNING
	if err := h.a.PostStartContainer(ctx, &nri.PostStartContainerRequest{Pod: pod, Container: ctr}); err != nil {
		h.log.Warn("NRI PostStartContainer", "container", c.ID, "err", err)
	}
	return nil
}

// UpdateContainer tells the plugins of a live update before it is
// applied; a plugin may refuse it. Their updates of other containers are
// applied; of this one, ignored (logged): the update under way is the
// one the user asked for.
func (h *nriHook) UpdateContainer(ctx context.Context, c *containerizer.HookContainer, res api.Resources) error {
	if ctx.Value(fromNRI{}) != nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.start(); err != nil {
		return err
	}
	resp, err := h.a.UpdateContainer(ctx, &nri.UpdateContainerRequest{
		Pod: nriPod(c, nil), Container: nriContainer(c, nil, nriapi.ContainerState_CONTAINER_RUNNING), LinuxResources: nriResources(res),
	})
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "rpc error: code = Unknown desc = ")
		return fmt.Errorf("an NRI plugin refused the update: %s: %w", msg, api.ErrForbidden)
	}
	others := slices.DeleteFunc(slices.Clone(resp.GetUpdate()), func(u *nri.ContainerUpdate) bool {
		if u.GetContainerId() == c.ID {
			h.log.Info("NRI: a plugin's change to the update under way is ignored", "container", c.ID)
			return true
		}
		return false
	})
	h.apply(ctx, others, resp.GetEvict())
	return nil
}

func (h *nriHook) PostUpdateContainer(ctx context.Context, c *containerizer.HookContainer, res api.Resources) {
	if ctx.Value(fromNRI{}) != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.a == nil {
		return
	}
	err := h.a.PostUpdateContainer(ctx, &nri.PostUpdateContainerRequest{
		Pod: nriPod(c, nil), Container: nriContainer(c, nil, nriapi.ContainerState_CONTAINER_RUNNING),
	})
	if err != nil {
		h.log.Warn("NRI PostUpdateContainer", "container", c.ID, "err", err)
	}
}

// nriResources is a live update as NRI has it: the CPU quota over the
// standard period, the memory and pids limits (zero fields stay).
func nriResources(res api.Resources) *nri.LinuxResources {
	r := &nri.LinuxResources{}
	if res.CPUs > 0 {
		const period = 100000
		r.Cpu = &nriapi.LinuxCPU{Quota: nriapi.Int64(int64(res.CPUs * period)), Period: nriapi.UInt64(uint64(period))}
	}
	if res.MemoryBytes > 0 {
		r.Memory = &nriapi.LinuxMemory{Limit: nriapi.Int64(res.MemoryBytes)}
	}
	if res.PidsLimit > 0 {
		r.Pids = &nriapi.LinuxPids{Limit: res.PidsLimit}
	}
	return r
}

func (h *nriHook) Removed(ctx context.Context, c *containerizer.HookContainer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.start(); err != nil {
		h.log.Warn("NRI: plugins are not told of a removal", "container", c.ID, "err", err)
		return
	}
	pod := nriPod(c, nil)
	ctr := nriContainer(c, nil, nriapi.ContainerState_CONTAINER_STOPPED)
	resp, err := h.a.StopContainer(ctx, &nri.StopContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		h.log.Warn("NRI StopContainer", "container", c.ID, "err", err)
	} else {
		h.apply(ctx, resp.GetUpdate(), nil)
	}
	if err := h.a.RemoveContainer(ctx, &nri.RemoveContainerRequest{Pod: pod, Container: ctr}); err != nil {
		h.log.Warn("NRI RemoveContainer", "container", c.ID, "err", err)
	}
	h.endPod(ctx, pod)
}

// stop stops the plugins Caisson started and the listener.
func (h *nriHook) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.a != nil {
		h.a.Stop()
		h.a = nil
	}
}

// nriNamespace is the namespace of the pods of containers outside the
// cluster; a task's pod is in its session's.
const nriNamespace = "caisson"

// nriPod is the pod sandbox that c is to NRI: one of its own, named as
// the container, with its labels and annotations.
func nriPod(c *containerizer.HookContainer, spec *specs.Spec) *nri.PodSandbox {
	ns := nriNamespace
	if c.Task != nil && c.Task.Session != "" {
		ns = c.Task.Session
	}
	pod := &nri.PodSandbox{Id: c.ID, Name: c.Name, Uid: c.ID, Namespace: ns, Labels: maps.Clone(c.Labels), Pid: uint32(max(c.Pid, 0))}
	if spec != nil {
		pod.Annotations = maps.Clone(spec.Annotations)
		if spec.Linux != nil {
			pod.Linux = &nri.LinuxPodSandbox{
				CgroupsPath: spec.Linux.CgroupsPath, CgroupParent: parentOf(spec.Linux.CgroupsPath),
				Namespaces: nriapi.FromOCILinuxNamespaces(spec.Linux.Namespaces),
				Resources:  nriapi.FromOCILinuxResources(spec.Linux.Resources, nil),
			}
		}
	}
	return pod
}

func parentOf(cgroupsPath string) string {
	if i := strings.LastIndexByte(cgroupsPath, '/'); i > 0 {
		return cgroupsPath[:i]
	}
	return ""
}

// nriContainer is c as NRI has a container, with what its runtime spec
// says when there is one.
func nriContainer(c *containerizer.HookContainer, spec *specs.Spec, state nriapi.ContainerState) *nri.Container {
	ctr := &nri.Container{
		Id: c.ID, PodSandboxId: c.ID, Name: c.Name, State: state, Labels: maps.Clone(c.Labels), Pid: uint32(max(c.Pid, 0)),
	}
	if spec == nil {
		return ctr
	}
	ctr.Annotations = maps.Clone(spec.Annotations)
	ctr.Mounts = nriapi.FromOCIMounts(spec.Mounts)
	ctr.Hooks = nriapi.FromOCIHooks(spec.Hooks)
	if p := spec.Process; p != nil {
		ctr.Args = slices.Clone(p.Args)
		ctr.Env = slices.Clone(p.Env)
		for _, r := range p.Rlimits {
			ctr.Rlimits = append(ctr.Rlimits, &nriapi.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
	}
	if l := spec.Linux; l != nil {
		ctr.Linux = &nri.LinuxContainer{
			Namespaces: nriapi.FromOCILinuxNamespaces(l.Namespaces), Devices: nriapi.FromOCILinuxDevices(l.Devices),
			Resources: nriapi.FromOCILinuxResources(l.Resources, nil), CgroupsPath: l.CgroupsPath,
		}
		if p := spec.Process; p != nil && p.OOMScoreAdj != nil {
			ctr.Linux.OomScoreAdj = nriapi.Int(*p.OOMScoreAdj)
		}
	}
	return ctr
}

// toAdjustment is the plugins' combined adjustment as the containerizer
// takes it; what Caisson does not apply is an error.
func toAdjustment(a *nriapi.ContainerAdjustment) (*containerizer.Adjustment, error) {
	parts, err := splitAdjustment(a, nil, "")
	if err != nil {
		return nil, err
	}
	if adj := parts[""]; adj != nil {
		return adj, nil
	}
	return &containerizer.Adjustment{}, nil
}

// splitAdjustment is the adjustment a of container id, split by the
// plugin that made each part (owners; without them, one part under "").
// A part Caisson does not apply is an error that names its plugin.
func splitAdjustment(a *nriapi.ContainerAdjustment, owners *nriapi.OwningPlugins, id string) (map[string]*containerizer.Adjustment, error) {
	named := owners != nil
	if !named {
		owners = &nriapi.OwningPlugins{} // owns nothing: its lookups find no one
	}
	parts := map[string]*containerizer.Adjustment{}
	part := func(owner string, ok bool) (string, *containerizer.Adjustment) {
		if !named || !ok {
			owner = ""
		}
		p := parts[owner]
		if p == nil {
			p = &containerizer.Adjustment{}
			parts[owner] = p
		}
		return owner, p
	}
	refuse := func(owner string, ok bool, what string) error {
		who := "an NRI plugin"
		if named && ok {
			who = "NRI plugin " + owner
		}
		return fmt.Errorf("%s sets %s, which caisson does not apply: %w", who, what, api.ErrInvalid)
	}
	if a == nil {
		return parts, nil
	}
	for k, v := range a.GetAnnotations() {
		key, remove := nriapi.IsMarkedForRemoval(k)
		_, p := part(owners.AnnotationOwner(id, key))
		if remove {
			p.RemoveAnnotations = append(p.RemoveAnnotations, key)
			continue
		}
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[key] = v
	}
	for _, m := range a.GetMounts() {
		dst, remove := nriapi.IsMarkedForRemoval(m.GetDestination())
		_, p := part(owners.MountOwner(id, dst))
		if remove {
			p.RemoveMounts = append(p.RemoveMounts, dst)
			continue
		}
		p.Mounts = append(p.Mounts, m.ToOCI(nil))
	}
	for _, kv := range a.GetEnv() {
		key, remove := nriapi.IsMarkedForRemoval(kv.GetKey())
		_, p := part(owners.EnvOwner(id, key))
		if remove {
			p.RemoveEnv = append(p.RemoveEnv, key)
			continue
		}
		if p.Env == nil {
			p.Env = map[string]string{}
		}
		p.Env[key] = kv.GetValue()
	}
	if h := a.GetHooks(); h != nil {
		_, p := part(owners.HooksOwner(id))
		p.OCIHooks = ociHooksOf(h)
	}
	for _, r := range a.GetRlimits() {
		_, p := part(owners.RlimitOwner(id, r.GetType()))
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: r.GetType(), Hard: r.GetHard(), Soft: r.GetSoft()})
	}
	if len(a.GetCDIDevices()) > 0 {
		o, ok := owners.CdiDeviceOwner(id, a.GetCDIDevices()[0].GetName())
		return nil, refuse(o, ok, "CDI devices")
	}
	if len(a.GetArgs()) > 0 {
		o, ok := owners.ArgsOwner(id)
		return nil, refuse(o, ok, "the command's arguments")
	}
	l := a.GetLinux()
	if l == nil {
		return parts, nil
	}
	for _, d := range l.GetDevices() {
		path, remove := nriapi.IsMarkedForRemoval(d.GetPath())
		o, ok := owners.DeviceOwner(id, path)
		if remove {
			return nil, refuse(o, ok, "the removal of device "+path)
		}
		_, p := part(o, ok)
		p.Devices = append(p.Devices, d.ToOCI())
	}
	if v := l.GetOomScoreAdj(); v != nil {
		_, p := part(owners.OomScoreAdjOwner(id))
		n := int(v.GetValue())
		p.OOMScoreAdj = &n
	}
	// unsupported is a field Caisson does not apply: an error when set,
	// naming the plugin that set it.
	type unsupported struct {
		set   bool
		owner func(string) (string, bool)
		what  string
	}
	refuseAny := func(us []unsupported) error {
		for _, u := range us {
			if u.set {
				o, ok := u.owner(id)
				return refuse(o, ok, u.what)
			}
		}
		return nil
	}
	if err := refuseAny([]unsupported{
		{l.GetCgroupsPath() != "", owners.CgroupsPathOwner, "the cgroup path"},
		{l.GetIoPriority() != nil, owners.IOPriorityOwner, "the I/O priority"},
		{l.GetSeccompPolicy() != nil, owners.SeccompPolicyOwner, "the seccomp policy"},
		{l.GetScheduler() != nil, owners.LinuxSchedulerOwner, "the scheduler policy"},
		{setRdt(l.GetRdt()), owners.RdtClosIDOwner, "RDT"},
		{l.GetMemoryPolicy() != nil, owners.MemoryPolicyOwner, "the memory policy"},
	}); err != nil {
		return nil, err
	}
	if len(l.GetNamespaces()) > 0 {
		o, ok := owners.NamespaceOwner(id, l.GetNamespaces()[0].GetType())
		return nil, refuse(o, ok, "namespaces")
	}
	for k := range l.GetSysctl() {
		o, ok := owners.SysctlOwner(id, k)
		return nil, refuse(o, ok, "sysctl "+k)
	}
	for k := range l.GetNetDevices() {
		o, ok := owners.LinuxNetDeviceOwner(id, k)
		return nil, refuse(o, ok, "network device "+k)
	}
	r := l.GetResources()
	if r == nil {
		return parts, nil
	}
	res := func(owner string, ok bool) *containerizer.ResourcesAdjustment {
		_, p := part(owner, ok)
		if p.Resources == nil {
			p.Resources = &containerizer.ResourcesAdjustment{}
		}
		return p.Resources
	}
	if c := r.GetCpu(); c != nil {
		if v := c.GetShares(); v != nil {
			res(owners.CPUSharesOwner(id)).CPUShares = &v.Value
		}
		if c.GetCpus() != "" {
			res(owners.CPUSetCPUsOwner(id)).Cpus = c.GetCpus()
		}
		if c.GetMems() != "" {
			res(owners.CPUSetMemsOwner(id)).Mems = c.GetMems()
		}
		if err := refuseAny([]unsupported{
			{c.GetQuota() != nil, owners.CPUQuotaOwner, "the CPU quota (the scheduler's grant)"},
			{c.GetPeriod() != nil, owners.CPUPeriodOwner, "the CPU period"},
			{c.GetRealtimeRuntime() != nil, owners.CPURealtimeRuntimeOwner, "the realtime runtime"},
			{c.GetRealtimePeriod() != nil, owners.CPURealtimePeriodOwner, "the realtime period"},
		}); err != nil {
			return nil, err
		}
	}
	if m := r.GetMemory(); m != nil {
		if v := m.GetLimit(); v != nil {
			res(owners.MemLimitOwner(id)).MemoryLimit = &v.Value
		}
		if err := refuseAny([]unsupported{
			{m.GetReservation() != nil, owners.MemReservationOwner, "the memory reservation"},
			{m.GetSwap() != nil, owners.MemSwapLimitOwner, "the swap limit"},
			{m.GetKernel() != nil, owners.MemKernelLimitOwner, "the kernel memory limit"},
			{m.GetKernelTcp() != nil, owners.MemTCPLimitOwner, "the kernel TCP memory limit"},
			{m.GetSwappiness() != nil, owners.MemSwappinessOwner, "swappiness"},
			{m.GetDisableOomKiller() != nil, owners.MemDisableOomKillerOwner, "the OOM killer"},
			{m.GetUseHierarchy() != nil, owners.MemUseHierarchyOwner, "the memory hierarchy"},
		}); err != nil {
			return nil, err
		}
	}
	if p := r.GetPids(); p != nil {
		v := p.GetLimit()
		res(owners.PidsLimitOwner(id)).PidsLimit = &v
	}
	for _, hp := range r.GetHugepageLimits() {
		rr := res(owners.HugepageLimitOwner(id, hp.GetPageSize()))
		rr.HugepageLimits = append(rr.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: hp.GetPageSize(), Limit: hp.GetLimit()})
	}
	for k := range r.GetUnified() {
		o, ok := owners.CgroupsUnifiedOwner(id, k)
		return nil, refuse(o, ok, "cgroup file "+k)
	}
	if r.GetBlockioClass() != nil {
		o, ok := owners.BlockioClassOwner(id)
		return nil, refuse(o, ok, "a block I/O class")
	}
	if r.GetRdtClass() != nil {
		o, ok := owners.RdtClassOwner(id)
		return nil, refuse(o, ok, "an RDT class")
	}
	if len(r.GetDevices()) > 0 {
		return nil, refuse("", false, "device cgroup rules (a device's node brings its rule)")
	}
	return parts, nil
}

// ociHooksOf is NRI's hooks as the runtime spec has them.
func ociHooksOf(h *nriapi.Hooks) *specs.Hooks {
	conv := func(in []*nriapi.Hook) []specs.Hook {
		var out []specs.Hook
		for _, x := range in {
			out = append(out, x.ToOCI())
		}
		return out
	}
	return &specs.Hooks{
		//lint:ignore SA1019 deprecated by the runtime spec, and still what runc and crun run
		Prestart: conv(h.GetPrestart()), CreateRuntime: conv(h.GetCreateRuntime()), CreateContainer: conv(h.GetCreateContainer()),
		StartContainer: conv(h.GetStartContainer()), Poststart: conv(h.GetPoststart()), Poststop: conv(h.GetPoststop()),
	}
}

// nriLogger sends NRI's log to caisson's. NRI says at info level what
// caisson's users need only when they debug; its warnings (a plugin that
// failed to start, or was dropped) and errors stay what they are.
type nriLogger struct{ log *slog.Logger }

func (l nriLogger) Debugf(_ context.Context, format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l nriLogger) Infof(_ context.Context, format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l nriLogger) Warnf(_ context.Context, format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...))
}

func (l nriLogger) Errorf(_ context.Context, format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

var _ nrilog.Logger = nriLogger{}

// setRdt reports whether rdt sets anything: NRI makes an empty one for
// every adjustment that touches the container's Linux part.
func setRdt(rdt *nriapi.LinuxRdt) bool {
	return rdt.GetClosId() != nil || rdt.GetSchemata() != nil || rdt.GetEnableMonitoring() != nil || rdt.GetRemove()
}
