// Package isolator is the gpu/nvidia isolator: it gives a container the
// NVIDIA GPUs it asked for (api.ContainerSpec.GPUs) and nothing else.
//
// Prepare allocates the GPUs (gpu/manager: best-linked free healthy set,
// or MIG devices, checkpointed before the container exists), then injects
// them through CDI (gpu/cdi) into a scratch spec and hands the result to
// the containerizer: the GPUs' device nodes and the control nodes
// (nvidiactl, nvidia-modeset, nvidia-uvm, nvidia-uvm-tools), one allow
// rule for each on top of the base spec's default deny, the driver's
// libraries and binaries, and NVIDIA_VISIBLE_DEVICES (the granted UUIDs)
// and CUDA_VISIBLE_DEVICES (0..n-1: the container sees only its own GPUs).
// A MIG device brings its GPU's node and the access capabilities of its
// GPU and compute instances (/dev/nvidia-caps/nvidia-cap<N>), never those
// of another instance nor config or monitor; with MIG devices both
// variables list the granted UUIDs (CUDA takes MIG-… UUIDs). A container
// that asked for none gets NVIDIA_VISIBLE_DEVICES=void on a host with
// GPUs, whatever its image or its user set: only --gpus grants a GPU.
//
// The device cgroup is set by the OCI runtime when it creates the
// container, from these rules; this isolator never changes a running
// container's device rules, so containerd/cgroups' cgroup v2 device filter
// (which stacks eBPF programs on update) is not involved.
//
// # NUMA affinity
//
// The granted GPUs' NUMA nodes and the CPUs nearest them (NVML's CPU
// affinity, or the PCI device's local_cpulist) are annotated
// (caisson.gpu/numa-nodes, caisson.gpu/cpus, and caisson.gpu/uuids) and,
// under the best-effort policy (Config.NUMAAffinity, the default; caisson's
// --gpu-numa-affinity), become the container's cpuset, as the kubelet's
// best-effort topology manager aligns a pod's CPUs with its devices:
//
//	cpuset.cpus = the GPUs' nearest CPUs ∩ the CPUs a container may use here
//	              (or, when the affinity is unknown, the CPUs of the GPUs' NUMA nodes)
//	cpuset.mems = the GPUs' NUMA nodes ∩ the memory nodes a container may use
//	              (or, when none is one, the nodes of the CPUs chosen)
//
// What a container may use is resources.DetectCPUSet: online CPUs and NUMA
// nodes with CPUs and memory (never a CPU-less node, such as an AC922's GPU
// memory, 252-255), within the agent's own Cpus_allowed_list and
// Mems_allowed_list and cgroup cpuset, and within the cpuset of the
// containers' parent cgroup, which the kernel requires of a child's
// (cgroup v1 refuses a wider one; on v2 runc enables the cpuset controller
// down the path). The cpuset reaches the runtime as linux.resources.cpu.cpus
// and .mems, through a SpecOpt applied after every isolator's resources:
// a cpuset already in the spec wins and is left whole (caisson run has no
// flag for one today; an isolator or a future --cpuset-cpus would set it).
// When no CPU is left, or the host has no cpuset controller, or the host
// cannot be read, nothing is set and the container starts anyway: the hint
// never fails a launch. When CPUs are left but no memory node, only
// cpuset.cpus is set (mems stay the parent's). Annotation
// caisson.gpu/cpuset says what was done ("cpus 0-1, mems 0") or why not
// ("not applied: …", "cpus 48-63; mems not applied: …"), and the log says
// it too (level info). Policy none sets no cpuset and no
// caisson.gpu/cpuset annotation.
package isolator

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/gpu/cdi"
	"github.com/caisson/caisson/gpu/manager"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
	"github.com/caisson/caisson/resources"
)

// Name is the isolator's name in checkpoints.
const Name = "gpu/nvidia"

// Annotations the isolator sets on a container with GPUs.
const (
	AnnotationUUIDs     = "caisson.gpu/uuids"
	AnnotationNUMANodes = "caisson.gpu/numa-nodes"
	AnnotationCPUs      = "caisson.gpu/cpus"
	// AnnotationCPUSet says which cpuset the container got from its GPUs
	// ("cpus 0-1, mems 0") or why it got none ("not applied: …").
	AnnotationCPUSet = "caisson.gpu/cpuset"
)

// NUMA affinity policies (Config.NUMAAffinity).
const (
	// NUMABestEffort confines a container with GPUs to the CPUs and memory
	// nodes nearest them where this host has some to give, and leaves its
	// cpuset alone where it has none (the container still starts).
	NUMABestEffort = "best-effort"
	// NUMANone never sets a cpuset.
	NUMANone = "none"
)

// NUMAPolicies are the NUMA affinity policies, the default first.
var NUMAPolicies = []string{NUMABestEffort, NUMANone}

// Config configures the isolator.
type Config struct {
	// NUMAAffinity is NUMABestEffort (the default when empty) or NUMANone.
	NUMAAffinity string
	// ProcFS and SysFS are where the host's /proc and /sys are read for
	// the CPUs and memory nodes a container may use (default /proc, /sys).
	ProcFS, SysFS string
	// CgroupParent is the cgroup containers are made under (the cgroups
	// isolator's Parent): a container's cpuset must lie within its.
	CgroupParent string
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Validate checks the policy.
func (c Config) Validate() error {
	if c.NUMAAffinity != "" && !slices.Contains(NUMAPolicies, c.NUMAAffinity) {
		return fmt.Errorf("gpu NUMA affinity policy %q: want one of %s: %w", c.NUMAAffinity, strings.Join(NUMAPolicies, ", "), api.ErrInvalid)
	}
	return nil
}

// Isolator is the gpu/nvidia isolator.
type Isolator struct {
	m      *manager.Manager
	policy string
	// hostCPUSet reads what a container's cpuset may hold on this host.
	hostCPUSet func(context.Context) (*resources.CPUSet, error)
	log        *slog.Logger
}

// New returns the isolator over a GPU manager. It fails with an error
// wrapping api.ErrInvalid for a bad Config.
func New(m *manager.Manager, cfg Config) (*Isolator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NUMAAffinity == "" {
		cfg.NUMAAffinity = NUMABestEffort
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host := resources.Config{ProcFS: cfg.ProcFS, SysFS: cfg.SysFS, Logger: cfg.Logger}
	return &Isolator{
		m:      m,
		policy: cfg.NUMAAffinity,
		hostCPUSet: func(ctx context.Context) (*resources.CPUSet, error) {
			return resources.DetectCPUSet(ctx, host, cfg.CgroupParent)
		},
		log: cfg.Logger,
	}, nil
}

// Name implements isolators.Isolator.
func (iso *Isolator) Name() string { return Name }

// gpuNode matches the device nodes of one GPU or of one MIG instance's
// capability, as a container sees them; the control nodes (nvidiactl,
// nvidia-uvm, nvidia-modeset) are shared, not owned.
var gpuNode = regexp.MustCompile(`^/dev/(nvidia[0-9]+|nvidia-caps/nvidia-cap[0-9]+)$`)

// OwnsDevice reports whether d is a GPU's or a MIG instance's node, which
// a container gets only through this isolator's grant.
func (iso *Isolator) OwnsDevice(d specs.LinuxDevice) bool { return gpuNode.MatchString(d.Path) }

// Prepare allocates and injects the requested GPUs. On error nothing stays
// allocated.
func (iso *Isolator) Prepare(ctx context.Context, req *isolators.PrepareRequest, resp *isolators.PrepareResponse) (err error) {
	if req.Spec.GPUs == nil {
		inv, err := iso.m.Inventory(ctx, false)
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("GPU inventory: %w", err) // the launch is cancelled
		}
		if err != nil {
			// A container that wants no GPU does not fail for it.
			iso.log.Warn("GPU inventory unavailable", "err", err)
			return nil
		}
		if len(inv.Devices) > 0 {
			resp.Env = append(resp.Env, "NVIDIA_VISIBLE_DEVICES=void")
		}
		return nil
	}
	grant, err := iso.m.Allocate(ctx, req.ContainerID, *req.Spec.GPUs)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rerr := iso.m.Release(req.ContainerID); rerr != nil {
				iso.log.Error("release GPUs after a failed prepare", "container", req.ContainerID, "err", rerr)
			}
		}
	}()
	majors, err := iso.m.Majors()
	if err != nil {
		return err
	}
	caps, err := iso.m.MIGMinors()
	if err != nil {
		return err
	}
	perGPU, _ := cdi.Nodes(&gpu.Inventory{Devices: grant.Devices}, iso.m.DevRoot(), majors, caps)
	for _, d := range grant.Devices {
		if !d.MIG {
			if err := checkNodes(perGPU[d.UUID], fmt.Sprintf("GPU %d (%s)", d.Index, d.UUID)); err != nil {
				return err
			}
			continue
		}
		for _, mig := range d.MIGDevices {
			what := fmt.Sprintf("MIG device %d:%d (%s)", d.Index, mig.Index, mig.UUID)
			nodes, ok := perGPU[mig.UUID]
			if !ok {
				return fmt.Errorf("%s: the nvidia-caps capabilities of GPU instance %d and compute instance %d are unknown (no nvidia-caps major in /proc/devices, or mig-minors does not list them): %w",
					what, mig.GPUInstance, mig.ComputeInstance, api.ErrUnavailable)
			}
			if err := checkNodes(nodes, what); err != nil {
				return err
			}
		}
	}
	scratch := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Resources: &specs.LinuxResources{}}}
	if err := cdi.Inject(iso.m.CDIDir(), scratch, grant.UUIDs()); err != nil {
		return err
	}
	resp.Devices = append(resp.Devices, scratch.Linux.Devices...)
	resp.DeviceRules = append(resp.DeviceRules, scratch.Linux.Resources.Devices...)
	resp.Mounts = append(resp.Mounts, scratch.Mounts...)
	for _, e := range scratch.Process.Env {
		if k, _, _ := strings.Cut(e, "="); k != "NVIDIA_VISIBLE_DEVICES" && k != "CUDA_VISIBLE_DEVICES" {
			resp.Env = append(resp.Env, e)
		}
	}
	visible := strings.Join(grant.UUIDs(), ",")
	cuda := visible // CUDA takes MIG-… UUIDs, and GPU-… ones beside them
	if !grant.MIG() {
		ordinals := make([]string, len(grant.Devices))
		for i := range ordinals {
			ordinals[i] = strconv.Itoa(i)
		}
		cuda = strings.Join(ordinals, ",")
	}
	resp.Env = append(resp.Env, "NVIDIA_VISIBLE_DEVICES="+visible, "CUDA_VISIBLE_DEVICES="+cuda)
	if resp.Annotations == nil {
		resp.Annotations = map[string]string{}
	}
	resp.Annotations[AnnotationUUIDs] = visible
	if len(grant.NUMANodes) > 0 {
		nodes := make([]string, len(grant.NUMANodes))
		for i, n := range grant.NUMANodes {
			nodes[i] = strconv.Itoa(n)
		}
		resp.Annotations[AnnotationNUMANodes] = strings.Join(nodes, ",")
	}
	if len(grant.CPUs) > 0 {
		resp.Annotations[AnnotationCPUs] = resources.FormatList(grant.CPUs)
	}
	if h := scratch.Hooks; h != nil {
		resp.SpecOpts = append(resp.SpecOpts, oci.WithHooks(h)) // nvidia-ctk's update-ldcache and create-symlinks, when its spec is the base
	}
	if iso.policy == NUMABestEffort {
		opt, err := iso.cpuset(ctx, grant, iso.log.With("container", req.ContainerID))
		if err != nil {
			return err
		}
		resp.SpecOpts = append(resp.SpecOpts, opt)
	}
	return nil
}

// cpuset is the SpecOpt that gives a container the cpuset nearest its
// GPUs (see the package comment), or annotates why it gets none. It fails
// only when ctx is done: the launch is cancelled.
func (iso *Isolator) cpuset(ctx context.Context, grant *manager.Grant, log *slog.Logger) (oci.SpecOpt, error) {
	var h hint
	if host, err := iso.hostCPUSet(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the host's CPUs and memory nodes: %w", err)
		}
		h.why = "the host's CPUs and memory nodes cannot be read: " + err.Error()
	} else {
		h = cpusetHint(grant, host)
	}
	return func(s *specs.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		note := h.String()
		if c := s.Linux.Resources.CPU; c != nil && (c.Cpus != "" || c.Mems != "") {
			note = fmt.Sprintf("not applied: the container asks for its own cpuset (cpus %q, mems %q)", c.Cpus, c.Mems)
		} else if len(h.cpus) > 0 {
			if s.Linux.Resources.CPU == nil {
				s.Linux.Resources.CPU = &specs.LinuxCPU{}
			}
			s.Linux.Resources.CPU.Cpus = resources.FormatList(h.cpus)
			s.Linux.Resources.CPU.Mems = resources.FormatList(h.mems)
		}
		s.Annotations[AnnotationCPUSet] = note
		level := slog.LevelDebug
		if strings.HasPrefix(note, "not applied") || h.memsWhy != "" {
			level = slog.LevelInfo // the best effort fell short
		}
		log.Log(context.Background(), level, "gpu numa affinity", "cpuset", note,
			"gpu_numa_nodes", formatIDs(grant.NUMANodes), "gpu_cpus", formatIDs(grant.CPUs))
		return nil
	}, nil
}

// hint is the cpuset a grant gets on a host: cpus (and mems, which may be
// empty: then left to the runtime, the parent's), or why none (why) or
// why no mems (memsWhy).
type hint struct {
	cpus, mems   []int
	why, memsWhy string
}

// String is the caisson.gpu/cpuset annotation.
func (h hint) String() string {
	switch {
	case len(h.cpus) == 0:
		return "not applied: " + h.why
	case h.memsWhy != "":
		return "cpus " + resources.FormatList(h.cpus) + "; mems not applied: " + h.memsWhy
	}
	return "cpus " + resources.FormatList(h.cpus) + ", mems " + resources.FormatList(h.mems)
}

// cpusetHint computes the best-effort cpuset of a grant on a host, purely.
func cpusetHint(g *manager.Grant, host *resources.CPUSet) hint {
	if host.Unavailable != "" {
		return hint{why: host.Unavailable}
	}
	near, from := g.CPUs, "CPU affinity"
	if len(near) == 0 {
		for _, n := range host.Nodes {
			if slices.Contains(g.NUMANodes, n.ID) {
				near = append(near, n.CPUs...)
			}
		}
		slices.Sort(near)
		near, from = slices.Compact(near), "NUMA nodes' CPUs"
	}
	if len(near) == 0 {
		why := "the granted GPUs' CPU affinity and NUMA nodes are unknown"
		if len(g.NUMANodes) > 0 {
			why = fmt.Sprintf("the granted GPUs' CPU affinity is unknown and their NUMA nodes (%s) have no CPUs on this host", formatIDs(g.NUMANodes))
		}
		return hint{why: why}
	}
	var h hint
	h.cpus = resources.Intersect(near, host.CPUs)
	if len(h.cpus) == 0 {
		h.why = fmt.Sprintf("none of the CPUs nearest the granted GPUs (%s: %s) is one a container may use on this host (%s)",
			from, resources.FormatList(near), formatIDs(host.CPUs))
		return h
	}
	h.mems = resources.Intersect(g.NUMANodes, host.Mems)
	if len(h.mems) == 0 {
		// A GPU's own node may be CPU-less (an AC922's GPU memory) or not
		// on this host: the memory nearest is that of the CPUs chosen.
		h.mems = resources.Intersect(host.NodesOf(h.cpus), host.Mems)
	}
	if len(h.mems) == 0 {
		h.memsWhy = fmt.Sprintf("neither the granted GPUs' NUMA nodes (%s) nor those of CPUs %s are memory nodes a container may use on this host (%s)",
			formatIDs(g.NUMANodes), resources.FormatList(h.cpus), formatIDs(host.Mems))
	}
	return h
}

// formatIDs lists ids, or says none.
func formatIDs(ids []int) string {
	if len(ids) == 0 {
		return "none"
	}
	return resources.FormatList(ids)
}

// checkNodes makes sure the device nodes of a granted GPU or MIG device
// (what names it) are still there and are what the inventory says: a node
// that vanished (driver unloaded, node removed) fails the launch instead of
// starting a container without its GPU.
func checkNodes(nodes []cdi.Node, what string) error {
	for _, n := range nodes {
		var st unix.Stat_t
		if err := unix.Stat(n.Path, &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: its device node %s is missing (driver unloaded or node removed; a refresh of the GPU inventory finds the GPUs again): %w",
					what, n.Path, api.ErrNotFound)
			}
			return fmt.Errorf("%s: %w", what, &os.PathError{Op: "stat", Path: n.Path, Err: err})
		}
		dev := uint64(st.Rdev) // int32 on darwin
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || int64(unix.Major(dev)) != n.Major || int64(unix.Minor(dev)) != n.Minor {
			return fmt.Errorf("%s: %s is not the character device %d:%d: %w", what, n.Path, n.Major, n.Minor, api.ErrInvalid)
		}
	}
	return nil
}

// Cleanup frees the container's GPUs.
func (iso *Isolator) Cleanup(_ context.Context, req *isolators.CleanupRequest) error {
	return iso.m.Release(req.ContainerID)
}

// Recover frees the GPUs of containers that are gone.
func (iso *Isolator) Recover(_ context.Context, req *isolators.RecoverRequest) error {
	live := map[string]bool{}
	for _, c := range req.Containers {
		live[c.ID] = true
	}
	return iso.m.Reconcile(func(id string) bool { return live[id] })
}

// withoutGPUs reports whether a container's spec says it was given no
// GPU: Prepare annotates every container it gives GPUs.
func withoutGPUs(spec *specs.Spec) bool {
	return spec != nil && spec.Annotations[AnnotationUUIDs] == ""
}

// Status lists the GPUs the container holds; a GPU in MIG mode with the
// MIG devices it holds.
func (iso *Isolator) Status(ctx context.Context, req *isolators.StatusRequest, resp *isolators.StatusResponse) error {
	if withoutGPUs(req.Spec) {
		return nil // no state to read for most containers
	}
	held, err := iso.m.Held(ctx, req.ContainerID)
	if err != nil {
		return err
	}
	for _, d := range held {
		resp.GPUs = append(resp.GPUs, d.GPU)
	}
	return nil
}

// Usage reports the counters of the GPUs and MIG devices the container
// holds (a MIG device's are its own: memory; the rest is its GPU's and
// left out). GPUs are not shared, so a GPU's counters are its holder's.
func (iso *Isolator) Usage(ctx context.Context, req *isolators.UsageRequest, u *api.Usage) error {
	if withoutGPUs(req.Spec) {
		return nil
	}
	held, err := iso.m.Held(ctx, req.ContainerID)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		return fmt.Errorf("container %s holds no GPU: %w", req.ContainerID, api.ErrNotFound)
	}
	grant := &manager.Grant{Devices: held}
	uuids := grant.UUIDs()
	index := map[string]int{}
	for _, d := range held {
		index[d.UUID] = d.Index
		for _, mig := range d.MIGDevices {
			index[mig.UUID] = d.Index
		}
	}
	stats, err := iso.m.Stats(ctx, uuids...)
	if err != nil {
		return err
	}
	for _, uuid := range uuids {
		gu := api.GPUUsage{UUID: uuid, Index: index[uuid]}
		for _, s := range stats {
			if s.UUID == uuid {
				gu = s
				gu.Index = index[uuid]
			}
		}
		u.GPUs = append(u.GPUs, gu)
	}
	return nil
}

var (
	_ isolators.Preparer       = (*Isolator)(nil)
	_ isolators.DeviceOwner    = (*Isolator)(nil)
	_ isolators.Cleaner        = (*Isolator)(nil)
	_ isolators.Recoverer      = (*Isolator)(nil)
	_ isolators.StatusReporter = (*Isolator)(nil)
	_ isolators.UsageReporter  = (*Isolator)(nil)
)
