package containerizer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/flock"
	"github.com/caisson/caisson/internal/safefile"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// Config wires a containerizer. Only cmd/caisson (and tests) build one.
type Config struct {
	// Root is the work dir (/var/lib/caisson): checkpoints, bundles, logs,
	// root filesystems. It survives reboots.
	Root string
	// RunRoot is the runtime dir (/run/caisson): the runtime's state. It is
	// gone after a reboot.
	RunRoot     string
	Runtime     Runtime
	Provisioner Provisioner
	// Isolators run in this order for Prepare and Isolate, and in reverse
	// for Cleanup.
	Isolators []isolators.Isolator
	// Hooks are the admin's hooks (see Hook), in the order they run.
	Hooks []Hook
	// MonitorCommand is the argv that starts a container's monitor; the
	// container ID is appended. cmd/caisson points it at its own hidden
	// "monitor" subcommand, which calls Monitor.
	MonitorCommand []string
	// PrepareMonitor, when set, is called before each monitor starts, to
	// make what MonitorCommand needs and what a process that starts no
	// monitor (a listing, a removal) must not make: cmd/caisson writes
	// there the configuration file its monitor command names.
	PrepareMonitor func() error
	// SeccompAllow is the admin's policy on the seccomp profiles a
	// container's spec may select (api.SeccompDefault, api.SeccompCustom,
	// api.SeccompUnconfined); a launch that selects another is refused
	// with an error wrapping api.ErrForbidden. Empty allows every one, as
	// Docker does. Allowing custom lets a spec choose any filter, one
	// that allows every call included.
	SeccompAllow []string
	Logger       *slog.Logger
	// CrashPoint, when set, is called between launch steps with the name of
	// the step just done. Tests use it to crash the process there.
	CrashPoint func(step string)
}

// Containerizer launches, watches and destroys containers. It keeps no state
// in memory that is not also in a checkpoint, so any number of processes
// (CLI invocations, the agent, monitors) can use one root at once.
type Containerizer struct {
	cfg    Config
	log    *slog.Logger
	byName map[string]isolators.Isolator
}

// New checks cfg and makes the state directories.
func New(cfg Config) (*Containerizer, error) {
	if cfg.Root == "" || cfg.RunRoot == "" {
		return nil, fmt.Errorf("root and run root must be set: %w", api.ErrInvalid)
	}
	if cfg.Runtime == nil || cfg.Provisioner == nil {
		return nil, fmt.Errorf("a runtime and a provisioner are required: %w", api.ErrInvalid)
	}
	if err := CheckSeccompAllow(cfg.SeccompAllow); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{filepath.Join(cfg.Root, "containers"), filepath.Join(cfg.Root, "owned"), filepath.Join(cfg.Root, "trash"), cfg.RunRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	c := &Containerizer{cfg: cfg, log: cfg.Logger, byName: map[string]isolators.Isolator{}}
	for _, iso := range cfg.Isolators {
		if _, dup := c.byName[iso.Name()]; dup {
			return nil, fmt.Errorf("isolator %s listed twice: %w", iso.Name(), api.ErrInvalid)
		}
		c.byName[iso.Name()] = iso
	}
	return c, nil
}

// CheckSeccompAllow checks a value of Config.SeccompAllow: every name must
// be a profile api.Seccomp selects.
func CheckSeccompAllow(allow []string) error {
	for _, p := range allow {
		if !slices.Contains(api.SeccompProfiles, p) {
			return fmt.Errorf("seccomp policy: unknown profile %q (want %s): %w", p, strings.Join(api.SeccompProfiles, ", "), api.ErrInvalid)
		}
	}
	return nil
}

func (c *Containerizer) crash(step string) {
	if c.cfg.CrashPoint != nil {
		c.cfg.CrashPoint(step)
	}
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// LaunchOptions tune a launch.
type LaunchOptions struct {
	// Attach keeps a channel to the monitor open so that Launched.Wait
	// returns the termination as soon as the container is cleaned up, and
	// copies the container's output to Stdout and Stderr until then.
	Attach         bool
	Stdout, Stderr io.Writer
	// Stdin, when set, becomes the container's standard input (Docker's
	// -i); otherwise the container reads /dev/null.
	Stdin *os.File
	// Task, for the agent's launches, is the cluster's task the container
	// runs; hooks are told it.
	Task *api.TaskLaunch
}

// Launched is a started container.
type Launched struct {
	Container api.Container
	c         *Containerizer
	sync      *os.File
	log       *os.File
	opts      LaunchOptions
	// monitorStart is the monitor's start time, which names it with
	// Container.MonitorPid.
	monitorStart uint64
}

// Wait blocks until the container has exited and been cleaned up (and, with
// AutoRemove, removed) and returns how it ended.
func (l *Launched) Wait(ctx context.Context) (*api.Termination, error) {
	if l.log != nil {
		stop := make(chan struct{})
		copied := make(chan error, 1)
		go func() {
			copied <- followLog(ctx, l.log, LogOptions{Stdout: l.opts.Stdout, Stderr: l.opts.Stderr}, stop)
		}()
		defer func() {
			close(stop)
			<-copied
			_ = l.log.Close()
			l.log = nil
		}()
	}
	if l.sync != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-ctx.Done():
				_ = l.sync.SetReadDeadline(time.Now())
			case <-done:
			}
		}()
		msg, err := readMsg(l.sync)
		if err == nil && msg.Exit != nil {
			// The monitor exits right after; wait for it so that nothing
			// of the container outlives this call: its end of the pipe
			// closes a little before it is gone.
			drainUntilClosed(l.sync, 10*time.Second)
			waitGone(l.Container.MonitorPid, l.monitorStart, 10*time.Second)
		}
		_ = l.sync.Close()
		l.sync = nil
		if err == nil && msg.Exit != nil {
			if ct := l.Container; ct.Spec.AutoRemove {
				l.c.removed(ctx, &HookContainer{ID: ct.ID, Name: ct.Name, Image: ct.Image, Labels: ct.Spec.Labels, CgroupPath: ct.CgroupPath})
			}
			return msg.Exit, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// The monitor went away without telling: fall back to the checkpoint.
	}
	return l.c.Wait(ctx, l.Container.ID)
}

// Close releases the channel to the monitor without waiting.
func (l *Launched) Close() {
	if l.log != nil {
		_ = l.log.Close()
		l.log = nil
	}
	if l.sync != nil {
		_ = l.sync.Close()
		l.sync = nil
	}
}

// validateSpec checks a spec before anything of its container exists, and
// fills in its defaults. seccompAllow is Config.SeccompAllow.
func validateSpec(s *api.ContainerSpec, seccompAllow []string) error {
	if s.Name != "" && !nameRE.MatchString(s.Name) {
		return &api.FieldError{Field: "name", Err: fmt.Errorf("container name %q must match %s: %w", s.Name, nameRE, api.ErrInvalid)}
	}
	if s.Image != "" && s.Rootfs != "" {
		return &api.FieldError{Field: "rootfs", Err: fmt.Errorf("an image and a root filesystem directory cannot both be given: %w", api.ErrInvalid)}
	}
	if err := validateNetworks(s); err != nil {
		return err
	}
	if s.WorkingDir != "" && !strings.HasPrefix(s.WorkingDir, "/") {
		return &api.FieldError{Field: "working_dir", Err: fmt.Errorf("working directory %q is not absolute: %w", s.WorkingDir, api.ErrInvalid)}
	}
	for _, kv := range s.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return &api.FieldError{Field: "env", Err: fmt.Errorf("environment variable %q has no name: %w", kv, api.ErrInvalid)}
		}
	}
	var err error
	if s.Seccomp, err = s.Seccomp.Normalize(); err != nil {
		return &api.FieldError{Field: "seccomp", Err: err}
	}
	if len(seccompAllow) > 0 && !slices.Contains(seccompAllow, s.Seccomp.Profile) {
		return &api.FieldError{Field: "seccomp", Err: fmt.Errorf("seccomp profile %s is not allowed on this host (allowed: %s): %w", s.Seccomp.Profile, strings.Join(seccompAllow, ", "), api.ErrForbidden)}
	}
	// A profile that cannot be converted is refused before anything of the
	// container exists. The filter in force is converted again at the end
	// of the launch, for the container's final capabilities.
	if _, err := oci.SeccompFilter(s.Seccomp, runtime.GOARCH, oci.DefaultCapabilities()); err != nil {
		return &api.FieldError{Field: "seccomp", Err: err}
	}
	r := s.Resources
	for _, l := range []struct {
		field    string
		negative bool
	}{
		{"resources.cpus", r.CPUs < 0},
		{"resources.memory_bytes", r.MemoryBytes < 0},
		{"resources.memory_reservation_bytes", r.MemoryReservationBytes < 0},
		{"resources.pids_limit", r.PidsLimit < 0},
		{"shm_size_bytes", s.ShmSizeBytes < 0},
	} {
		if l.negative {
			return &api.FieldError{Field: l.field, Err: fmt.Errorf("a resource limit cannot be negative: %w", api.ErrInvalid)}
		}
	}
	return nil
}

// reserve takes the name and makes the container's directory, holding the
// root lock so two launches cannot take one name. It returns with the
// container's own lock held.
func (c *Containerizer) reserve(ctx context.Context, spec api.ContainerSpec) (*record, *fileLock, error) {
	rootLock, err := c.lockRoot(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer rootLock.Unlock()
	id := newID()
	if spec.Name == "" {
		spec.Name = generateName(id)
	}
	recs, bad, err := c.listRecords()
	if err != nil {
		return nil, nil, err
	}
	for _, r := range recs {
		if r.Name == spec.Name {
			return nil, nil, fmt.Errorf("container name %q is already in use by container %s: %w", spec.Name, ShortID(r.ID), api.ErrAlreadyExists)
		}
	}
	for _, q := range bad {
		if q.name == spec.Name {
			return nil, nil, fmt.Errorf("container name %q is already in use by container %s, whose checkpoint is unreadable: %w", spec.Name, ShortID(q.id), api.ErrAlreadyExists)
		}
	}
	// Claimed before anything of it exists, so recovery knows whatever
	// carries this ID is ours.
	if err := c.claim(id); err != nil {
		return nil, nil, err
	}
	abandon := func() {
		if os.RemoveAll(c.containerDir(id)) == nil {
			_ = c.unclaim(id)
		}
	}
	if err := os.MkdirAll(c.containerDir(id), 0o700); err != nil {
		abandon()
		return nil, nil, err
	}
	lock, err := flock.Acquire(c.lockPath(id), false) // new: nobody else knows it yet
	if err != nil {
		abandon()
		return nil, nil, err
	}
	// A custom seccomp profile (up to api.MaxSeccompProfileBytes) is not
	// kept: every checkpoint would carry it, and the room kept for the last
	// one would not hold it. Its source and digest say which it was; the
	// bundle holds the filter made from it.
	spec.Seccomp.Custom = ""
	rec := &record{
		ID: id, Name: spec.Name, Spec: spec, Phase: phaseReserved, Runtime: c.cfg.Runtime.Name(),
		BootID: bootID(), CreatedAt: time.Now().UTC(),
	}
	// Every isolator is listed before any runs, so Cleanup reaches each
	// one however far the launch gets.
	for _, iso := range c.cfg.Isolators {
		rec.Isolators = append(rec.Isolators, iso.Name())
	}
	if err := c.saveRecordWithRoom(rec); err != nil {
		lock.Unlock()
		abandon()
		return nil, nil, err
	}
	return rec, lock, nil
}

func generateName(id string) string { return "caisson-" + id[:12] }

func (c *Containerizer) bundleDir(id string) string {
	return filepath.Join(c.containerDir(id), "bundle")
}

func (c *Containerizer) logPath(id string) string {
	return filepath.Join(c.containerDir(id), "container.log")
}

func (c *Containerizer) writeBundle(id string, s *oci.Spec) error {
	if err := os.MkdirAll(c.bundleDir(id), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	// The bundle is only read by the runtime right away, and by Cleanup: it
	// needs no flush (after a power loss the container is gone anyway).
	return atomicfile.Write(filepath.Join(c.bundleDir(id), "config.json"), data, 0o600, false)
}

// readSpec returns the runtime spec a container was created with, or nil.
func (c *Containerizer) readSpec(id string) *oci.Spec {
	data, err := safefile.ReadFile(filepath.Join(c.bundleDir(id), "config.json"), maxBundleSize)
	if err != nil {
		return nil
	}
	var s oci.Spec
	if json.Unmarshal(data, &s) != nil {
		return nil
	}
	return &s
}

// buildSpec makes the runtime spec from the hardened default, the image's
// defaults and the user's request, before the isolators contribute.
func (c *Containerizer) buildSpec(rec *record, rootfs *Rootfs) (*oci.Spec, error) {
	spec := rec.Spec
	img := rootfs.Config
	s := oci.Default()
	opts := []oci.SpecOpt{oci.WithRoot(rootfs.Path, rootfs.Readonly), oci.WithMounts(rootfs.Mounts...)}

	// Command: the user's entrypoint/command replace the image's, as in Docker.
	entry, cmd := img.Entrypoint, img.Cmd
	if spec.Entrypoint != nil {
		entry, cmd = spec.Entrypoint, nil
	}
	if len(spec.Command) > 0 {
		cmd = spec.Command
	}
	args := append(append([]string(nil), entry...), cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command given and the image has none: %w", api.ErrInvalid)
	}
	opts = append(opts, oci.WithArgs(args...))

	hostname := spec.Hostname
	if hostname == "" {
		hostname = rec.ID[:12]
	}
	if spec.HostNetwork() {
		opts = append(opts, oci.WithoutNamespace(specs.NetworkNamespace))
		if spec.Hostname == "" {
			opts = append(opts, oci.WithoutNamespace(specs.UTSNamespace))
			hostname, _ = os.Hostname()
		}
	}
	if oci.HasNamespace(s, specs.UTSNamespace) || spec.Hostname != "" {
		opts = append(opts, oci.WithHostname(hostname))
	}

	user := spec.User
	if user == "" {
		user = img.User
	}
	u, err := resolveUser(rootfs.Path, user)
	if err != nil {
		return nil, err
	}
	opts = append(opts, oci.WithUser(u.UID, u.GID, u.Additional...))

	env := []string{"PATH=" + oci.DefaultPath, "HOSTNAME=" + hostname, "HOME=" + u.Home}
	env = append(env, img.Env...)
	env = append(env, spec.Env...)
	opts = append(opts, oci.WithEnv(env...))

	cwd := img.WorkingDir
	if spec.WorkingDir != "" {
		cwd = spec.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	opts = append(opts, oci.WithCwd(cwd))
	if spec.ShmSizeBytes > 0 {
		opts = append(opts, oci.WithMounts(specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", fmt.Sprintf("size=%dk", (spec.ShmSizeBytes+1023)/1024)}}))
	}
	opts = append(opts, oci.WithAnnotations(map[string]string{
		annotationName: rec.Name,
		annotationID:   rec.ID,
	}))
	if err := oci.Apply(s, opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// listRecords reads every checkpoint under the root, and lists apart the
// containers whose checkpoints cannot be read (quarantined). It skips
// directories without a checkpoint: a launch that has not written it yet,
// or debris recovery will remove.
func (c *Containerizer) listRecords() ([]*record, []*quarantined, error) {
	entries, err := os.ReadDir(filepath.Join(c.cfg.Root, "containers"))
	if err != nil {
		return nil, nil, err
	}
	var out []*record
	var bad []*quarantined
	for _, e := range entries {
		if !e.IsDir() || !idRE.MatchString(e.Name()) {
			continue // not a container: only newID names them
		}
		r, err := c.loadRecord(e.Name())
		if isUnreadable(err) {
			bad = append(bad, c.quarantine(e.Name(), err))
			continue
		}
		if err != nil {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, bad, nil
}

// ShortID is the 12-character form of a container ID, as ps shows it (an
// ID too short for it is shown whole).
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// checkID refuses what cannot name a container: only what newID makes
// does, and anything else under the containers directory is not one.
func checkID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("no such container: %s: %w", id, api.ErrNotFound)
	}
	return nil
}

// Resolve turns a full ID, a unique ID prefix or a name into a container ID.
func (c *Containerizer) Resolve(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("empty container reference: %w", api.ErrInvalid)
	}
	recs, bad, err := c.listRecords()
	if err != nil {
		return "", err
	}
	type named struct{ id, name string }
	all := make([]named, 0, len(recs)+len(bad))
	for _, r := range recs {
		all = append(all, named{r.ID, r.Name})
	}
	for _, q := range bad {
		all = append(all, named{q.id, q.name})
	}
	var matches []string
	for _, r := range all {
		if r.id == ref || (r.name != "" && r.name == ref) {
			return r.id, nil
		}
		if strings.HasPrefix(r.id, ref) {
			matches = append(matches, r.id)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", fmt.Errorf("no such container: %s: %w", ref, api.ErrNotFound)
	default:
		return "", fmt.Errorf("container reference %s matches %d containers: %w", ref, len(matches), api.ErrInvalid)
	}
}

// view turns a checkpoint into what users see.
func (c *Containerizer) view(r *record) api.Container {
	v := api.Container{
		ID: r.ID, Name: r.Name, Spec: r.Spec, Pid: r.Pid, MonitorPid: r.MonitorPid,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, Termination: r.Termination,
		CgroupPath: r.CgroupPath, Image: r.Image, ImageDigest: r.ImageDigest,
		Command: r.Command, Bundle: c.bundleDir(r.ID), Runtime: r.Runtime, Isolators: r.Isolators,
	}
	if v.Spec.Seccomp.Profile == "" {
		// Every launch records the profile it chose; a checkpoint without
		// one is older than seccomp in caisson: its container runs with
		// no filter.
		v.Spec.Seccomp.Profile = api.SeccompUnconfined
	}
	switch r.Phase {
	case phaseExited:
		v.State = api.StateExited
		v.Pid = 0
	case phaseRunning:
		v.State = api.StateRunning
	default:
		v.State = api.StateCreating
	}
	if r.Phase == phaseRunning && !c.monitorAlive(r) {
		v.State = api.StateUnknown
	}
	return v
}

// List returns every container, newest first, and then those whose
// checkpoints cannot be read.
func (c *Containerizer) List(ctx context.Context) ([]api.Container, error) {
	recs, bad, err := c.listRecords()
	if err != nil {
		return nil, err
	}
	out := make([]api.Container, 0, len(recs)+len(bad))
	for _, r := range recs {
		out = append(out, c.view(r))
	}
	for _, q := range bad {
		out = append(out, c.quarantinedView(q))
	}
	return out, nil
}

// Inspect returns one container, with what its isolators report. A
// container whose checkpoint cannot be read is shown as unreadable, with
// the reason.
func (c *Containerizer) Inspect(ctx context.Context, id string) (*api.Container, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	r, err := c.loadRecord(id)
	if isUnreadable(err) {
		v := c.quarantinedView(c.quarantine(id, err))
		return &v, nil
	}
	if err != nil {
		return nil, err
	}
	v := c.view(r)
	if v.State == api.StateRunning {
		spec := c.readSpec(id)
		var resp isolators.StatusResponse
		for _, name := range r.Isolators {
			if sr, ok := c.byName[name].(isolators.StatusReporter); ok {
				if err := sr.Status(ctx, &isolators.StatusRequest{ContainerID: id, Pid: r.Pid, Spec: spec}, &resp); err != nil {
					c.log.Warn("isolator status", "isolator", name, "container", id, "err", err)
				}
			}
		}
		v.Networks = resp.Networks
		v.GPUs = resp.GPUs
	}
	return &v, nil
}

// Usage merges what every isolator reports about a running container.
func (c *Containerizer) Usage(ctx context.Context, id string) (*api.Usage, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	r, err := c.loadRecord(id)
	if err != nil {
		return nil, err
	}
	if r.Phase != phaseRunning {
		return nil, fmt.Errorf("container %s is not running: %w", r.Name, api.ErrWrongState)
	}
	return c.usage(ctx, r, c.readSpec(id))
}

// usage asks every UsageReporter of r's container for its part of a
// sample; an isolator's error leaves its part out and is returned, joined,
// with what the others said.
func (c *Containerizer) usage(ctx context.Context, r *record, spec *oci.Spec) (*api.Usage, error) {
	u := &api.Usage{Timestamp: time.Now().UTC()}
	var errs []error
	for _, name := range r.Isolators {
		if ur, ok := c.byName[name].(isolators.UsageReporter); ok {
			if err := ur.Usage(ctx, &isolators.UsageRequest{ContainerID: r.ID, Pid: r.Pid, Spec: spec}, u); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	if len(errs) > 0 {
		return u, errors.Join(errs...)
	}
	return u, nil
}

func (c *Containerizer) notFoundOr(id string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no such container: %s: %w", id, api.ErrNotFound)
	}
	return err
}

// Kill sends sig to a running container's init process.
func (c *Containerizer) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	if err := checkID(id); err != nil {
		return err
	}
	lock, err := c.lockContainer(ctx, id)
	if err != nil {
		return c.notFoundOr(id, err)
	}
	r, err := c.loadRecord(id)
	if isUnreadable(err) {
		lock.Unlock()
		return c.killQuarantined(ctx, id, sig)
	}
	if err != nil {
		lock.Unlock()
		return err
	}
	if r.Phase != phaseRunning {
		lock.Unlock()
		return fmt.Errorf("container %s is not running: %w", r.Name, api.ErrWrongState)
	}
	if sig == syscall.SIGKILL {
		c.markKillRequested(r)
	}
	lock.Unlock()
	return c.cfg.Runtime.Kill(ctx, id, sig, false)
}

// markKillRequested records, before a kill, that the user asked for it,
// so the termination says killed. A kill must work with the state dir
// full: the checkpoint is not needed for that, and when it cannot be
// written an empty marker file (an inode, no data) stands in for it; when
// even that fails, the termination will say signaled.
func (c *Containerizer) markKillRequested(r *record) {
	r.KillRequested = true
	err := c.saveRecord(r)
	if err == nil {
		return
	}
	if _, lerr := os.Lstat(c.killMarkerPath(r.ID)); lerr == nil {
		return // marked before (whatever is there: it is never opened)
	}
	f, ferr := os.OpenFile(c.killMarkerPath(r.ID), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if ferr == nil {
		_ = f.Close()
		return
	}
	c.log.Warn("cannot record the kill; its termination will say signaled", "container", r.ID, "err", err)
}

func (c *Containerizer) killMarkerPath(id string) string {
	return filepath.Join(c.containerDir(id), "kill-requested")
}

// killRequested reports whether the user killed the container.
func (c *Containerizer) killRequested(r *record) bool {
	if r.KillRequested {
		return true
	}
	_, err := os.Lstat(c.killMarkerPath(r.ID))
	return err == nil
}

// Wait blocks until the container has exited and been cleaned up, or is
// gone, and returns its termination (nil when it was removed).
func (c *Containerizer) Wait(ctx context.Context, id string) (*api.Termination, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r, err := c.loadRecord(id)
		if errors.Is(err, api.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if r.Termination != nil && r.Cleaned {
			// The monitor exits right after its last checkpoint (or
			// removes the container first, with AutoRemove).
			if r.MonitorPid > 0 {
				waitGone(r.MonitorPid, r.MonitorID, 10*time.Second)
			}
			if _, err := c.loadRecord(id); errors.Is(err, api.ErrNotFound) {
				return nil, nil
			}
			return r.Termination, nil
		}
		if (r.Phase == phaseRunning || (r.Phase == phaseExited && !r.Cleaned)) && !c.monitorAlive(r) {
			// Nobody will write the termination: recover it now.
			if err := c.recoverOne(ctx, id); err != nil {
				return nil, err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// Remove deletes an exited container and everything it left: root
// filesystem, bundle, logs, checkpoint. With force a running container is
// killed first. Of several removals of one container at once, exactly one
// removes it; the others wait for it and then get an error wrapping
// api.ErrNotFound, as for a container that never was.
func (c *Containerizer) Remove(ctx context.Context, id string, force bool) error {
	if err := checkID(id); err != nil {
		return err
	}
	// The directory's own lock needs no free space.
	rl, err := flock.AcquireDir(ctx, c.containerDir(id))
	if err != nil {
		return c.notFoundOr(id, err)
	}
	defer rl.Unlock()
	return c.removeHeld(ctx, id, force)
}

// removeHeld is Remove under the removal lock, which Remove holds from when
// the container exists until it is gone: when it goes meanwhile (its monitor
// removed it after the kill, with AutoRemove), this removal removed it.
func (c *Containerizer) removeHeld(ctx context.Context, id string, force bool) error {
	r, err := c.loadRecord(id)
	if isUnreadable(err) {
		if !force {
			return fmt.Errorf("removing a container whose checkpoint is unreadable destroys its process and its files; do it with force: %w", err)
		}
		return c.removeQuarantined(ctx, id)
	}
	if errors.Is(err, api.ErrNotFound) {
		return fmt.Errorf("no such container: %s: %w", id, api.ErrNotFound) // a reservation, not yet a container
	}
	if err != nil {
		return err
	}
	if r.Phase == phaseRunning {
		if !force && c.monitorAlive(r) {
			return fmt.Errorf("container %s is running: stop it or use force: %w", r.Name, api.ErrWrongState)
		}
		if c.monitorAlive(r) {
			if err := c.Kill(ctx, id, syscall.SIGKILL); err != nil && !errors.Is(err, api.ErrWrongState) {
				return err
			}
		}
		if _, err := c.Wait(ctx, id); err != nil {
			if !force || ctx.Err() != nil {
				return err
			}
			// The exit could not be recorded (a full state dir): the
			// container goes all the same.
			c.log.Warn("removing a container whose exit could not be recorded", "container", id, "err", err)
		}
	}
	lock, err := c.lockContainer(ctx, id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile (auto-remove)
		}
		return err
	}
	defer lock.Unlock()
	r, err = c.loadRecord(id)
	if errors.Is(err, api.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.destroyLocked(ctx, r, true); err != nil {
		return err
	}
	c.removed(ctx, &HookContainer{ID: r.ID, Name: r.Name, Image: r.Image, Labels: r.Spec.Labels, CgroupPath: r.CgroupPath})
	return nil
}

// removed tells the RemovedHooks that hc's container is gone.
func (c *Containerizer) removed(ctx context.Context, hc *HookContainer) {
	for _, h := range c.cfg.Hooks {
		if rh, ok := h.(RemovedHook); ok {
			rh.Removed(context.WithoutCancel(ctx), hc)
		}
	}
}

// destroyLocked undoes everything a container holds, in reverse order of
// the launch: the runtime's container, the isolators, the root filesystem,
// and with remove the directory itself. It is safe at any phase and after
// any crash. The caller holds the container's lock.
func (c *Containerizer) destroyLocked(ctx context.Context, r *record, remove bool) error {
	var errs []error
	if !r.Cleaned {
		if err := c.cfg.Runtime.Delete(ctx, r.ID, true); err != nil {
			errs = append(errs, err)
		}
		spec := c.readSpec(r.ID)
		for i := len(r.Isolators) - 1; i >= 0; i-- {
			name := r.Isolators[i]
			cl, ok := c.byName[name].(isolators.Cleaner)
			if !ok {
				if _, known := c.byName[name]; !known {
					c.log.Warn("isolator recorded in checkpoint is not configured; nothing to clean", "isolator", name, "container", r.ID)
				}
				continue
			}
			if err := cl.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: r.ID, Spec: spec}); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		// The process is gone: its root filesystem need not stay mounted
		// (logs and the checkpoint live beside it, not in it).
		if u, ok := c.cfg.Provisioner.(Unmounter); ok && !remove {
			if err := u.Unmount(ctx, filepath.Join(c.containerDir(r.ID), "fs")); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if remove {
		if err := c.cfg.Provisioner.Release(ctx, filepath.Join(c.containerDir(r.ID), "fs")); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("destroy container %s: %w", r.ID, errors.Join(errs...))
	}
	if remove {
		return c.removeDir(ctx, r.ID)
	}
	return nil
}

// removeDir deletes a container's directory, once nothing of the container
// is left: it moves it into the trash first, so that nobody ever sees a
// directory with part of its files (recovery would take it for one whose
// checkpoint was lost), and then forgets the container.
func (c *Containerizer) removeDir(ctx context.Context, id string) error {
	trash := filepath.Join(c.cfg.Root, "trash", id)
	dir := c.containerDir(id)
	if err := os.Rename(dir, trash); err == nil {
		dir = trash
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("move a container directory to the trash; removing it in place", "container", id, "err", err)
	}
	c.crash("trashed")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	c.crash("removed")
	return c.unclaim(id)
}

// monitorConn is the launcher's end of the pipes to a monitor: control
// carries "go" once the bundle is written, sync the pid, errors and the exit.
type monitorConn struct {
	control *os.File
	sync    *os.File
}

// startMonitor starts the container's monitor process in a session of its
// own, so it outlives whatever started it. The monitor waits for "go" on its
// control pipe (and exits if the pipe closes first), then reports on sync.
func (c *Containerizer) startMonitor(rec *record, stdin *os.File) (*monitorConn, error) {
	if len(c.cfg.MonitorCommand) == 0 {
		return nil, fmt.Errorf("no monitor command configured: %w", api.ErrInvalid)
	}
	if c.cfg.PrepareMonitor != nil {
		if err := c.cfg.PrepareMonitor(); err != nil {
			return nil, fmt.Errorf("prepare the monitor: %w", err)
		}
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer syncW.Close()
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		_ = syncR.Close()
		return nil, err
	}
	defer ctlR.Close()
	fail := func(err error) (*monitorConn, error) {
		_ = syncR.Close()
		_ = ctlW.Close()
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(c.containerDir(rec.ID), "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	// The container log exists before the container does, so followers can
	// open it before it starts.
	if f, err := os.OpenFile(c.logPath(rec.ID), os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		_ = f.Close()
	}
	args := append(append([]string(nil), c.cfg.MonitorCommand...), rec.ID)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.ExtraFiles = []*os.File{syncW, ctlR}
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdin != nil {
		cmd.Stdin = stdin // the monitor hands its stdin to the container
	}
	cmd.Env = append(os.Environ(), "CAISSON_MONITOR_SYNC_FD=3", "CAISSON_MONITOR_CONTROL_FD=4")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start monitor: %w", err))
	}
	rec.MonitorPid = cmd.Process.Pid
	rec.MonitorID = procStartTime(cmd.Process.Pid)
	go func() { _ = cmd.Wait() }() // reap it if this process lives longer
	return &monitorConn{control: ctlW, sync: syncR}, nil
}
