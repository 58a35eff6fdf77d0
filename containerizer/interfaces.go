package containerizer

import (
	"context"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime is what the containerizer needs from an OCI runtime. The only
// implementation, containerizer/runc, execs runc or crun; tests may use a fake.
// Every method honours ctx and the implementation's per-call timeout.
type Runtime interface {
	// Name is the runtime binary's name ("runc", "crun").
	Name() string
	// Create creates the container from the bundle: its init process exists
	// and waits for Start. It returns the init's pid. A command that does not
	// exist yields an error wrapping api.ErrCommandNotFound, one that cannot be
	// executed api.ErrCommandNotExecutable.
	Create(ctx context.Context, id, bundle string, opts *CreateOpts) (int, error)
	// Start lets the created container's process run.
	Start(ctx context.Context, id string) error
	// State returns the runtime's view; an unknown ID gives an error wrapping
	// api.ErrNotFound.
	State(ctx context.Context, id string) (*RuntimeState, error)
	// Kill sends sig to the init process, or to every process when all is set.
	// Killing a stopped or unknown container is not an error.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Delete removes the runtime's state (and the cgroup it made). With force
	// it kills a running container first. Unknown IDs are not an error, and
	// should cost little: recovery deletes every orphan it finds this way.
	Delete(ctx context.Context, id string, force bool) error
}

// RuntimeChecker is what a Runtime may also do: say, before a launch makes
// anything, whether it can run at all. The error wraps api.ErrUnavailable.
type RuntimeChecker interface {
	Check(ctx context.Context) error
}

// CreateOpts are the per-call options of Runtime.Create.
type CreateOpts struct {
	// PidFile is where the runtime writes the init pid.
	PidFile string
	// Stdin, Stdout and Stderr become the container process's standard
	// streams; nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
	// Start lets the process run at once (the runtime's run --detach): one
	// call instead of create and start, for launches where no isolator acts
	// on the created process.
	Start bool
}

// RuntimeState is the runtime's view of a container.
type RuntimeState struct {
	ID     string
	Pid    int
	Status string // "created", "running", "paused", "stopped"
	Bundle string
}

// Provisioner makes container root filesystems: the host's, a directory, or
// an image. The only implementation is containerizer/image.
type Provisioner interface {
	// Provision makes the root filesystem of a container under dir, a
	// directory that belongs to that container, and returns where it is and
	// what the image says about running it. On error nothing is left mounted.
	Provision(ctx context.Context, req *ProvisionRequest) (*Rootfs, error)
	// Release unmounts and removes what Provision made under dir. It is
	// idempotent and succeeds when Provision never ran or failed half way.
	Release(ctx context.Context, dir string) error
}

// Unmounter is what a Provisioner may also do: unmount a root filesystem
// once its container has exited, keeping its files, so that an exited
// container holds no mount; Release still removes them. It is idempotent.
type Unmounter interface {
	Unmount(ctx context.Context, dir string) error
}

// ProvisionRequest says which root filesystem a container gets. Image and
// Rootfs are exclusive; with neither, the container sees the host's
// filesystem read-only.
type ProvisionRequest struct {
	ContainerID string
	Image       string
	Platform    string // "os/arch[/variant]"; empty means this host's
	Rootfs      string
	// Dir is the container's own directory; Provision may create anything
	// under it.
	Dir string
}

// Rootfs is a provisioned root filesystem.
type Rootfs struct {
	// Path is the root directory on the host.
	Path string
	// Readonly asks the runtime to mount Path read-only.
	Readonly bool
	// Mounts are extra mounts the root filesystem needs (the host's
	// directories and the writable sandbox, for containers with no image).
	Mounts []specs.Mount
	// Config holds the image's defaults; zero for a directory or the host.
	Config ImageConfig
	// Image is the canonical reference and Digest the image's config digest,
	// when there is an image.
	Image  string
	Digest string
}

// ImageConfig is the part of an image's configuration that decides how its
// process runs.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}
