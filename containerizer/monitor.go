package containerizer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
)

// monitorMsg is one line on the pipe from a monitor to its launcher.
type monitorMsg struct {
	Go    bool             `json:"go,omitempty"`    // launcher → monitor: the bundle is ready
	Start bool             `json:"start,omitempty"` // ... and start the process at once
	Pid   int              `json:"pid,omitempty"`
	Error string           `json:"error,omitempty"`
	Kind  string           `json:"kind,omitempty"`
	Exit  *api.Termination `json:"exit,omitempty"`
}

var errKinds = []struct {
	kind string
	err  error
}{
	{"command-not-found", api.ErrCommandNotFound},
	{"command-not-executable", api.ErrCommandNotExecutable},
	{"invalid", api.ErrInvalid},
	{"not-found", api.ErrNotFound},
	{"unavailable", api.ErrUnavailable},
	{"timeout", api.ErrTimeout},
}

func errMsg(err error) monitorMsg {
	m := monitorMsg{Error: err.Error()}
	for _, k := range errKinds {
		if errors.Is(err, k.err) {
			m.Kind = k.kind
			break
		}
	}
	return m
}

// monitorError keeps the monitor's message but matches the sentinel it
// reported.
type monitorError struct {
	msg      string
	sentinel error
}

func (e *monitorError) Error() string { return e.msg }
func (e *monitorError) Unwrap() error { return e.sentinel }

func (m monitorMsg) err() error {
	for _, k := range errKinds {
		if k.kind == m.Kind {
			return &monitorError{msg: m.Error, sentinel: k.err}
		}
	}
	return errors.New(m.Error)
}

func writeMsg(w io.Writer, m monitorMsg) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// readMsg reads one line without buffering past it, so a later call can
// read the next message from the same file.
func readMsg(r io.Reader) (monitorMsg, error) {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return monitorMsg{}, err
		}
	}
	var m monitorMsg
	if err := json.Unmarshal(line, &m); err != nil {
		return monitorMsg{}, fmt.Errorf("read monitor message: %w", err)
	}
	return m, nil
}

// procStartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/pid/stat), 0 if pid does not exist. Together with the
// pid it names a process across pid reuse.
func procStartTime(pid int) uint64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0 // a zombie is as good as gone
	}
	n, _ := strconv.ParseUint(fields[19], 10, 64)
	return n
}

// drainUntilClosed reads r until every writer has closed it (the monitor has
// exited) or the timeout passes.
func drainUntilClosed(r *os.File, timeout time.Duration) {
	_ = r.SetReadDeadline(time.Now().Add(timeout))
	_, _ = io.Copy(io.Discard, r)
}

func (c *Containerizer) monitorAlive(r *record) bool {
	if r.MonitorPid <= 0 {
		return false
	}
	st := procStartTime(r.MonitorPid)
	return st != 0 && (r.MonitorID == 0 || st == r.MonitorID)
}

// Monitor is the body of a container's monitor process, started by Launch
// with the container's ID and the launcher's pipe as fd 3. It makes itself
// the child subreaper, has the runtime create the container (so the
// container's init becomes its child), reports the pid, copies the
// container's output into its log, watches the isolators for limitations,
// reaps the init, and records the termination in the checkpoint before
// anything else, so it is never lost. Then it deletes the runtime state, runs
// every isolator's Cleanup in reverse order, removes the container when it
// was started with AutoRemove, and finally tells the launcher, if it is still
// listening, how the container ended.
func (c *Containerizer) Monitor(ctx context.Context, id string, syncPipe, control *os.File) error {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE, syscall.SIGTTOU, syscall.SIGTTIN)
	// Nothing this process starts (the runtime) may hold the launcher's
	// pipe: its closing tells the launcher that the monitor is gone.
	unix.CloseOnExec(int(syncPipe.Fd()))
	unix.CloseOnExec(int(control.Fd()))
	log := c.log.With("container", id, "monitor", os.Getpid())
	// Wait until the launcher has written the bundle; a closed pipe means
	// the launch was abandoned.
	goMsg, err := readMsg(control)
	if err != nil || !goMsg.Go {
		return nil
	}
	_ = control.Close()
	if err := becomeSubreaper(); err != nil {
		_ = writeMsg(syncPipe, errMsg(fmt.Errorf("become subreaper: %w", err)))
		return err
	}
	rec, err := c.loadRecord(id)
	if err != nil {
		_ = writeMsg(syncPipe, errMsg(err))
		return err
	}
	logf, err := os.OpenFile(c.logPath(id), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		_ = writeMsg(syncPipe, errMsg(err))
		return err
	}
	defer logf.Close()
	lw := &logWriter{f: logf}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); lw.copy("stdout", outR) }()
	go func() { defer copiers.Done(); lw.copy("stderr", errR) }()

	begin := time.Now()
	pid, err := c.cfg.Runtime.Create(ctx, id, c.bundleDir(id), &CreateOpts{
		PidFile: filepath.Join(c.containerDir(id), "init.pid"),
		Stdin:   os.Stdin, // /dev/null unless the launcher passed its own (-i)
		Stdout:  outW, Stderr: errW,
		Start: goMsg.Start,
	})
	_ = outW.Close()
	_ = errW.Close()
	logPhase(ctx, log, "create", "", begin, err)
	if err != nil {
		copiers.Wait()
		_ = writeMsg(syncPipe, errMsg(err))
		return err
	}
	if err := writeMsg(syncPipe, monitorMsg{Pid: pid}); err != nil {
		log.Warn("report pid to launcher", "err", err)
	}

	// Watch for limitations while the container lives.
	begin = time.Now()
	spec := c.readSpec(id)
	wctx, stopWatching := context.WithCancel(context.Background())
	limits := make(chan *isolators.Limitation, len(rec.Isolators))
	var watchers sync.WaitGroup
	for _, name := range rec.Isolators {
		w, ok := c.byName[name].(isolators.Watcher)
		if !ok {
			continue
		}
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			lim, err := w.Watch(wctx, &isolators.WatchRequest{ContainerID: id, Pid: pid, Spec: spec})
			if err != nil && wctx.Err() == nil {
				log.Warn("watch", "isolator", name, "err", err)
			}
			if lim != nil {
				limits <- lim
			}
		}()
	}
	exited := make(chan unix.WaitStatus, 1)
	go func() { exited <- waitPid(pid) }()

	var limitation *isolators.Limitation
	var status unix.WaitStatus
wait:
	for {
		select {
		case lim := <-limits:
			if limitation == nil {
				limitation = lim
				log.Info("limitation reached; destroying the container", "reason", lim.Reason, "message", lim.Message)
				if err := c.cfg.Runtime.Kill(context.Background(), id, syscall.SIGKILL, true); err != nil {
					log.Warn("kill after limitation", "err", err)
				}
			}
		case status = <-exited:
			break wait
		}
	}
	stopWatching()
	watchers.Wait()
	logPhase(ctx, log, "watch", "", begin, nil)
	close(limits)
	for lim := range limits {
		if limitation == nil {
			limitation = lim
		}
	}
	// The init is gone, and with its pid namespace every other process; the
	// pipes close unless something outside kept them. Don't wait forever.
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		log.Warn("container output still open after exit; closing the log")
	}

	lock, err := c.lockContainer(ctx, id)
	if err != nil {
		return err
	}
	rec, err = c.loadRecord(id)
	if isUnreadable(err) {
		// Quarantined while it ran: the exit can be recorded only in this
		// monitor's log. What it held is freed; its files stay.
		term := termination(status, false, limitation)
		log.Error("the container exited, but its checkpoint is unreadable; its exit is recorded only here",
			"exit_code", term.ExitCode, "reason", term.Reason, "err", err)
		if err := c.cleanupQuarantined(context.Background(), id); err != nil {
			log.Error("clean up after exit", "err", err)
		}
		lock.Unlock()
		_ = writeMsg(syncPipe, monitorMsg{Exit: term})
		return nil
	}
	if err != nil || rec.Phase != phaseRunning {
		// The launch failed and the launcher is undoing it.
		lock.Unlock()
		return nil
	}
	term := termination(status, c.killRequested(rec), limitation)
	stopped := c.stoppedHooks()
	var lastUsage *api.Usage
	if len(stopped) > 0 {
		// The last sample, for the hooks: the processes are gone, their
		// cgroup not yet.
		u, err := c.usage(ctx, rec, spec)
		if err != nil {
			log.Debug("last usage sample: parts are missing", "err", err)
		}
		lastUsage = u
	}
	hc := &HookContainer{ID: rec.ID, Name: rec.Name, Image: rec.Image, Labels: rec.Spec.Labels, CgroupPath: rec.CgroupPath}
	rec.Termination = term
	rec.Phase = phaseExited
	rec.Pid = 0
	// With AutoRemove nobody reads the record again; after a crash here
	// recovery removes the container all the same.
	recorded := true
	if !rec.Spec.AutoRemove {
		if err := c.saveFinalRecord(rec); err != nil {
			// Not even the spare room was enough. Clean up all the same:
			// recovery will record the container as lost.
			log.Error("record the exit", "exit_code", term.ExitCode, "reason", term.Reason, "err", err)
			recorded = false
		}
	}
	c.crash("recorded")
	begin = time.Now()
	cleanupErr := c.destroyLocked(context.Background(), rec, false)
	logPhase(ctx, log, "cleanup", "", begin, cleanupErr)
	if cleanupErr != nil {
		log.Error("clean up after exit", "err", cleanupErr)
	} else if !rec.Spec.AutoRemove && recorded {
		rec.Cleaned = true
		if err := c.saveFinalRecord(rec); err != nil {
			log.Error("checkpoint after cleanup", "err", err)
		}
	}
	if rec.Spec.AutoRemove && cleanupErr == nil {
		// Cleaned up just now: the removal only releases the files. (Not
		// checkpointed: after a crash here recovery cleans up again.)
		rec.Cleaned = true
		if err := c.destroyLocked(context.Background(), rec, true); err != nil {
			log.Error("auto-remove", "err", err)
		}
	}
	lock.Unlock()
	for _, h := range stopped {
		begin = time.Now()
		h.PostStop(context.Background(), hc, term, lastUsage)
		logPhase(ctx, log, "hook", "", begin, nil, slog.String("hook", h.Name()))
	}
	_ = writeMsg(syncPipe, monitorMsg{Exit: term})
	return nil
}

// stoppedHooks are the configured StoppedHooks, in order.
func (c *Containerizer) stoppedHooks() []StoppedHook {
	var out []StoppedHook
	for _, h := range c.cfg.Hooks {
		if sh, ok := h.(StoppedHook); ok {
			out = append(out, sh)
		}
	}
	return out
}

// waitPid reaps pid, a child of this (subreaper) process, and returns its
// status. If pid is not our child, it waits for it to disappear and reports
// an unknown status.
func waitPid(pid int) unix.WaitStatus {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == nil {
			return ws
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		break
	}
	// Not our child: wait for it to go, without its status.
	waitGone(pid, procStartTime(pid), -1)
	return unix.WaitStatus(0xffff) // neither exited nor signaled: unknown
}

func termination(ws unix.WaitStatus, killRequested bool, lim *isolators.Limitation) *api.Termination {
	t := &api.Termination{FinishedAt: time.Now().UTC()}
	switch {
	case ws.Exited():
		t.ExitCode = ws.ExitStatus()
		t.Reason = api.ReasonExited
	case ws.Signaled():
		t.ExitCode = 128 + int(ws.Signal())
		t.Signal = unix.SignalName(ws.Signal())
		t.Reason = api.ReasonSignaled
	default:
		t.ExitCode = -1
		t.Reason = api.ReasonLost
		t.Message = "the container's process was not a child of its monitor; exit status unknown"
	}
	if killRequested && t.Reason != api.ReasonLost {
		t.Reason = api.ReasonKilled
	}
	if lim != nil {
		t.Reason = lim.Reason
		t.Message = lim.Message
	}
	return t
}

// logWriter writes container output in the CRI log format, one line per
// record: "TIMESTAMP STREAM F|P CONTENT", P marking a partial line.
type logWriter struct {
	mu sync.Mutex
	f  *os.File
}

const maxLogLine = 16 * 1024

func (w *logWriter) copy(stream string, r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			tag := "P"
			if line[len(line)-1] == '\n' {
				tag = "F"
				line = line[:len(line)-1]
			}
			w.write(stream, tag, line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (w *logWriter) write(stream, tag string, content []byte) {
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	buf := make([]byte, 0, len(ts)+len(stream)+len(content)+5)
	buf = append(buf, ts...)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, ' ')
	buf = append(buf, tag...)
	buf = append(buf, ' ')
	buf = append(buf, content...)
	buf = append(buf, '\n')
	w.mu.Lock()
	_, _ = w.f.Write(buf)
	w.mu.Unlock()
}
