package cgroups

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
)

// Name is the isolator's name, the same on cgroup v1 and v2 so that a
// checkpoint written on one still names this isolator.
const Name = "cgroups/all"

// Defaults of Config.
const (
	DefaultParent     = "/caisson"
	DefaultMountpoint = "/sys/fs/cgroup"
)

var (
	_ isolators.Preparer        = (*Isolator)(nil)
	_ isolators.StartedIsolator = (*Isolator)(nil)
	_ isolators.Watcher         = (*Isolator)(nil)
	_ isolators.Updater         = (*Isolator)(nil)
	_ isolators.UsageReporter   = (*Isolator)(nil)
	_ isolators.StatusReporter  = (*Isolator)(nil)
	_ isolators.Cleaner         = (*Isolator)(nil)
	_ isolators.Recoverer       = (*Isolator)(nil)
)

// Config configures the isolator.
type Config struct {
	// Parent is the cgroup under which every container gets its own, like
	// Docker's --cgroup-parent: a container's cgroup is Parent/<id>. It must
	// be absolute and not "/". Default DefaultParent.
	Parent string
	// Mode forces cgroup v1 or v2; Auto (the zero value) detects the host's.
	Mode Mode
	// Mountpoint is where the cgroup filesystems are mounted: the v1
	// hierarchies below it, or the cgroup2 filesystem itself on v2. Default
	// DefaultMountpoint.
	Mountpoint string
	// HostCPUs is the number of CPUs a container may ask for at most; 0 means
	// runtime.NumCPU().
	HostCPUs int
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Isolator limits a container's CPU, memory and tasks with cgroups, reports
// what it uses and what it hit, resizes it, and removes what the runtime
// left. The runtime creates the cgroup from the spec that Prepare describes.
type Isolator struct {
	parent     string
	mountpoint string
	host       Host
	cpus       int
	log        *slog.Logger
}

// CheckParent refuses a parent cgroup that New would refuse: it must be a
// clean absolute path below the root. Errors wrap api.ErrInvalid.
func CheckParent(parent string) error {
	if !strings.HasPrefix(parent, "/") || path.Clean(parent) != parent || parent == "/" || strings.Contains(parent, ":") {
		return fmt.Errorf("cgroup parent %q is not a clean absolute path below the root: %w", parent, api.ErrInvalid)
	}
	return nil
}

// New returns an isolator for the host's cgroups. It fails with an error
// wrapping api.ErrUnavailable where there are none, and api.ErrInvalid for a
// bad Config.
func New(cfg Config) (*Isolator, error) {
	if cfg.Parent == "" {
		cfg.Parent = DefaultParent
	}
	if err := CheckParent(cfg.Parent); err != nil {
		return nil, err
	}
	if cfg.Mountpoint == "" {
		cfg.Mountpoint = DefaultMountpoint
	}
	if cfg.Mode != Auto && cfg.Mode != V1 && cfg.Mode != V2 {
		return nil, fmt.Errorf("cgroup mode %v: %w", cfg.Mode, api.ErrInvalid)
	}
	if cfg.HostCPUs <= 0 {
		cfg.HostCPUs = runtime.NumCPU()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, err := detect(cfg.Mode, cfg.Mountpoint)
	if err != nil {
		return nil, err
	}
	return &Isolator{
		parent:     cfg.Parent,
		mountpoint: cfg.Mountpoint,
		host:       host,
		cpus:       cfg.HostCPUs,
		log:        cfg.Logger.With("isolator", Name, "cgroup", host.Mode.String()),
	}, nil
}

// Name returns "cgroups/all".
func (i *Isolator) Name() string { return Name }

// Host returns what the isolator detected about the host.
func (i *Isolator) Host() Host { return i.host }

// Path returns the cgroup of container id: Parent/id.
func (i *Isolator) Path(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	return i.parent + "/" + id, nil
}

// cgroupPath is the cgroup of container id: the spec's cgroupsPath when it
// is a cgroupfs path below the root that ends in the id (the runtime used
// it, and a Parent changed since does not lose the container), else
// Parent/id.
func (i *Isolator) cgroupPath(id string, spec *specs.Spec) (string, error) {
	p, err := i.Path(id)
	if err != nil {
		return "", err
	}
	if spec != nil && spec.Linux != nil && usablePath(spec.Linux.CgroupsPath) && path.Base(spec.Linux.CgroupsPath) == id {
		return spec.Linux.CgroupsPath, nil
	}
	return p, nil
}

// usablePath accepts clean absolute cgroupfs paths below the root; it refuses
// the systemd form ("slice:prefix:name") and the root itself.
func usablePath(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p && p != "/" && !strings.Contains(p, ":")
}

func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("container id %q cannot name a cgroup: %w", id, api.ErrInvalid)
	}
	return nil
}

// Prepare validates the request's resources and describes the container's
// cgroup: CgroupsPath Parent/<id> and the SpecResources of its limits, and
// on v2 a cgroup namespace.
func (i *Isolator) Prepare(_ context.Context, req *isolators.PrepareRequest, resp *isolators.PrepareResponse) error {
	p, err := i.Path(req.ContainerID)
	if err != nil {
		return err
	}
	if err := Validate(req.Spec.Resources, i.cpus); err != nil {
		return err
	}
	resp.CgroupsPath = p
	resp.Resources = SpecResources(i.host, req.Spec.Resources)
	if r := resp.Resources; r != nil && r.CPU != nil && r.CPU.Quota != nil && *r.CPU.Quota < DeferQuotaBelow {
		// The runtime's init would run under the quota: see DeferQuotaBelow.
		resp.Annotations = map[string]string{AnnotationCPUQuota: strconv.FormatInt(*r.CPU.Quota, 10)}
		quota, period := startQuota(*r.CPU.Quota), uint64(StartPeriod)
		r.CPU.Quota, r.CPU.Period = &quota, &period
	}
	if i.host.Mode == V2 {
		// Without one, the runtime's cgroup2 mount at /sys/fs/cgroup is the
		// host's whole hierarchy, not the container's cgroup.
		resp.Namespaces = append(resp.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return nil
}

// DeferQuotaBelow is the CFS quota, in microseconds per CFSPeriod, below
// which the runtime makes the container's cgroup with a long period, and
// Started puts CFSPeriod back once the container's process runs. The
// runtime's init process runs in the container's cgroup from the create on
// (namespaces, mounts, seccomp, the exec of the container's process) and
// spends 10-25 ms of CPU there; under a small quota per 100 ms it is
// throttled for whole periods, and a launch with --cpus 0.1 took 160-250 ms
// where one with --cpus 1 took 45-65 ms. Under the same share of a
// StartPeriod the init's CPU fits in the first period. This costs no
// runtime call: the runtime creates and starts the container in one.
const DeferQuotaBelow = CFSPeriod / 2

// StartPeriod is the CFS period, in microseconds, of a quota below
// DeferQuotaBelow until Started: a second, the longest the kernel takes.
const StartPeriod = 1_000_000

// MinStartQuota is the least quota per StartPeriod: enough for the
// runtime's init. A container under 0.05 CPUs may use up to 0.05 CPUs
// until Started, which follows its process's start within a millisecond
// or so; any other keeps its exact share throughout.
const MinStartQuota = 50_000

// startQuota is the quota per StartPeriod of a quota per CFSPeriod.
func startQuota(quota int64) int64 {
	return max(quota*(StartPeriod/CFSPeriod), MinStartQuota)
}

// AnnotationCPUQuota is the runtime-spec annotation that holds the CFS
// quota (microseconds per CFSPeriod) that Started sets in place of the
// runtime's long-period one.
const AnnotationCPUQuota = "caisson.cgroups/cpu-quota"

// Started sets the quota of a container that started under a long period
// (its spec's AnnotationCPUQuota) with CFSPeriod. Without one in the spec
// it does nothing.
func (i *Isolator) Started(_ context.Context, req *isolators.IsolateRequest) error {
	if req.Spec == nil || req.Spec.Annotations[AnnotationCPUQuota] == "" {
		return nil
	}
	v := req.Spec.Annotations[AnnotationCPUQuota]
	quota, err := strconv.ParseInt(v, 10, 64)
	if err != nil || quota < MinQuota || quota > CFSPeriod {
		return fmt.Errorf("annotation %s=%q is not a CPU quota of %d to %d microseconds: %w", AnnotationCPUQuota, v, MinQuota, CFSPeriod, api.ErrInvalid)
	}
	p, err := i.cgroupPath(req.ContainerID, req.Spec)
	if err != nil {
		return err
	}
	return i.setQuota(p, quota)
}

// Status reports the container's cgroup path.
func (i *Isolator) Status(_ context.Context, req *isolators.StatusRequest, resp *isolators.StatusResponse) error {
	p, err := i.cgroupPath(req.ContainerID, req.Spec)
	if err != nil {
		return err
	}
	resp.CgroupPath = p
	return nil
}

// Watch blocks until the container is OOM-killed or ctx is done; see
// isolators.Watcher. It returns a limitation with reason api.ReasonOOM.
func (i *Isolator) Watch(ctx context.Context, req *isolators.WatchRequest) (*isolators.Limitation, error) {
	p, err := i.cgroupPath(req.ContainerID, req.Spec)
	if err != nil {
		return nil, err
	}
	return i.watch(ctx, p, specLimit(req.Spec))
}

// OOMKilled reports whether the kernel has OOM-killed a process of container
// id (v1 memory.oom_control oom_kill, v2 memory.events oom_kill). It returns
// an error wrapping api.ErrNotFound when the container has no cgroup.
func (i *Isolator) OOMKilled(ctx context.Context, id string) (bool, error) {
	p, err := i.Path(id)
	if err != nil {
		return false, err
	}
	return i.oomKilled(ctx, p)
}

// Update writes the request's non-zero limits to the container's cgroup,
// in an order the kernel accepts, all of them or none: when one write is
// refused, the files already written get their values back. It returns an
// error wrapping
// api.ErrNotFound for an unknown container, api.ErrInvalid for bad limits,
// and api.ErrWrongState when v1 cannot lower the memory limit below what
// the container uses.
func (i *Isolator) Update(ctx context.Context, req *isolators.UpdateRequest) error {
	p, err := i.cgroupPath(req.ContainerID, req.Spec)
	if err != nil {
		return err
	}
	if err := Validate(req.Resources, i.cpus); err != nil {
		return err
	}
	return i.update(ctx, p, req.Resources)
}

// Usage fills u's CPU, memory, pids and OOM fields (and Timestamp when it is
// zero). It returns an error wrapping api.ErrNotFound for an unknown
// container.
func (i *Isolator) Usage(ctx context.Context, req *isolators.UsageRequest, u *api.Usage) error {
	p, err := i.cgroupPath(req.ContainerID, req.Spec)
	if err != nil {
		return err
	}
	return i.usage(ctx, p, u)
}

// Cleanup kills what is left in the container's cgroup and removes it from
// every hierarchy. The runtime's delete normally removed it already; unknown
// containers are fine, and so are IDs that cannot name a cgroup (Prepare
// refused them, so nothing was made).
func (i *Isolator) Cleanup(ctx context.Context, req *isolators.CleanupRequest) error {
	if checkID(req.ContainerID) != nil {
		return nil
	}
	p := i.parent + "/" + req.ContainerID
	if err := i.destroy(ctx, p); err != nil {
		return err
	}
	if sp, err := i.cgroupPath(req.ContainerID, req.Spec); err == nil && sp != p {
		return i.destroy(ctx, sp)
	}
	return nil
}

// Recover destroys the cgroups of the request's orphans, in every
// hierarchy, killing their processes. Other cgroups below Parent are left
// alone: the parent is shared by every work dir that uses it (and by
// whoever else makes cgroups there), so a cgroup that no known container
// names may well be someone else's.
func (i *Isolator) Recover(ctx context.Context, req *isolators.RecoverRequest) error {
	known := make(map[string]bool, len(req.Containers))
	for _, c := range req.Containers {
		known[c.ID] = true
	}
	var orphans []string
	for _, id := range req.Orphans {
		if !known[id] && checkID(id) == nil {
			orphans = append(orphans, id)
		}
	}
	return i.recoverOrphans(ctx, orphans)
}

// specLimit is the memory limit in the spec, for the OOM message when the
// cgroup cannot tell.
func specLimit(s *specs.Spec) int64 {
	if s == nil || s.Linux == nil || s.Linux.Resources == nil || s.Linux.Resources.Memory == nil || s.Linux.Resources.Memory.Limit == nil {
		return 0
	}
	return *s.Linux.Resources.Memory.Limit
}

// humanBytes prints a size as Docker users write it: 32MiB, 1.5GiB, or bytes
// when it is not a whole number of KiB.
func humanBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + units[i]
}

func oomLimitation(limit int64) *isolators.Limitation {
	msg := "memory limit exceeded"
	if limit > 0 {
		msg = fmt.Sprintf("memory limit of %s exceeded", humanBytes(limit))
	}
	return &isolators.Limitation{Reason: api.ReasonOOM, Message: msg}
}
