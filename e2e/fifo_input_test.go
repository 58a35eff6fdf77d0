//go:build linux

package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRunKillableOnFIFOInput names a FIFO that no writer ever opens as
// --gpu-cdi-spec, which run reads while it launches (the GPU isolator
// discovers the GPUs and writes their CDI spec on first use), after it has
// taken over SIGTERM to cancel the launch: the read waits, SIGTERM still
// ends it, the launch is undone, and run exits 143.
func TestRunKillableOnFIFOInput(t *testing.T) {
	for name, gpus := range map[string][]string{"no GPUs": nil, "a GPU": {"--gpus", "1"}} {
		t.Run(name, func(t *testing.T) { runKillableOnFIFOInput(t, gpus) })
	}
}

func runKillableOnFIFOInput(t *testing.T, gpus []string) {
	e := gpuEnv(t)
	fifo := filepath.Join(t.TempDir(), "nvidia.yaml")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := watchOpen(t, fifo)
	args := append(append([]string{"--gpu-cdi-spec", fifo, "run", "--rm"}, gpus...), "--rootfs", e.rootfs, "sleep", "3600")
	cmd := e.cmd(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-opened:
	case err := <-exited:
		t.Fatalf("run ended before it read the FIFO: %v, stderr %q", err, stderr.String())
	case <-time.After(time.Minute):
		// Stuck in open(2), which reports no open until a writer comes.
		t.Fatalf("run did not open the FIFO without waiting; stderr %q", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if code := cmd.ProcessState.ExitCode(); code != 143 {
			t.Fatalf("run after SIGTERM: exit %d (%v), stderr %q; want 143", code, err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("run did not end after SIGTERM; stderr %q", stderr.String())
	}
	if ps := e.ok("ps", "-aq"); ps != "" {
		t.Errorf("containers left: %q", ps)
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// watchOpen reports when path is opened (inotify's IN_OPEN, which a
// FIFO's open sends only once the open has returned).
func watchOpen(t *testing.T, path string) <-chan struct{} {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	t.Cleanup(func() { f.Close() })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		if n, err := f.Read(buf); err == nil && n > 0 {
			close(opened)
		}
	}()
	return opened
}
