//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/oci"
)

// BenchmarkLaunch launches and removes busybox `true` containers through
// caisson (with cgroup limits) and through bare `runc run` on the same root
// filesystem, interleaved in the same run, and reports the per-launch ratio.
// Absolute times on shared machines are noisy; the ratio is the number.
func BenchmarkLaunch(b *testing.B) {
	testutil.RequiresRoot(b)
	runcPath := testutil.LookPath(b, "runc")
	const launches = 50
	base := b.TempDir()
	rootfs := filepath.Join(base, "rootfs")
	testutil.MakeBusyboxRootfs(b, rootfs)

	// The bare-runc bundle: the same hardened spec caisson starts from.
	bundle := filepath.Join(base, "bundle")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		b.Fatal(err)
	}
	s := oci.Default()
	s.Root.Path = rootfs
	s.Root.Readonly = true
	s.Process.Args = []string{"true"}
	s.Linux.CgroupsPath = "/caisson-bench-runc/run"
	data, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	runcRoot := filepath.Join(base, "runc-state")
	libDir, runDir := filepath.Join(base, "lib"), filepath.Join(base, "run")
	b.Cleanup(func() {
		for _, m := range cgroupMounts(b) {
			_ = os.Remove(filepath.Join(m, "/caisson-bench-runc/run"))
			_ = os.Remove(filepath.Join(m, "/caisson-bench-runc"))
			_ = os.Remove(filepath.Join(m, "/caisson-bench"))
		}
	})

	runOnce := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(start)
	}
	caissonArgs := func() []string {
		return []string{"--root", libDir, "--run-root", runDir, "--cgroup-parent", "/caisson-bench",
			"run", "--rm", "--cpus", "1", "-m", "256m", "--pids-limit", "100", "--rootfs", rootfs, "true"}
	}
	// Warm up both paths (page cache, first-start work).
	runOnce(runcPath, "--root", runcRoot, "run", "--bundle", bundle, "warmup")
	runOnce(caissonBin, caissonArgs()...)

	docker := startPrivateDockerd(b, rootfs)
	if docker != nil {
		runOnce(docker[0], append(docker[1:], "run", "--rm", "--network", "none", benchImage, "true")...)
	}

	var runcTotal, caissonTotal, dockerTotal time.Duration
	b.ResetTimer()
	for i := 0; i < launches; i++ {
		runcTotal += runOnce(runcPath, "--root", runcRoot, "run", "--bundle", bundle, fmt.Sprintf("bench%d", i))
		caissonTotal += runOnce(caissonBin, caissonArgs()...)
		if docker != nil {
			dockerTotal += runOnce(docker[0], append(docker[1:], "run", "--rm", "--network", "none", benchImage, "true")...)
		}
	}
	b.StopTimer()
	if docker != nil {
		perDocker := dockerTotal / launches
		b.ReportMetric(float64(perDocker.Microseconds())/1000, "ms/docker-launch")
		b.ReportMetric(float64(dockerTotal)/float64(caissonTotal), "docker/caisson")
		fmt.Printf("docker run --rm --network none (private dockerd) %v: caisson is %.1fx faster\n",
			perDocker.Round(100*time.Microsecond), float64(dockerTotal)/float64(caissonTotal))
	}
	perRunc := runcTotal / launches
	perCaisson := caissonTotal / launches
	ratio := float64(caissonTotal) / float64(runcTotal)
	b.ReportMetric(float64(perRunc.Microseconds())/1000, "ms/runc-launch")
	b.ReportMetric(float64(perCaisson.Microseconds())/1000, "ms/caisson-launch")
	b.ReportMetric(ratio, "caisson/runc")
	fmt.Printf("launch+remove of busybox true, %d each: bare runc run %v, caisson run --rm (cgroup limits) %v: ratio %.2f (goal ≤ 1.3)\n",
		launches, perRunc.Round(100*time.Microsecond), perCaisson.Round(100*time.Microsecond), ratio)
}

const benchImage = "caisson-bench/busybox:latest"

// startPrivateDockerd starts a dockerd of the benchmark's own (own data and
// exec roots, socket; no bridge and no iptables unless network gives other
// daemon flags), imports the busybox root
// filesystem as an image, and returns the docker command line to use; it
// stops the daemon and removes its files when the benchmark ends. It returns
// nil, saying why, when no dockerd can be started here.
func startPrivateDockerd(b *testing.B, rootfs string, network ...string) []string {
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		fmt.Println("docker comparison skipped: no dockerd on this machine (apt-get install docker.io)")
		return nil
	}
	client, err := exec.LookPath("docker")
	if err != nil {
		fmt.Println("docker comparison skipped: no docker client")
		return nil
	}
	// dockerd makes a "docker" parent cgroup; remove the ones it made here.
	var made []string
	for _, m := range cgroupMounts(b) {
		if _, err := os.Stat(filepath.Join(m, "docker")); os.IsNotExist(err) {
			made = append(made, filepath.Join(m, "docker"))
		}
	}
	b.Cleanup(func() {
		for _, d := range made {
			_ = os.Remove(d)
		}
	})
	dir, err := os.MkdirTemp("", "caisson-bench-dockerd-")
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(dockerd, "--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://"+sock, "--pidfile", filepath.Join(dir, "docker.pid"), "--log-level=error")
	if len(network) == 0 {
		network = []string{"--bridge=none", "--iptables=false", "--ip6tables=false"}
	}
	cmd.Args = append(cmd.Args, network...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Println("docker comparison skipped: dockerd did not start:", err)
		_ = os.RemoveAll(dir)
		return nil
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = logf.Close()
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	})
	docker := []string{client, "-H", "unix://" + sock}
	ready := false
	for i := 0; i < 300 && !ready; i++ { // up to 30 s for the daemon to answer
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
			fmt.Printf("docker comparison skipped: dockerd exited: %v\n%s\n", err, log)
			return nil
		default:
		}
		ready = exec.Command(docker[0], append(docker[1:], "version")...).Run() == nil
		if !ready {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ready {
		fmt.Println("docker comparison skipped: dockerd did not answer within 30 s")
		return nil
	}
	tar := exec.Command("tar", "-C", rootfs, "-c", ".")
	imp := exec.Command(docker[0], append(docker[1:], "import", "-", benchImage)...)
	pipe, _ := tar.StdoutPipe()
	imp.Stdin = pipe
	if err := tar.Start(); err != nil {
		b.Fatal(err)
	}
	if out, err := imp.CombinedOutput(); err != nil {
		b.Fatalf("docker import: %v\n%s", err, out)
	}
	_ = tar.Wait()
	return docker
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			_ = unix.Unmount(f[4], unix.MNT_DETACH)
		}
	}
}
