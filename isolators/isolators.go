package isolators

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/oci"
)

// Isolator is the base every isolator implements.
type Isolator interface {
	// Name is stable and unique, in the form "kind/name" ("cgroups/v1").
	// Checkpoints record it, so recovery finds the same isolator again.
	Name() string
}

// PrepareRequest describes a container about to be created.
type PrepareRequest struct {
	ContainerID string
	Spec        api.ContainerSpec
	// Bundle is the OCI bundle directory; the runtime spec is written there.
	Bundle string
	// Rootfs is the container's root filesystem on the host.
	Rootfs string
	// Hostname is the container's host name (the user's, or the short ID).
	Hostname string
}

// PrepareResponse is an isolator's contribution to the runtime spec. The
// containerizer merges the responses of all isolators, in isolator order, over
// the spec built from the image and the user's request:
//
//   - Env: isolators win over the image and the user; two isolators that set
//     one key to different values are a conflict.
//   - Mounts: a destination may be claimed by one isolator only (and not by
//     the base spec's user mounts); a second claim is a conflict.
//   - Namespaces: an isolator may add or join a namespace of a type; two
//     isolators that ask for different paths of one type are a conflict.
//   - Devices and DeviceRules are appended; two device nodes at one path with
//     different numbers are a conflict.
//   - Resources: each of CPU, Memory and Pids may be set by one isolator only.
//   - CgroupsPath: exclusive; a second, different value is a conflict.
//   - Annotations: one isolator per key.
//   - SpecOpts are applied last, in isolator order, with no conflict checks:
//     the escape hatch for changes the fields above cannot express, such as
//     a hint that yields to what the spec already has (the gpu/nvidia
//     isolator's cpuset, set beside another isolator's CPU limits unless
//     the spec names a cpuset).
//
// A conflict fails the launch with a *ConflictError, which wraps
// api.ErrConflict and names both isolators (see Merge).
type PrepareResponse struct {
	Env         []string
	Mounts      []specs.Mount
	Namespaces  []specs.LinuxNamespace
	Devices     []specs.LinuxDevice
	DeviceRules []specs.LinuxDeviceCgroup
	Resources   *specs.LinuxResources
	CgroupsPath string
	Annotations map[string]string
	SpecOpts    []oci.SpecOpt
}

// Preparer contributes to the runtime spec before the container is created.
type Preparer interface {
	Isolator
	Prepare(ctx context.Context, req *PrepareRequest, resp *PrepareResponse) error
}

// IsolateRequest names a created container: for a PidIsolator its process
// has not started, for a StartedIsolator it has.
type IsolateRequest struct {
	ContainerID string
	// Pid is the container's init process as seen from the host.
	Pid int
	// Spec is the final runtime spec, as the runtime got it.
	Spec *specs.Spec
}

// PidIsolator acts on the created process before it starts (joins it to a
// network, moves it to a cgroup the runtime did not make).
type PidIsolator interface {
	Isolator
	Isolate(ctx context.Context, req *IsolateRequest) error
}

// StartedIsolator acts on a container once the runtime has started its
// process, before the launch records it as running (a failure undoes the
// launch). It needs no pause between the runtime's create and start, so
// it costs the launch no runtime call of its own: the cgroups isolator
// uses it to put a small CPU quota's period back (see
// cgroups.DeferQuotaBelow).
type StartedIsolator interface {
	Isolator
	Started(ctx context.Context, req *IsolateRequest) error
}

// DeviceOwner is an isolator that owns a class of device nodes (the GPU
// isolator the GPUs'): a container has one of them only when the isolator
// granted it. A hook that adds such a node the isolator did not grant is
// refused.
type DeviceOwner interface {
	Isolator
	OwnsDevice(d specs.LinuxDevice) bool
}

// WatchRequest names a running container.
type WatchRequest struct {
	ContainerID string
	Pid         int
	Spec        *specs.Spec
}

// Limitation is a limit a container hit.
type Limitation struct {
	Reason  api.TerminationReason
	Message string
}

// Watcher reports a limitation such as an OOM kill.
type Watcher interface {
	Isolator
	// Watch blocks until the container hits a limitation or ctx is done. When
	// ctx is done (the container has exited), Watch makes one last check and
	// returns a limitation that was hit, so an OOM that raced with the exit is
	// not lost; it returns nil, nil when there was none.
	Watch(ctx context.Context, req *WatchRequest) (*Limitation, error)
}

// UpdateRequest asks for new limits on a running container. Zero fields are
// left as they are.
type UpdateRequest struct {
	ContainerID string
	Resources   api.Resources
	Spec        *specs.Spec
}

// Updater resizes a running container.
type Updater interface {
	Isolator
	// Update applies all of the request's limits or none: on an error,
	// whatever it changed is put back. It returns an error wrapping
	// api.ErrNotFound for unknown containers.
	Update(ctx context.Context, req *UpdateRequest) error
}

// UsageRequest names a container.
type UsageRequest struct {
	ContainerID string
	// Pid is the container's init process as seen from the host.
	Pid  int
	Spec *specs.Spec
}

// UsageReporter reports resource usage.
type UsageReporter interface {
	Isolator
	// Usage fills the fields of u that this isolator knows. It returns an
	// error wrapping api.ErrNotFound for unknown containers.
	Usage(ctx context.Context, req *UsageRequest, u *api.Usage) error
}

// StatusRequest names a container.
type StatusRequest struct {
	ContainerID string
	// Pid is the container's init process as seen from the host.
	Pid  int
	Spec *specs.Spec
}

// StatusResponse carries what isolators know about a running container.
type StatusResponse struct {
	Networks   []api.NetworkStatus
	CgroupPath string
	// GPUs are the GPUs the container holds.
	GPUs []api.GPU
}

// StatusReporter reports status such as IP addresses.
type StatusReporter interface {
	Isolator
	Status(ctx context.Context, req *StatusRequest, resp *StatusResponse) error
}

// CleanupRequest names a container whose processes are all gone.
type CleanupRequest struct {
	ContainerID string
	// Spec is the runtime spec the container ran with, or nil when the
	// container never got that far (or the checkpoint was lost).
	Spec *specs.Spec
}

// Cleaner releases what an isolator holds for a container. Cleanup is
// idempotent and succeeds for unknown IDs.
type Cleaner interface {
	Isolator
	Cleanup(ctx context.Context, req *CleanupRequest) error
}

// RecoveredContainer is a container the containerizer still knows after a
// restart.
type RecoveredContainer struct {
	ID string
	// Pid is the container's process, 0 when it is not running.
	Pid  int
	Spec *specs.Spec
}

// RecoverRequest lists every container the containerizer knows, and the
// containers it made and has lost.
type RecoverRequest struct {
	Containers []RecoveredContainer
	// Orphans are the IDs of containers this containerizer made whose
	// checkpoints are gone: whatever an isolator still holds for them is
	// to be destroyed. The containerizer has already called Cleanup for
	// each (it forgets an orphan only once every Cleanup succeeded), so
	// Recover need not report failures by orphan. Several containerizers (work dirs) may share a place
	// an isolator uses, such as a cgroup parent or a runtime dir: there an
	// isolator destroys only what belongs to an orphan, never what merely
	// is not in Containers, which may be another containerizer's.
	Orphans []string
}

// Recoverer rebuilds in-memory state after a restart and destroys what it
// holds for orphans. In state of its own, which only this containerizer
// writes (under its work dir), it may also destroy what it holds for any
// container not in Containers.
type Recoverer interface {
	Isolator
	Recover(ctx context.Context, req *RecoverRequest) error
}
