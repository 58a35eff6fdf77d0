package runc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

// waitDelay bounds how long a killed call may keep us waiting for its output
// pipes, should a process outside its process group hold them open.
const waitDelay = 2 * time.Second

// invocation is one run of the runtime binary.
type invocation struct {
	sub     string   // for messages and logs: "create", "state", ...
	args    []string // after the global flags
	timeout time.Duration
	// stdio, for create only, are the container's streams: they become the
	// runtime's own, and its stdout and stderr are not captured.
	stdio *containerizer.CreateOpts
	// bare leaves out --root and --log (for --version).
	bare bool
}

// runtimeError is a runtime that ran and exited non-zero.
type runtimeError struct {
	msg string // the runtime's message, from its log or else its stderr
	err error  // the *exec.ExitError
}

func (e *runtimeError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *runtimeError) Unwrap() error { return e.err }

// invoke runs the runtime once and returns its stdout (nil with stdio). The
// error is a *runtimeError when the runtime failed, or wraps api.ErrTimeout,
// api.ErrUnavailable or ctx's error.
func (r *Runtime) invoke(ctx context.Context, inv invocation) ([]byte, error) {
	timeout := inv.timeout
	if timeout <= 0 {
		timeout = r.timeout
	}
	if err := ctx.Err(); err != nil {
		return nil, r.ctxError(ctx, err, timeout)
	}

	var args []string
	var logPath string
	if !inv.bare {
		if r.root != "" {
			args = append(args, "--root", r.root)
		}
		// Without room for a log file (a full temporary dir), the call
		// runs all the same: its messages then come from its stderr.
		if f, err := os.CreateTemp("", "caisson-"+r.name+"-*.log"); err == nil {
			logPath = f.Name()
			f.Close()
			defer os.Remove(logPath)
			args = append(args, "--log", logPath, "--log-format", "json")
		} else {
			r.logger.Debug("runtime call without a log file", "err", err)
		}
	}
	args = append(args, inv.args...)

	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name := r.command
	if len(r.wrap) > 0 {
		name, args = r.wrap[0], append(append(append([]string(nil), r.wrap[1:]...), r.command), args...)
	}
	cmd := exec.CommandContext(cctx, name, args...)
	// Its own process group, so that a timeout kills what it forked too
	// (runc's init stages, a hook). The container's init is out of reach:
	// both runc and crun start it in a new session.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return os.ErrProcessDone
			}
			return err
		}
		return nil
	}
	cmd.WaitDelay = waitDelay
	var stdout, stderr bytes.Buffer
	if inv.stdio != nil {
		// *os.File values go to the child as they are: no pipes, no copying
		// goroutines, nothing for Wait to wait on once the runtime exits
		// while the container keeps the streams. A nil *os.File must not
		// become a non-nil io.Reader or io.Writer; exec uses /dev/null.
		if inv.stdio.Stdin != nil {
			cmd.Stdin = inv.stdio.Stdin
		}
		if inv.stdio.Stdout != nil {
			cmd.Stdout = inv.stdio.Stdout
		}
		if inv.stdio.Stderr != nil {
			cmd.Stderr = inv.stdio.Stderr
		}
	} else {
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
	}

	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	var lines []logLine
	if logPath != "" {
		lines = r.readLog(logPath, inv.sub)
	}
	r.logger.Debug("runtime call", "args", inv.args, "elapsed", elapsed, "err", err)

	if err == nil {
		return stdout.Bytes(), nil
	}
	if cerr := cctx.Err(); cerr != nil {
		// The call's context ended: the runtime was killed, or never ran.
		return nil, r.ctxError(ctx, cerr, timeout)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return nil, &runtimeError{msg: message(lines, stderr.Bytes(), r.name, inv.sub), err: err}
	}
	if cmd.ProcessState == nil && cannotRun(err) {
		return nil, fmt.Errorf("%w: %w", err, api.ErrUnavailable)
	}
	return nil, err
}

// cannotRun reports whether a start error means that the runtime binary is
// missing or is not something this host can run.
func cannotRun(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOEXEC) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR)
}

// ctxError is the error for a call that a context ended. A deadline, ours or
// the caller's, wraps api.ErrTimeout; a cancellation is the caller's error.
func (r *Runtime) ctxError(parent context.Context, err error, timeout time.Duration) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("%w: %w", perr, api.ErrTimeout)
	}
	return fmt.Errorf("killed after %s: %w", timeout, api.ErrTimeout)
}

// logLine is one line of the runtime's --log-format json log.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

func isErrorLevel(level string) bool {
	switch level {
	case "error", "fatal", "panic":
		return true
	}
	return false
}

// readLog reads the runtime's log file, passing its warnings to the logger.
func (r *Runtime) readLog(path, sub string) []logLine {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return nil
	}
	var lines []logLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var l logLine
		if json.Unmarshal(text, &l) != nil {
			// Not JSON: a runtime that ignores --log-format. Keep the text.
			l = logLine{Level: "error", Msg: string(text)}
		}
		lines = append(lines, l)
		if l.Level == "warning" || l.Level == "warn" {
			r.logger.Warn(l.Msg, "call", sub)
		}
	}
	return lines
}

// message picks the runtime's reason for failing: the last error in its log,
// or else the last line of its stderr (not captured for create).
func message(lines []logLine, stderr []byte, name, sub string) string {
	msg := ""
	for i := len(lines) - 1; i >= 0; i-- {
		if isErrorLevel(lines[i].Level) && lines[i].Msg != "" {
			msg = lines[i].Msg
			break
		}
	}
	if msg == "" {
		s := strings.TrimSpace(string(stderr))
		if i := strings.LastIndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		msg = s
	}
	if msg == "" {
		return "no message"
	}
	// runc says "runc create failed: ..."; the caller's error says that already.
	return strings.TrimPrefix(msg, name+" "+sub+" failed: ")
}

// The runtimes' complaints about the container's command at create time.
var (
	// runc: exec: "nosuch": executable file not found in $PATH
	// crun: executable file `nosuch` not found in $PATH: No such file or directory
	reNotInPath = regexp.MustCompile("executable file (?:`[^`]*` )?not found")
	// runc (Go's exec.LookPath, then its own eaccess check):
	//   exec: "/nosuch": stat /nosuch: no such file or directory
	//   exec: "/etc": permission denied
	//   exec: "/etc/passwd/x": stat /etc/passwd/x: not a directory
	//   exec /noexec-mount/echo: permission denied
	//   exec /bin/garbage: exec format error   (at start; printed to stderr)
	reRuncExec = regexp.MustCompile(`(?:^|: )exec(?:: "(?:[^"\\]|\\.)*"| /[^:]*): (.+)$`)
	// crun:
	//   open executable: Permission denied
	//   open executable: Operation not permitted   (a directory)
	//   open executable: Not a directory
	//   exec container process `/bin/garbage`: Exec format error
	//   exec container process (missing dynamic library?) `/bin/x`: No such file or directory
	reCrunExec = regexp.MustCompile("(?:^|: )(?:open executable|exec container process(?: \\(missing dynamic library\\?\\))? `[^`]*`): (.+)$")
)

// classifyCreate maps a create failure to api.ErrCommandNotFound (no such
// file: exit 127) or api.ErrCommandNotExecutable (any other reason the command
// cannot be executed: exit 126), as a shell would; nil for anything else.
func classifyCreate(msg string) error {
	if reNotInPath.MatchString(msg) {
		return api.ErrCommandNotFound
	}
	for _, re := range []*regexp.Regexp{reRuncExec, reCrunExec} {
		if m := re.FindStringSubmatch(msg); m != nil {
			if strings.HasSuffix(strings.ToLower(m[1]), "no such file or directory") {
				return api.ErrCommandNotFound
			}
			return api.ErrCommandNotExecutable
		}
	}
	return nil
}

// reMissing matches runc's "container does not exist" and the "container
// `id` does not exist" of other runtimes.
var reMissing = regexp.MustCompile("container (?:`[^`]*` |\"[^\"]*\" |'[^']*' )?does not exist")

// isNotFound reports whether msg says that container id is unknown. crun 1.8
// says so only through the state files it cannot open:
//
//	error opening file `/root/id/status`: No such file or directory
//	cannot open directory '/root/id': No such file or directory
func isNotFound(msg, id string) bool {
	if reMissing.MatchString(msg) {
		return true
	}
	if !strings.Contains(strings.ToLower(msg), "no such file or directory") {
		return false
	}
	return strings.Contains(msg, "/"+id+"/status`") || strings.Contains(msg, "/"+id+"'")
}

// isNotRunning reports whether a kill failed because nothing runs:
// runc "container not running", crun "container `id` is not running" and
// "kill container: No such process".
func isNotRunning(msg string) bool {
	lower := strings.ToLower(msg)
	return strings.Contains(lower, "container not running") ||
		strings.Contains(lower, "is not running") ||
		strings.Contains(lower, "no such process")
}

// isNotStartable reports whether a start failed because the container is past
// created: runc "cannot start an already running container", "cannot start a
// container that has stopped"; crun "cannot open `/root/id/exec.fifo`: No
// such file or directory" and "container `id` is not running".
func isNotStartable(msg, id string) bool {
	lower := strings.ToLower(msg)
	return strings.Contains(lower, "cannot start a") ||
		strings.Contains(lower, "is not running") ||
		strings.Contains(msg, "/"+id+"/exec.fifo`")
}

// isNotStopped reports whether a delete without force failed because the
// container runs: runc "cannot delete container id that is not stopped:
// running", crun "the container `id` is not in `created` or `stopped` state".
func isNotStopped(msg string) bool {
	return strings.Contains(msg, "that is not stopped") ||
		strings.Contains(msg, "is not in `created` or `stopped` state")
}
