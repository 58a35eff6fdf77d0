package containerizer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caisson/caisson/api"
)

// A container whose checkpoint exists but cannot be read is quarantined:
// nothing acts on it by itself. Recovery neither undoes nor cleans it up
// (its process, if it has one, runs on, and its writable layer stays), it
// is not an orphan, List shows it as unreadable, and Kill still signals its
// process. Only a forced Remove destroys it, with every configured isolator,
// as the user's explicit choice.

// quarantined is one such container.
type quarantined struct {
	id   string
	name string // from the bundle's annotations, when they can be read
	err  error  // why the checkpoint is unreadable; wraps api.ErrUnreadable
}

func (c *Containerizer) quarantine(id string, err error) *quarantined {
	q := &quarantined{id: id, err: err}
	if s := c.readSpec(id); s != nil && nameRE.MatchString(s.Annotations[annotationName]) {
		q.name = s.Annotations[annotationName]
	}
	return q
}

// Annotations of every container's runtime spec.
const (
	annotationName = "io.caisson.container.name"
	annotationID   = "io.caisson.container.id"
)

// view shows a quarantined container, with what to do about it.
func (c *Containerizer) quarantinedView(q *quarantined) api.Container {
	v := api.Container{
		ID: q.id, Name: q.name, State: api.StateUnreadable, Bundle: c.bundleDir(q.id),
		Message: fmt.Sprintf("%v; the container is quarantined: caisson leaves its process (if any) and its files "+
			"(its writes are in %s) alone. Restore the checkpoint, or remove the container with force to destroy "+
			"it and everything it holds", q.err, filepath.Join(c.containerDir(q.id), "fs", "upper")),
	}
	if st, err := os.Stat(c.lockPath(q.id)); err == nil {
		v.CreatedAt = st.ModTime().UTC() // the lock file is made at the reservation and never written
	}
	return v
}

// killQuarantined signals what the runtime runs for a quarantined
// container.
func (c *Containerizer) killQuarantined(ctx context.Context, id string, sig syscall.Signal) error {
	lock, err := c.lockContainer(ctx, id)
	if err != nil {
		return c.notFoundOr(id, err)
	}
	defer lock.Unlock()
	return c.cfg.Runtime.Kill(ctx, id, sig, true)
}

// removeQuarantined destroys a quarantined container as debris: the
// runtime's container, what every configured isolator holds for it, its
// root filesystem and its directory. Its monitor, if it still runs, exits
// once it finds the container gone; removeQuarantined waits for that.
func (c *Containerizer) removeQuarantined(ctx context.Context, id string) error {
	lock, err := c.lockContainer(ctx, id)
	if err != nil {
		return c.notFoundOr(id, err)
	}
	monitorPid, monitorStart := c.findMonitor(id)
	c.log.Warn("removing a container whose checkpoint is unreadable", "container", id)
	err = c.destroyLocked(ctx, c.debris(id), true)
	lock.Unlock()
	if err == nil && monitorPid > 0 {
		waitGone(monitorPid, monitorStart, 10*time.Second)
	}
	return err
}

// findMonitor looks for the monitor of container id among this host's
// processes, for when its checkpoint, which has its pid, cannot be read: a
// process whose command line ends like the monitor command with id (the
// flags before may differ from this process's).
func (c *Containerizer) findMonitor(id string) (pid int, start uint64) {
	if len(c.cfg.MonitorCommand) == 0 {
		return 0, 0
	}
	want := []string{c.cfg.MonitorCommand[len(c.cfg.MonitorCommand)-1], id}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, 0
	}
	for _, p := range procs {
		n, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"); len(args) > 2 && slices.Equal(args[len(args)-2:], want) {
			return n, procStartTime(n)
		}
	}
	return 0, 0
}

// debris is a record for a container whose checkpoint is missing or
// unreadable: every configured isolator may hold something for it.
func (c *Containerizer) debris(id string) *record {
	r := &record{ID: id}
	for _, iso := range c.cfg.Isolators {
		r.Isolators = append(r.Isolators, iso.Name())
	}
	return r
}

// cleanupQuarantined frees what a quarantined container held once its
// process has exited (the monitor, which cannot record the exit): the
// runtime's state and the isolators' resources. Its files stay.
func (c *Containerizer) cleanupQuarantined(ctx context.Context, id string) error {
	return c.destroyLocked(ctx, c.debris(id), false)
}

// isUnreadable reports whether err is a checkpoint that exists but cannot
// be read.
func isUnreadable(err error) bool { return errors.Is(err, api.ErrUnreadable) }
