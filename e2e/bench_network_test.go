//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/iptables"
	"github.com/caisson/caisson/internal/testutil"
)

// BenchmarkNetworkLaunch launches and removes busybox `true` containers on
// a bridge network with a published port: caisson on its default network
// (bridge, host-local, portmap, firewall, bandwidth, loopback) and docker
// run --rm -p on a private dockerd with its own default bridge, interleaved
// in the same run. It reports docker/caisson; the goal is at least 3.
func BenchmarkNetworkLaunch(b *testing.B) {
	testutil.RequiresRoot(b)
	cnitest.RequirePlugins(b)
	const launches = 30
	base := b.TempDir()
	rootfs := filepath.Join(base, "rootfs")
	testutil.MakeBusyboxRootfs(b, rootfs)
	libDir, runDir, confDir := filepath.Join(base, "lib"), filepath.Join(base, "run"), filepath.Join(base, "net.d")
	const caissonBridge, dockerBridge = "cbench0", "cbdock0"
	b.Cleanup(func() {
		_ = exec.Command(caissonBin, "--root", libDir, "--run-root", runDir, "recover").Run()
		unmountUnder(runDir)
		for _, br := range []string{caissonBridge, dockerBridge} {
			_ = exec.Command("ip", "link", "delete", "dev", br).Run()
		}
		// dockerd leaves its masquerading rules; its chains go with the
		// CNI ones when the tests end (cnitest.Restore).
		for _, fam := range iptables.Families {
			_, rules, _ := iptables.Save(context.Background(), fam)
			for _, r := range rules {
				if strings.Contains(strings.Join(r.Args, " "), dockerBridge) {
					_ = iptables.Delete(context.Background(), r)
				}
			}
		}
		for _, m := range cgroupMounts(b) {
			_ = os.Remove(filepath.Join(m, "/caisson-bench-net"))
		}
	})
	runOnce := func(env []string, name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(start)
	}
	caissonEnv := []string{"CAISSON_CNI_CONFIG_DIR=" + confDir, "CAISSON_CNI_PATH=" + cnitest.DebianPlugins,
		"CAISSON_DEFAULT_NETWORK_SUBNET=10.233.1.0/24", "CAISSON_DEFAULT_NETWORK_BRIDGE=" + caissonBridge}
	caissonPort, dockerPort := strconv.Itoa(cnitest.FreePort(b)), strconv.Itoa(cnitest.FreePort(b))
	caissonArgs := []string{"--root", libDir, "--run-root", runDir, "--cgroup-parent", "/caisson-bench-net",
		"run", "--rm", "-p", caissonPort + ":80", "--rootfs", rootfs, "true"}
	runOnce(caissonEnv, caissonBin, caissonArgs...) // writes the default network, makes the bridge

	// Docker's default bridge network, on a bridge of the benchmark's own.
	for _, args := range [][]string{
		{"link", "add", dockerBridge, "type", "bridge"},
		{"addr", "add", "10.233.2.1/24", "dev", dockerBridge},
		{"link", "set", dockerBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			b.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	docker := startPrivateDockerd(b, rootfs, "--bridge="+dockerBridge, "--iptables=true", "--ip6tables=false")
	dockerArgs := func() []string {
		return append(docker[1:], "run", "--rm", "-p", dockerPort+":80", benchImage, "true")
	}
	if docker != nil {
		runOnce(nil, docker[0], dockerArgs()...)
	}

	var caissonTotal, dockerTotal time.Duration
	b.ResetTimer()
	for i := 0; i < launches; i++ {
		caissonTotal += runOnce(caissonEnv, caissonBin, caissonArgs...)
		if docker != nil {
			dockerTotal += runOnce(nil, docker[0], dockerArgs()...)
		}
	}
	b.StopTimer()
	perCaisson := caissonTotal / launches
	b.ReportMetric(float64(perCaisson.Microseconds())/1000, "ms/caisson-net-launch")
	fmt.Printf("launch+remove of busybox true with a published port, %d each: caisson run --rm -p (default bridge network) %v\n",
		launches, perCaisson.Round(100*time.Microsecond))
	if docker != nil {
		perDocker := dockerTotal / launches
		ratio := float64(dockerTotal) / float64(caissonTotal)
		b.ReportMetric(float64(perDocker.Microseconds())/1000, "ms/docker-net-launch")
		b.ReportMetric(ratio, "docker/caisson-net")
		fmt.Printf("docker run --rm -p (private dockerd, default bridge) %v: caisson is %.1fx faster (goal ≥ 3)\n",
			perDocker.Round(100*time.Microsecond), ratio)
	}
}
