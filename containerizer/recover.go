package containerizer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/flock"
	"github.com/caisson/caisson/isolators"
)

// Recover brings the state directories back to a consistent state after a
// restart or a crash. The quick pass visits every container directory that
// no live process holds: a launch that died half way is undone, a container
// whose monitor died is recorded as lost and cleaned up, an exit whose
// cleanup was cut short is finished, and debris without a checkpoint is
// removed. The full pass, which runs when the quick one found anything, after
// a reboot, or when asked, also destroys orphans: what the runtime and the
// isolators (cgroups) still hold for containers this work dir made (its
// ownership ledger names them) whose directories are gone. Live containers
// and their monitors are left alone, and so is everything this work dir did
// not make, even under a cgroup parent or a runtime dir it shares.
//
// Once a full pass has run, the next commands run only the quick one until
// the host reboots, even when the full pass left work undone: what it
// could not do for a container stays on disk (its directory, the trash, or
// the ledger for an orphan it could not destroy) and brings the next full
// pass; a quarantined container is reported, not retried; and a failed
// sweep of an isolator is tried again by the next full pass (caisson
// recover runs one), not by every command.
func (c *Containerizer) Recover(ctx context.Context, full bool) error {
	marker := c.recoveredMarker()
	if _, err := os.Stat(marker); err != nil {
		full = true // first start since boot (the run root is a tmpfs)
	}
	owned, err := c.claimed()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(c.cfg.Root, "containers"))
	if err != nil {
		return err
	}
	var errs []error
	dirs := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() || !idRE.MatchString(e.Name()) {
			continue // not a container: only newID names them
		}
		dirs[e.Name()] = true
		found, err := c.recoverDir(ctx, e.Name())
		if err != nil {
			errs = append(errs, err)
		}
		full = full || found
	}
	if found, err := c.emptyTrash(ctx); err != nil {
		errs = append(errs, err)
	} else if found {
		full = true
	}
	for id := range owned {
		if !dirs[id] {
			full = true // an orphan, or a removal that died before forgetting it
		}
	}
	if full {
		ran, err := c.recoverOrphans(ctx)
		if err != nil {
			errs = append(errs, err)
		}
		if ran {
			_ = os.WriteFile(marker, []byte(bootID()+"\n"), 0o600)
		}
	}
	return errors.Join(errs...)
}

// emptyTrash finishes removals that died half way: container directories
// moved into the trash that nobody is deleting. It reports whether it found
// any.
func (c *Containerizer) emptyTrash(ctx context.Context) (bool, error) {
	dir := filepath.Join(c.cfg.Root, "trash")
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	var errs []error
	for _, e := range entries {
		d := filepath.Join(dir, e.Name())
		lock, err := flock.AcquireExisting(filepath.Join(d, "lock"), false)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue // its remover is at work
		}
		c.log.Warn("finishing an interrupted removal", "container", e.Name())
		err = c.cfg.Provisioner.Release(ctx, filepath.Join(d, "fs"))
		if err == nil {
			err = os.RemoveAll(d)
		}
		lock.Unlock()
		if err == nil && idRE.MatchString(e.Name()) {
			err = c.unclaim(e.Name())
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return len(entries) > 0, errors.Join(errs...)
}

// recoveredMarker is the file in the run root that says this work dir was
// fully recovered since boot. Work dirs may share a run root: each has its
// own marker, named after its path.
func (c *Containerizer) recoveredMarker() string {
	sum := sha256.Sum256([]byte(c.cfg.Root))
	return filepath.Join(c.cfg.RunRoot, "recovered-"+hex.EncodeToString(sum[:8]))
}

// lockSound reports whether a container's lock file is there and is a
// regular file (one that is not is never opened: it could be a FIFO or a
// device).
func (c *Containerizer) lockSound(id string) bool {
	st, err := os.Lstat(c.lockPath(id))
	return err == nil && st.Mode().IsRegular()
}

// repairLock deals with a container directory whose lock file is missing
// or is not a regular file, deciding under the root lock, which a launch
// holds from making the directory until its lock file exists. A directory
// that holds nothing beyond a reservation (no checkpoint) is a launch that
// died before running anything: it is removed. Anything more may be a
// container that runs and holds the user's data, and deleting it would go
// through its mounted root filesystem: its lock file is made anew instead,
// and the container goes on as its checkpoint says (quarantined when that
// cannot be read). It reports whether it changed anything.
func (c *Containerizer) repairLock(ctx context.Context, id string) (bool, error) {
	rootLock, err := c.lockRoot(ctx)
	if err != nil {
		return false, err
	}
	defer rootLock.Unlock()
	if _, err := os.Lstat(c.containerDir(id)); err != nil || c.lockSound(id) {
		return false, nil // removed, or reserved meanwhile
	}
	if !c.beyondReservation(id) {
		c.log.Warn("removing a reservation whose launch died", "container", id)
		if err := os.RemoveAll(c.containerDir(id)); err != nil {
			return true, err
		}
		return true, c.unclaim(id)
	}
	// Something other than a lock file may be in its place: a removal
	// removes what a link points to, and never a directory's content.
	if err := os.Remove(c.lockPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("container %s: its lock is not a regular file and cannot be replaced: %w", id, err)
	}
	f, err := os.OpenFile(c.lockPath(id), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("container %s: make its lock file anew: %w", id, err)
	}
	c.log.Warn("the container's lock file was missing or not a file: made it anew", "container", id)
	return true, f.Close()
}

// recoverOne recovers a single container (used when a waiter finds its
// monitor gone).
func (c *Containerizer) recoverOne(ctx context.Context, id string) error {
	_, err := c.recoverDir(ctx, id)
	return err
}

// recoverDir handles one container directory. It reports whether it found
// something a crash left behind.
func (c *Containerizer) recoverDir(ctx context.Context, id string) (found bool, retErr error) {
	if !c.lockSound(id) {
		// No lock file: a launch between making the directory and locking
		// it, a launch that died in between, or damage.
		repaired, err := c.repairLock(ctx, id)
		if err != nil {
			return repaired, err
		}
		defer func() { found = found || repaired }()
	}
	lock, err := c.tryLockContainer(id)
	if err != nil {
		// A launch, a monitor or another recovery holds it, or it is gone.
		return false, nil
	}
	var monitorPid int
	var monitorStart uint64
	defer func() {
		lock.Unlock()
		if monitorPid > 0 {
			// A monitor whose launch was undone exits once it gets the
			// lock; wait for it so recovery leaves nothing running.
			waitGone(monitorPid, monitorStart, 10*time.Second)
		}
	}()
	rec, err := c.loadRecord(id)
	if errors.Is(err, api.ErrNotFound) {
		// A launch makes its directory, locks it and writes the first
		// checkpoint under the root lock. Let go of the container lock (the
		// launch may be waiting for it), take the root lock, and look again.
		lock.Unlock()
		rootLock, lerr := c.lockRoot(ctx)
		if lerr != nil {
			return false, lerr
		}
		lock, lerr = c.tryLockContainer(id)
		if lerr != nil {
			rootLock.Unlock()
			return false, nil // a launch holds it, or it is gone
		}
		rec, err = c.loadRecord(id)
		rootLock.Unlock()
	}
	if isUnreadable(err) {
		// Damaged, or from a newer caisson: what it fails to say is no
		// reason to destroy a container that may run and hold the user's
		// data. Quarantined: left alone, and reported.
		return false, err
	}
	if err != nil {
		if _, statErr := os.Stat(c.containerDir(id)); statErr != nil {
			return false, nil // removed while we took the lock
		}
		if !errors.Is(err, api.ErrNotFound) {
			return false, err
		}
		// No checkpoint at all: the launch died before its first one, so
		// nothing of it ran, or a removal died half way. Clean up with
		// every configured isolator.
		c.log.Warn("removing container directory without a checkpoint", "container", id)
		return true, c.destroyLocked(ctx, c.debris(id), true)
	}
	rebooted := rec.BootID != "" && rec.BootID != bootID()
	switch rec.Phase {
	case phaseReserved, phasePrepared:
		// The launcher died: undo its launch (the monitor, if any, sees its
		// container die and finds nothing to record).
		c.log.Warn("undoing an interrupted launch", "container", id, "phase", rec.Phase)
		if c.monitorAlive(rec) {
			monitorPid, monitorStart = rec.MonitorPid, rec.MonitorID
		}
		return true, c.destroyLocked(ctx, rec, true)
	case phaseRunning:
		if !rebooted && c.monitorAlive(rec) {
			return c.finishUpdate(ctx, rec)
		}
		msg := "the container's monitor died; its exit status is unknown"
		if rebooted {
			msg = "the host rebooted while the container ran"
		} else if st, err := c.cfg.Runtime.State(ctx, id); err == nil && st.Status != "stopped" {
			msg = "the container's monitor died; the container was killed"
		}
		c.log.Warn("container lost", "container", id, "reason", msg)
		rec.Termination = &api.Termination{ExitCode: -1, Reason: api.ReasonLost, Message: msg, FinishedAt: time.Now().UTC()}
		rec.Phase = phaseExited
		rec.Pid = 0
		c.dropIntent(id)
		if err := c.saveFinalRecord(rec); err != nil {
			return true, err
		}
		fallthrough
	case phaseExited:
		c.dropIntent(id) // an update that died as the container exited
		if !rec.Cleaned {
			if err := c.destroyLocked(ctx, rec, false); err != nil {
				return true, err
			}
			rec.Cleaned = true
			if err := c.saveFinalRecord(rec); err != nil {
				return true, err
			}
			if rec.Spec.AutoRemove {
				return true, c.destroyLocked(ctx, rec, true)
			}
			return true, nil
		}
		if rec.Spec.AutoRemove {
			return true, c.destroyLocked(ctx, rec, true)
		}
		return false, nil
	default:
		return false, fmt.Errorf("checkpoint of container %s is unreadable: unknown phase %q: %w", id, rec.Phase, api.ErrUnreadable)
	}
}

// recoverOrphans destroys what the runtime and the isolators hold for
// containers this work dir made whose directories are gone, forgetting
// each one whose destruction succeeded, and then has every isolator sweep
// its state. A container directory without a ledger entry (made before the
// ledger existed) gets one. It reports whether it ran through (the root
// lock taken and the containers listed), whatever failed on the way.
func (c *Containerizer) recoverOrphans(ctx context.Context) (bool, error) {
	// No launch may reserve a container until the isolators have been
	// told which containers exist: one reserved after the listing would
	// look like an orphan to the runtime and to every isolator.
	rootLock, err := c.lockRoot(ctx)
	if err != nil {
		return false, err
	}
	defer rootLock.Unlock()
	entries, err := os.ReadDir(filepath.Join(c.cfg.Root, "containers"))
	if err != nil {
		return false, err
	}
	owned, err := c.claimed()
	if err != nil {
		return false, err
	}
	known := map[string]bool{}
	var recovered []isolators.RecoveredContainer
	for _, e := range entries {
		if !e.IsDir() || !idRE.MatchString(e.Name()) {
			continue // not a container: only newID names them
		}
		known[e.Name()] = true
		if !owned[e.Name()] {
			if err := c.claim(e.Name()); err != nil {
				c.log.Warn("container directory without an ownership entry", "container", e.Name(), "err", err)
			}
		}
		rc := isolators.RecoveredContainer{ID: e.Name(), Spec: c.readSpec(e.Name())}
		if r, err := c.loadRecord(e.Name()); err == nil && r.Phase == phaseRunning {
			rc.Pid = r.Pid
		}
		recovered = append(recovered, rc)
	}
	var orphans []string
	for id := range owned {
		if !known[id] {
			orphans = append(orphans, id)
		}
	}
	sort.Strings(orphans)
	// Each orphan is destroyed as debris, the way a container whose
	// checkpoint is gone is: the runtime's container, then every
	// configured isolator's Cleanup, each of which takes an unknown ID.
	// Only what failed for an orphan keeps it in the ledger for the next
	// pass; a failure elsewhere says nothing about it.
	var errs []error
	var destroyed []string
	for _, id := range orphans {
		c.log.Warn("destroying an orphan", "container", id)
		if err := c.destroyLocked(ctx, c.debris(id), false); err != nil {
			errs = append(errs, fmt.Errorf("orphan: %w", err))
			continue
		}
		destroyed = append(destroyed, id)
	}
	for _, iso := range c.cfg.Isolators {
		if r, ok := iso.(isolators.Recoverer); ok {
			req := &isolators.RecoverRequest{Containers: recovered, Orphans: orphans}
			if err := r.Recover(ctx, req); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", iso.Name(), err))
			}
		}
	}
	for _, id := range destroyed {
		if err := c.unclaim(id); err != nil {
			errs = append(errs, err)
		}
	}
	return true, errors.Join(errs...)
}
