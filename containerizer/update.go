package containerizer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/safefile"
	"github.com/caisson/caisson/isolators"
)

// An update is applied whole or not at all, a full disk or a crash
// included. The new checkpoint is written first, beside the current one
// (update.json, the intent): if that fails, nothing has changed. Then the
// isolators apply the limits, each whole or not at all. If they refuse, the
// intent is deleted, which needs no space. If they succeed, the intent is
// renamed over the checkpoint, which needs no space either. Recovery finds
// an intent only when an update died between the two, and finishes it:
// applies it again (the isolators' writes are idempotent) and commits it, or
// drops it when the isolators refuse.

func (c *Containerizer) intentPath(id string) string {
	return filepath.Join(c.containerDir(id), "update.json")
}

// Update changes the limits of a running container. Zero fields stay.
func (c *Containerizer) Update(ctx context.Context, id string, res api.Resources) error {
	if err := checkID(id); err != nil {
		return err
	}
	lock, err := c.lockContainer(ctx, id)
	if err != nil {
		return c.notFoundOr(id, err)
	}
	defer lock.Unlock()
	r, err := c.loadRecord(id)
	if err != nil {
		return err
	}
	if r.Phase != phaseRunning {
		return fmt.Errorf("container %s is not running: %w", r.Name, api.ErrWrongState)
	}
	if !c.canUpdate(r) {
		return fmt.Errorf("no isolator can update container %s: %w", r.Name, api.ErrUnavailable)
	}
	hc := &HookContainer{ID: r.ID, Name: r.Name, Image: r.Image, Labels: r.Spec.Labels, Pid: r.Pid, CgroupPath: r.CgroupPath}
	var hooks []UpdateHook
	for _, h := range c.cfg.Hooks {
		if uh, ok := h.(UpdateHook); ok {
			if err := uh.UpdateContainer(ctx, hc, res); err != nil {
				return fmt.Errorf("hook %s: %w", h.Name(), err)
			}
			hooks = append(hooks, uh)
		}
	}
	if res.CPUs > 0 {
		r.Spec.Resources.CPUs = res.CPUs
	}
	if res.MemoryBytes > 0 {
		r.Spec.Resources.MemoryBytes = res.MemoryBytes
	}
	if res.MemoryReservationBytes > 0 {
		r.Spec.Resources.MemoryReservationBytes = res.MemoryReservationBytes
	}
	if res.PidsLimit > 0 {
		r.Spec.Resources.PidsLimit = res.PidsLimit
	}
	n, err := c.writeIntent(r)
	if err == nil {
		// The room for the end grows with the checkpoint, before anything
		// changes.
		if err = c.ensureSpares(id, n); err != nil {
			c.dropIntent(id)
		}
	}
	if err != nil {
		return err
	}
	c.crash("update:intent")
	if err := c.applyUpdate(ctx, r, res); err != nil {
		c.dropIntent(id)
		return err
	}
	c.crash("update:applied")
	if err := c.commitIntent(id); err != nil {
		return err
	}
	for _, h := range hooks {
		h.PostUpdateContainer(context.WithoutCancel(ctx), hc, res)
	}
	return nil
}

func (c *Containerizer) canUpdate(r *record) bool {
	for _, name := range r.Isolators {
		if _, ok := c.byName[name].(isolators.Updater); ok {
			return true
		}
	}
	return false
}

// applyUpdate has every isolator apply res. Each applies all of it or
// nothing; when a later one refuses, the earlier ones get the previous
// limits back, in reverse order, as far as an update can say them (a limit
// that was not set before stays at its new value).
func (c *Containerizer) applyUpdate(ctx context.Context, r *record, res api.Resources) error {
	spec := c.readSpec(r.ID)
	var done []isolators.Updater
	for _, name := range r.Isolators {
		up, ok := c.byName[name].(isolators.Updater)
		if !ok {
			continue
		}
		if err := up.Update(ctx, &isolators.UpdateRequest{ContainerID: r.ID, Resources: res, Spec: spec}); err != nil {
			if len(done) > 0 {
				old, lerr := c.loadRecord(r.ID)
				for _, u := range slices.Backward(done) {
					if lerr == nil {
						lerr = u.Update(context.WithoutCancel(ctx), &isolators.UpdateRequest{ContainerID: r.ID, Resources: old.Spec.Resources, Spec: spec})
					}
					if lerr != nil {
						c.log.Error("put back the limits of a refused update", "container", r.ID, "isolator", u.Name(), "err", lerr)
					}
				}
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		done = append(done, up)
	}
	return nil
}

// writeIntent writes an update's intent, and returns its size.
func (c *Containerizer) writeIntent(r *record) (int, error) {
	n, err := writeCheckpoint(c.intentPath(r.ID), r)
	if err != nil {
		return 0, fmt.Errorf("update container %s: %w", r.Name, err)
	}
	return n, nil
}

func (c *Containerizer) dropIntent(id string) {
	if err := os.Remove(c.intentPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Error("drop the intent of a refused update", "container", id, "err", err)
	}
}

func (c *Containerizer) commitIntent(id string) error {
	if err := os.Rename(c.intentPath(id), c.recordPath(id)); err != nil {
		return fmt.Errorf("commit the update of container %s (the next recovery finishes it): %w", id, err)
	}
	_ = atomicfile.SyncDir(c.containerDir(id)) // committed; only its durability is uncertain
	return nil
}

// finishUpdate completes an update that died between its intent and its
// commit. The caller holds the container's lock and has read its
// checkpoint, r.
func (c *Containerizer) finishUpdate(ctx context.Context, r *record) (bool, error) {
	data, err := safefile.ReadFile(c.intentPath(r.ID), maxRecordSize)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	intent, perr := parseRecord(r.ID, data)
	if err != nil || perr != nil || r.Phase != phaseRunning || intent.Phase != phaseRunning || intent.Pid != r.Pid {
		// Unreadable, or the container has moved on: the update is moot.
		c.log.Warn("dropping the intent of an interrupted update", "container", r.ID)
		c.dropIntent(r.ID)
		return true, nil
	}
	c.log.Warn("finishing an interrupted update", "container", r.ID)
	if err := c.applyUpdate(ctx, intent, intent.Spec.Resources); err != nil {
		c.dropIntent(r.ID)
		return true, fmt.Errorf("finish an interrupted update: %w", err)
	}
	return true, c.commitIntent(r.ID)
}
