package containerizer

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// Launch creates and starts a container, in named phases:
//
//	reserve    take the name, make the container's directory and its first
//	           checkpoint, which names every isolator
//	monitor    start the container's monitor (its start-up overlaps what follows)
//	provision  make the root filesystem
//	spec       build the runtime spec from the image's defaults and the request
//	prepare    each Preparer, in order, returns its changes to the spec
//	merge      apply them (isolators.Merge) and the seccomp filter
//	hook       each CreateHook, in order, sees the spec and may adjust it
//	           or refuse the launch
//	bundle     write the bundle and the prepared checkpoint
//	create     the monitor has the runtime create the container
//	isolate    each PidIsolator, in order, acts on the created process
//	start      the runtime starts it (when the create did not: with no
//	           PidIsolator, the runtime creates and starts in one call)
//	started    each StartedIsolator, in order, acts on the running process
//	running    the running checkpoint
//	hook       each StartedHook, in order
//
// Each phase logs, at debug level, its name, its isolator and how long it
// took. The checkpoint written at the reservation already names every
// isolator, so a crash at any later point is undone by recovery; on an
// error Launch undoes everything itself and nothing is left behind.
func (c *Containerizer) Launch(ctx context.Context, spec api.ContainerSpec, opts LaunchOptions) (_ *Launched, retErr error) {
	if err := validateSpec(&spec, c.cfg.SeccompAllow); err != nil {
		return nil, err
	}
	if rc, ok := c.cfg.Runtime.(RuntimeChecker); ok {
		if err := rc.Check(ctx); err != nil {
			return nil, err
		}
	}
	ln := &launch{c: c, spec: spec, opts: opts, log: c.log}
	if err := ln.phase(ctx, launchStep{phase: "reserve", run: ln.reserve}); err != nil {
		return nil, err
	}
	defer func() { ln.finish(ctx, retErr != nil) }()
	c.crash("reserved")
	for _, st := range ln.steps() {
		if st.run != nil && (st.skip == nil || !st.skip()) {
			if err := ln.phase(ctx, st); err != nil {
				return nil, err
			}
		}
		if st.crash != "" {
			c.crash(st.crash)
		}
	}
	return ln.launched(), nil
}

// launch is a Launch under way: what its phases made so far, which is
// what undoing it takes.
type launch struct {
	c    *Containerizer
	spec api.ContainerSpec // as validated; the checkpoint's copy drops a custom seccomp profile
	opts LaunchOptions
	log  *slog.Logger

	rec      *record
	lock     *fileLock
	mon      *monitorConn
	rootfs   *Rootfs
	s        *oci.Spec
	contribs []isolators.Contribution
	l        *Launched
	keepSync bool // the Launched holds the monitor's sync pipe
}

// launchStep is a phase of a launch, or a bare crash point.
type launchStep struct {
	phase    string // logged; empty for a bare crash point
	isolator string
	hook     string
	run      func(context.Context) error
	// skip, when set, says at run time that the phase has nothing to do.
	skip  func() bool
	crash string // the crash point after it
}

// steps are the phases after the reservation, in order, with the crash
// points between them.
func (ln *launch) steps() []launchStep {
	steps := []launchStep{
		{phase: "monitor", run: ln.startMonitor},
		{phase: "provision", run: ln.provision, crash: "provisioned"},
		{phase: "spec", run: ln.buildSpec},
	}
	for _, iso := range ln.c.cfg.Isolators {
		if p, ok := iso.(isolators.Preparer); ok {
			steps = append(steps, launchStep{phase: "prepare", isolator: iso.Name(), crash: "prepared:" + iso.Name(),
				run: func(ctx context.Context) error { return ln.prepare(ctx, p) }})
		}
	}
	steps = append(steps, launchStep{phase: "merge", run: ln.merge})
	for _, h := range ln.c.cfg.Hooks {
		if ch, ok := h.(CreateHook); ok {
			steps = append(steps, launchStep{phase: "hook", hook: h.Name(),
				run: func(ctx context.Context) error { return ln.createHook(ctx, ch) }})
		}
	}
	steps = append(steps,
		launchStep{phase: "bundle", run: ln.writeBundle, crash: "bundle"},
		launchStep{phase: "create", run: ln.create, crash: "created"},
	)
	for _, iso := range ln.c.cfg.Isolators {
		if pi, ok := iso.(isolators.PidIsolator); ok {
			steps = append(steps, launchStep{phase: "isolate", isolator: iso.Name(),
				run: func(ctx context.Context) error { return ln.isolate(ctx, pi) }})
		}
	}
	steps = append(steps,
		launchStep{crash: "isolated"},
		launchStep{phase: "start", run: ln.start, skip: func() bool { return !ln.isolates() }},
	)
	for _, iso := range ln.c.cfg.Isolators {
		if si, ok := iso.(isolators.StartedIsolator); ok {
			steps = append(steps, launchStep{phase: "started", isolator: iso.Name(),
				run: func(ctx context.Context) error { return ln.started(ctx, si) }})
		}
	}
	steps = append(steps, launchStep{phase: "running", run: ln.running, crash: "started"})
	for _, h := range ln.c.cfg.Hooks {
		if sh, ok := h.(StartedHook); ok {
			steps = append(steps, launchStep{phase: "hook", hook: h.Name(),
				run: func(ctx context.Context) error { return ln.startedHook(ctx, sh) }})
		}
	}
	return steps
}

// phase runs one phase and logs, at debug level, how long it took.
func (ln *launch) phase(ctx context.Context, st launchStep) error {
	begin := time.Now()
	err := st.run(ctx)
	if st.hook != "" {
		logPhase(ctx, ln.log, st.phase, "", begin, err, slog.String("hook", st.hook))
	} else {
		logPhase(ctx, ln.log, st.phase, st.isolator, begin, err)
	}
	return err
}

// logPhase logs one phase of a container's life that began at begin: its
// name, its isolator when it has one, how long it took, and whether it
// failed (the error itself is the caller's to report).
func logPhase(ctx context.Context, log *slog.Logger, phase, isolator string, begin time.Time, err error, extra ...slog.Attr) {
	if !log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{slog.String("phase", phase)}
	if isolator != "" {
		attrs = append(attrs, slog.String("isolator", isolator))
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, slog.Duration("duration", time.Since(begin)))
	if err != nil {
		attrs = append(attrs, slog.Bool("failed", true))
	}
	log.LogAttrs(ctx, slog.LevelDebug, "phase", attrs...)
}

// finish undoes a launch that failed, and lets go of what a launch holds
// either way. A panic (a test's crash point) is no failure: as after a
// real crash, what the launch made is left for recovery.
func (ln *launch) finish(ctx context.Context, failed bool) {
	if failed {
		if ln.l != nil {
			ln.l.Close()
		}
		if ln.mon != nil {
			_ = ln.mon.control.Close() // a monitor still waiting for "go" exits
		}
		if err := ln.c.destroyLocked(context.WithoutCancel(ctx), ln.rec, true); err != nil {
			ln.log.Error("undo failed launch", "err", err)
		}
	}
	ln.lock.Unlock()
	if ln.mon == nil {
		return
	}
	_ = ln.mon.control.Close()
	if ln.keepSync {
		return
	}
	if failed {
		// The monitor finds its container gone and exits; wait for it so
		// nothing of this launch outlives the call: its end of the pipe
		// closes a little before it is gone.
		drainUntilClosed(ln.mon.sync, 10*time.Second)
		waitGone(ln.rec.MonitorPid, ln.rec.MonitorID, 10*time.Second)
	}
	_ = ln.mon.sync.Close()
}

func (ln *launch) reserve(ctx context.Context) error {
	rec, lock, err := ln.c.reserve(ctx, ln.spec)
	if err != nil {
		return err
	}
	ln.rec, ln.lock = rec, lock
	ln.log = ln.log.With("container", rec.ID)
	return nil
}

// startMonitor starts the monitor, which waits for the bundle.
func (ln *launch) startMonitor(context.Context) error {
	mon, err := ln.c.startMonitor(ln.rec, ln.opts.Stdin)
	if err != nil {
		return err
	}
	ln.mon = mon
	return nil
}

func (ln *launch) provision(ctx context.Context) error {
	spec := ln.spec
	rootfs, err := ln.c.cfg.Provisioner.Provision(ctx, &ProvisionRequest{
		ContainerID: ln.rec.ID, Image: spec.Image, Platform: spec.Platform, Rootfs: spec.Rootfs,
		Dir: filepath.Join(ln.c.containerDir(ln.rec.ID), "fs"),
	})
	if err != nil {
		return err
	}
	ln.rootfs = rootfs
	ln.rec.Image, ln.rec.ImageDigest = rootfs.Image, rootfs.Digest
	return nil
}

// buildSpec makes the base spec: image defaults, then the user's request.
func (ln *launch) buildSpec(context.Context) error {
	s, err := ln.c.buildSpec(ln.rec, ln.rootfs)
	if err != nil {
		return err
	}
	ln.s = s
	ln.rec.Command = s.Process.Args
	return nil
}

func (ln *launch) prepare(ctx context.Context, p isolators.Preparer) error {
	resp := &isolators.PrepareResponse{}
	req := &isolators.PrepareRequest{ContainerID: ln.rec.ID, Spec: ln.spec, Bundle: ln.c.bundleDir(ln.rec.ID), Rootfs: ln.rootfs.Path, Hostname: ln.s.Hostname}
	if err := p.Prepare(ctx, req, resp); err != nil {
		return fmt.Errorf("%s: %w", p.Name(), err)
	}
	ln.contribs = append(ln.contribs, isolators.Contribution{Isolator: p.Name(), Response: resp})
	return nil
}

// merge applies the isolators' contributions to the spec, and checks that
// they did what the request needs.
func (ln *launch) merge(context.Context) error {
	spec, s := ln.spec, ln.s
	// The default mounts may be replaced by isolators; only the user's own
	// extra mounts are protected.
	userMounts := map[string]bool{}
	for _, m := range s.Mounts {
		userMounts[m.Destination] = true
	}
	for _, m := range oci.Default().Mounts {
		delete(userMounts, m.Destination)
	}
	if err := isolators.Merge(s, ln.contribs, userMounts); err != nil {
		return err
	}
	// Last: the default seccomp profile depends on the final capabilities.
	if err := oci.WithSeccomp(spec.Seccomp, runtime.GOARCH)(s); err != nil {
		return err
	}
	if nets := spec.CNINetworks(); len(nets) > 0 && !joinsNetwork(ln.contribs) {
		return fmt.Errorf("network %q: no network isolator is configured to attach it: %w", nets[0], api.ErrInvalid)
	}
	if v, ok := unmountedVolume(spec, ln.contribs); !ok {
		return fmt.Errorf("volume %s/%s: no volume isolator is configured to mount it at %s: %w", v.Driver, v.Name, v.Target, api.ErrInvalid)
	}
	if s.Linux != nil {
		ln.rec.CgroupPath = s.Linux.CgroupsPath
	}
	return nil
}

func (ln *launch) writeBundle(context.Context) error {
	if err := ln.c.writeBundle(ln.rec.ID, ln.s); err != nil {
		return err
	}
	ln.rec.Phase = phasePrepared
	return ln.c.saveRecordWithRoom(ln.rec)
}

// isolates reports whether an isolator acts between the runtime's create
// and start.
func (ln *launch) isolates() bool {
	for _, iso := range ln.c.cfg.Isolators {
		if _, ok := iso.(isolators.PidIsolator); ok {
			return true
		}
	}
	return false
}

// create has the monitor create the container and report its pid. When no
// isolator acts between create and start, the runtime starts it in the
// same call.
func (ln *launch) create(context.Context) error {
	ln.l = &Launched{c: ln.c, opts: ln.opts}
	if ln.opts.Attach {
		// Opened before the process can run, so no output is missed.
		var err error
		if ln.l.log, err = ln.c.openLogForAttach(ln.rec.ID); err != nil {
			return err
		}
	}
	if err := writeMsg(ln.mon.control, monitorMsg{Go: true, Start: !ln.isolates()}); err != nil {
		return fmt.Errorf("container monitor: %w", err)
	}
	msg, err := readMsg(ln.mon.sync)
	if err != nil {
		return fmt.Errorf("container monitor: %w", err)
	}
	if msg.Error != "" {
		return msg.err()
	}
	ln.rec.Pid = msg.Pid
	return nil
}

func (ln *launch) isolate(ctx context.Context, pi isolators.PidIsolator) error {
	if err := pi.Isolate(ctx, &isolators.IsolateRequest{ContainerID: ln.rec.ID, Pid: ln.rec.Pid, Spec: ln.s}); err != nil {
		return fmt.Errorf("%s: %w", pi.Name(), err)
	}
	return nil
}

// start lets the created process run.
func (ln *launch) start(ctx context.Context) error {
	return ln.c.cfg.Runtime.Start(ctx, ln.rec.ID)
}

func (ln *launch) started(ctx context.Context, si isolators.StartedIsolator) error {
	if err := si.Started(ctx, &isolators.IsolateRequest{ContainerID: ln.rec.ID, Pid: ln.rec.Pid, Spec: ln.s}); err != nil {
		return fmt.Errorf("%s: %w", si.Name(), err)
	}
	return nil
}

// running checkpoints the running container.
func (ln *launch) running(context.Context) error {
	now := time.Now().UTC()
	ln.rec.StartedAt = &now
	ln.rec.Phase = phaseRunning
	return ln.c.saveRecordWithRoom(ln.rec)
}

// launched is what a successful Launch returns.
func (ln *launch) launched() *Launched {
	ln.l.Container = ln.c.view(ln.rec)
	ln.l.monitorStart = ln.rec.MonitorID
	if ln.opts.Attach {
		ln.l.sync = ln.mon.sync
		ln.keepSync = true
	}
	return ln.l
}
