package agent

import (
	"context"
	"io"
	"syscall"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

// Containers is the containerizer as the agent uses it. NewContainers
// adapts the real one; tests give a fake.
type Containers interface {
	// Launch starts a container detached for task and returns its ID. A
	// launch that fails leaves nothing behind.
	Launch(ctx context.Context, spec api.ContainerSpec, task *api.TaskLaunch) (string, error)
	// Wait blocks until the container has exited and been cleaned up and
	// returns how it ended; nil when the container was removed.
	Wait(ctx context.Context, id string) (*api.Termination, error)
	// Kill sends sig to the container's init; a container that is not
	// running gives an error wrapping api.ErrWrongState.
	Kill(ctx context.Context, id string, sig syscall.Signal) error
	// Remove deletes an exited container, a running one too with force.
	Remove(ctx context.Context, id string, force bool) error
	List(ctx context.Context) ([]api.Container, error)
	Usage(ctx context.Context, id string) (*api.Usage, error)
	// Logs writes the container's output (stdout and stderr) to w; with
	// follow, until the container has exited or ctx is done.
	Logs(ctx context.Context, id string, follow bool, w io.Writer) error
}

// NewContainers adapts the containerizer to Containers: launches are
// detached (the container's monitor holds its exit status, so containers
// outlive the agent), logs come from containerizer.Logs.
func NewContainers(c *containerizer.Containerizer) Containers { return containers{c} }

type containers struct{ c *containerizer.Containerizer }

var _ Containers = containers{}

func (a containers) Launch(ctx context.Context, spec api.ContainerSpec, task *api.TaskLaunch) (string, error) {
	l, err := a.c.Launch(ctx, spec, containerizer.LaunchOptions{Task: task})
	if err != nil {
		return "", err
	}
	l.Close()
	return l.Container.ID, nil
}

func (a containers) Wait(ctx context.Context, id string) (*api.Termination, error) {
	return a.c.Wait(ctx, id)
}

func (a containers) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	return a.c.Kill(ctx, id, sig)
}

func (a containers) Remove(ctx context.Context, id string, force bool) error {
	return a.c.Remove(ctx, id, force)
}

func (a containers) List(ctx context.Context) ([]api.Container, error) { return a.c.List(ctx) }

func (a containers) Usage(ctx context.Context, id string) (*api.Usage, error) {
	return a.c.Usage(ctx, id)
}

func (a containers) Logs(ctx context.Context, id string, follow bool, w io.Writer) error {
	return a.c.Logs(ctx, id, containerizer.LogOptions{Follow: follow, Stdout: w, Stderr: w})
}
