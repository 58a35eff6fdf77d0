//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerd is a private Docker daemon: its own data and exec roots, socket
// and pid file, no bridge and no iptables unless told otherwise. The system's
// daemon, if any, is never touched.
type dockerd struct {
	tb     testing.TB
	dir    string
	sock   string
	args   []string
	cmd    *exec.Cmd
	exited chan error
	// containerd is the daemon's own containerd, a separate process as
	// on a packaged install, so that killing dockerd leaves it serving.
	containerd       *exec.Cmd
	containerdExited chan error
	// docker is the client command line for this daemon.
	docker []string
}

// startDockerd starts a private dockerd (and a containerd for it) and stops
// them, removing their files, when the test ends. It returns an error when no
// daemon can run here.
func startDockerd(tb testing.TB, extra ...string) (*dockerd, error) {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, fmt.Errorf("no dockerd on this machine (make deps installs docker.io): %w", err)
	}
	client, err := exec.LookPath("docker")
	if err != nil {
		return nil, fmt.Errorf("no docker client: %w", err)
	}
	// dockerd makes a "docker" parent cgroup; remove the ones it made here.
	var made []string
	for _, m := range cgroupMounts(tb) {
		if _, err := os.Stat(filepath.Join(m, "docker")); os.IsNotExist(err) {
			made = append(made, filepath.Join(m, "docker"))
		}
	}
	dir, err := os.MkdirTemp("", "caisson-dockerd-")
	if err != nil {
		return nil, err
	}
	d := &dockerd{tb: tb, dir: dir, sock: filepath.Join(dir, "docker.sock")}
	ctrSock := filepath.Join(dir, "containerd.sock")
	d.args = []string{bin, "--data-root", d.DataRoot(), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://" + d.sock, "--pidfile", filepath.Join(dir, "docker.pid"), "--log-level=info",
		"--containerd", ctrSock}
	if len(extra) == 0 {
		extra = []string{"--bridge=none", "--iptables=false", "--ip6tables=false"}
	}
	d.args = append(d.args, extra...)
	d.docker = []string{client, "-H", "unix://" + d.sock}
	tb.Cleanup(func() {
		d.stop()
		if d.containerd != nil {
			terminate(d.containerd, d.containerdExited)
		}
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
		for _, c := range made {
			_ = os.Remove(c)
		}
	})
	if err := d.startContainerd(ctrSock); err != nil {
		return nil, err
	}
	if err := d.start(); err != nil {
		return nil, err
	}
	return d, nil
}

// startContainerd runs a containerd with its own roots and socket.
func (d *dockerd) startContainerd(sock string) error {
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return fmt.Errorf("no containerd (docker.io installs it): %w", err)
	}
	conf := filepath.Join(d.dir, "containerd.toml")
	toml := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(d.dir, "containerd-root"), filepath.Join(d.dir, "containerd-state"), sock)
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		return err
	}
	cmd, exited, err := startLogged([]string{bin, "--config", conf, "--log-level", "info"},
		filepath.Join(d.dir, "containerd.log"), "containerd successfully booted")
	if err != nil {
		return err
	}
	d.containerd, d.containerdExited = cmd, exited
	return nil
}

// DataRoot is the daemon's --data-root.
func (d *dockerd) DataRoot() string { return filepath.Join(d.dir, "data") }

// Host is the daemon's API address for DOCKER_HOST.
func (d *dockerd) Host() string { return "unix://" + d.sock }

// start runs the daemon and returns once it says its API listens.
func (d *dockerd) start() error {
	cmd, exited, err := startLogged(d.args, filepath.Join(d.dir, "dockerd.log"), "API listen on "+d.sock)
	if err != nil {
		return err
	}
	d.cmd, d.exited = cmd, exited
	return nil
}

// startLogged starts a daemon in a process group of its own, appending its
// output to logPath, and returns once a line of it contains ready (an error
// when it exits first). exited receives its exit.
func startLogged(args []string, logPath, ready string) (*exec.Cmd, chan error, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.MultiWriter(logf, pw), io.MultiWriter(logf, pw)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, nil, fmt.Errorf("start %s: %w", filepath.Base(args[0]), err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		_ = logf.Close()
		exited <- err
	}()
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		found := false
		for sc.Scan() {
			if !found && strings.Contains(sc.Text(), ready) {
				found = true
				up <- true
			}
		}
		if !found {
			up <- false
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	if !<-up {
		log, _ := os.ReadFile(logPath)
		return nil, nil, fmt.Errorf("%s exited before it was ready:\n%s", filepath.Base(args[0]), log)
	}
	return cmd, exited, nil
}

// stop ends the daemon with SIGTERM (SIGKILL to its group after 30 s).
func (d *dockerd) stop() {
	if d.cmd == nil {
		return
	}
	terminate(d.cmd, d.exited)
	d.cmd = nil
}

// terminate sends SIGTERM to a daemon started by startLogged and waits for
// it, killing its whole process group after 30 s.
func terminate(cmd *exec.Cmd, exited chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// kill9 kills the daemon alone, the way a crash does: no shutdown, its
// containerd and containers left to the next start.
func (d *dockerd) kill9() {
	d.tb.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		d.tb.Fatal(err)
	}
	<-d.exited
	d.cmd = nil
}

// restart starts the daemon again on the same roots.
func (d *dockerd) restart() {
	d.tb.Helper()
	if err := d.start(); err != nil {
		d.tb.Fatal(err)
	}
}

// run runs a docker command against this daemon.
func (d *dockerd) run(args ...string) (string, error) {
	cmd := exec.Command(d.docker[0], append(d.docker[1:], args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// ok runs a docker command and fails the test if it fails.
func (d *dockerd) ok(args ...string) string {
	d.tb.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.tb.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// importImage makes image NAME from a root filesystem directory, offline.
func (d *dockerd) importImage(rootfs, name string) error {
	tar := exec.Command("tar", "-C", rootfs, "-c", ".")
	imp := exec.Command(d.docker[0], append(d.docker[1:], "import", "-c", `CMD ["/bin/sh"]`, "-", name)...)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	if err := tar.Start(); err != nil {
		return err
	}
	out, err := imp.CombinedOutput()
	_ = tar.Wait()
	if err != nil {
		return fmt.Errorf("docker import: %w\n%s", err, out)
	}
	return nil
}
