package agenthook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/tailbuf"
)

// stderrKept is how much of a hook's standard error its failure quotes:
// the end of it.
const stderrKept = 4 << 10

// drainAfterExit bounds the wait for a hook's standard output to close
// once the hook and what it started are gone: only a process that escaped
// both its process group and its cgroup (a host without cgroup v2) can
// still hold it.
const drainAfterExit = time.Second

// runner runs exec hooks.
type runner struct {
	log *slog.Logger
	// jail puts each run in a cgroup of its own; nil uses the process
	// group alone, and so does noJail once starting a hook in its cgroup
	// has failed.
	jail   *jail
	noJail atomic.Bool
}

// run runs h with req as its standard input and returns its standard
// output. The hook runs in a process group (and, with a jail, a cgroup) of
// its own; when it exits or times out, everything left in them is
// killed, so nothing it started outlives it. The error, with the hook's
// point but not its name (callers add it), says why it failed and quotes
// the end of its standard error.
func (r *runner) run(ctx context.Context, h *ExecHook, req any) ([]byte, error) {
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout())
	defer cancel()

	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outW.Close()
		return nil, err
	}
	defer errR.Close()

	newCmd := func() *exec.Cmd {
		cmd := exec.Command(h.Path, h.Args...)
		cmd.Env = append([]string{"PATH=" + hookPath(), "CAISSON_HOOK_POINT=" + h.Point, "CAISSON_HOOK_NAME=" + h.name()}, h.Env...)
		cmd.Stdin = bytes.NewReader(in)
		cmd.Stdout, cmd.Stderr = outW, errW
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}
	cmd := newCmd()
	var cell *cell
	if r.jail != nil && !r.noJail.Load() {
		cell, err = r.jail.open(h.name())
		if err != nil {
			r.log.Warn("exec hook without a cgroup of its own: what it leaves behind outside its process group survives it", "hook", h.name(), "err", err)
		} else {
			cell.enter(cmd.SysProcAttr)
		}
	}
	err = cmd.Start()
	if err != nil && cell != nil {
		// A kernel (or an emulator) without clone3's CLONE_INTO_CGROUP:
		// from now on, process groups alone.
		r.log.Warn("exec hooks cannot start in a cgroup of their own here: what one leaves behind outside its process group survives it", "err", err)
		r.noJail.Store(true)
		cell.close(r.log)
		cell = nil
		cmd = newCmd()
		err = cmd.Start()
	}
	if cell != nil {
		defer cell.close(r.log)
	}
	_ = outW.Close()
	_ = errW.Close()
	if err != nil {
		return nil, fmt.Errorf("%s hook: start %s: %w", h.Point, h.Path, err)
	}
	pgid := cmd.Process.Pid
	killAll := func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if cell != nil {
			cell.kill()
		}
	}

	var out bytes.Buffer
	stderr := &tailbuf.Buffer{Max: stderrKept}
	tooLong := false
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		n, _ := io.Copy(&out, io.LimitReader(outR, h.maxOutput()+1))
		if n > h.maxOutput() {
			tooLong = true
			killAll()
		}
		_, _ = io.Copy(io.Discard, outR)
	}()
	go func() {
		defer readers.Done()
		_, _ = io.Copy(stderr, errR)
	}()

	stop := context.AfterFunc(ctx, killAll)
	waitErr := cmd.Wait()
	timedOut := !stop() && errors.Is(ctx.Err(), context.DeadlineExceeded)
	// The hook is gone; what it started goes with it.
	killAll()
	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainAfterExit):
		_ = outR.Close()
		_ = errR.Close()
		<-drained
	}

	fail := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if s := strings.TrimSpace(string(stderr.Bytes())); s != "" {
			msg += ": " + s
		}
		return fmt.Errorf("%s hook: %s: %w", h.Point, msg, api.ErrUnavailable)
	}
	switch {
	case timedOut:
		return nil, fail("timed out after %s; it and what it started were killed", h.timeout())
	case tooLong:
		return nil, fail("its output is over %d bytes", h.maxOutput())
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%s hook: %w", h.Point, ctx.Err())
	case waitErr != nil:
		return nil, fail("%v", waitErr)
	}
	return out.Bytes(), nil
}

// decodeAnswer reads a hook's answer into v: nothing (empty or blank
// output) leaves v as it is; anything else must be one JSON object with
// only the fields v knows.
func decodeAnswer(point string, out []byte, v any) error {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s hook: its output is not the answer it may give (a JSON object): %w: %w", point, err, api.ErrUnavailable)
	}
	if dec.More() {
		return fmt.Errorf("%s hook: its output has more than one JSON value: %w", point, api.ErrUnavailable)
	}
	return nil
}

// hookPath is the PATH hooks get: caisson's own, or the usual one.
func hookPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}
