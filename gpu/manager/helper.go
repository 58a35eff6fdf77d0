package manager

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
)

// HelperName is the cgo helper's file name.
const HelperName = "caisson-nvml"

// helperPath finds caisson-nvml: Config.Helper, else next to this
// executable, else on PATH. A missing helper is an error wrapping
// api.ErrNotFound.
func (m *Manager) helperPath() (string, error) {
	if m.cfg.Helper != "" {
		if _, err := os.Stat(m.cfg.Helper); err != nil {
			return "", fmt.Errorf("NVML helper: %w: %w", err, api.ErrNotFound)
		}
		return m.cfg.Helper, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), HelperName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(HelperName)
	if err != nil {
		return "", fmt.Errorf("NVML helper %s is neither next to caisson nor on PATH (make build makes it): %w", HelperName, api.ErrNotFound)
	}
	return p, nil
}

// helperArgs are the arguments every helper call starts with.
func (m *Manager) helperArgs() []string {
	args := []string{"--backend", m.cfg.Backend}
	if gpu.Simulated(m.cfg.Backend) {
		args = append(args, "--sim-dir", m.simDir())
	}
	return args
}

// helper runs one helper command and decodes its JSON into out.
func (m *Manager) helper(ctx context.Context, out any, args ...string) error {
	path, err := m.helperPath()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HelperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append(m.helperArgs(), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := firstLine(stderr.String())
		msg = strings.TrimPrefix(msg, HelperName+": ")
		if msg == "" {
			msg = err.Error()
		}
		var exit *exec.ExitError
		switch {
		case ctx.Err() != nil:
			msg = fmt.Sprintf("no answer in %s", m.cfg.HelperTimeout)
		case errors.As(err, &exit) && exit.ExitCode() == gpu.HelperExitInvalid:
			// Invalid input (a simulated MIG layout the GPU cannot hold):
			// the message says what.
			return fmt.Errorf("%s: %w", strings.TrimSuffix(msg, ": "+api.ErrInvalid.Error()), api.ErrInvalid)
		}
		return fmt.Errorf("%s %s: %s: %w", HelperName, args[0], msg, api.ErrUnavailable)
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s %s printed what is not its JSON: %v: %w", HelperName, args[0], err, api.ErrUnavailable)
	}
	return nil
}

// events starts caisson-nvml watch. It returns the events as they come and
// a function that stops the helper and returns how it ended. The channel is
// closed when the helper exits.
func (m *Manager) events(ctx context.Context) (<-chan gpu.Event, func() error, error) {
	path, err := m.helperPath()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(path, append(m.helperArgs(), "watch")...)
	stdin, err := cmd.StdinPipe() // closing it stops the helper
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("start %s watch: %w", HelperName, err)
	}
	ch := make(chan gpu.Event)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev gpu.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				m.log.Warn("NVML helper printed a line that is not an event", "line", sc.Text())
				continue
			}
			select {
			case ch <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	// stop may be called more than once (when the stream ends, then on the
	// way out); the helper is stopped and reaped once.
	stop := sync.OnceValue(func() error {
		cancel()
		_ = stdin.Close()
		<-done
		err := cmd.Wait()
		if err != nil && stderr.Len() > 0 {
			err = errors.New(strings.TrimSpace(stderr.String()))
		}
		return err
	})
	return ch, stop, nil
}

// firstLine is the first line a helper printed to its standard error (a
// panic's message rather than its stack), with a count of the others, so
// that an error stays one line.
func firstLine(stderr string) string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 0:
		return ""
	case 1:
		return lines[0]
	}
	return fmt.Sprintf("%s (and %d more lines)", lines[0], len(lines)-1)
}
