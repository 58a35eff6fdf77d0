//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/internal/mountinfo"
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
	d, err := startDockerd(b, network...)
	if err != nil {
		fmt.Println("docker comparison skipped:", err)
		return nil
	}
	if err := d.importImage(rootfs, benchImage); err != nil {
		b.Fatal(err)
	}
	return d.docker
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	mps, _ := mountinfo.Under(dir)
	for _, mp := range mps {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
}
