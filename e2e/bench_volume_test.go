//go:build linux

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/caisson/caisson/internal/testutil"
)

// BenchmarkDockerVolume runs `docker run --rm -v VOL:/d busybox true` with a
// dir volume of our driver and with one of Docker's built-in local driver,
// interleaved on one private dockerd, and reports the ratio (goal: ≤ 1.2).
func BenchmarkDockerVolume(b *testing.B) {
	testutil.RequiresRoot(b)
	const runs = 30
	rootfs := filepath.Join(b.TempDir(), "rootfs")
	testutil.MakeBusyboxRootfs(b, rootfs)
	d, err := startDockerd(b)
	if err != nil {
		fmt.Println("docker volume benchmark skipped:", err)
		return
	}
	if err := d.importImage(rootfs, volImage); err != nil {
		b.Fatal(err)
	}
	name := randName("caisson-bench-")
	startVolPlugin(b, name, filepath.Join(b.TempDir(), "plugin"))
	b.Cleanup(func() {
		_, _ = d.run("volume", "rm", "-f", "ours", "theirs")
	})
	d.ok("volume", "create", "-d", name, "ours")
	d.ok("volume", "create", "-d", "local", "theirs")
	once := func(vol string) time.Duration {
		cmd := exec.Command(d.docker[0], append(d.docker[1:], "run", "--rm", "--network", "none", "-v", vol+":/d", volImage, "true")...)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("docker run -v %s: %v\n%s", vol, err, out)
		}
		return time.Since(start)
	}
	once("ours") // warm both paths: image, plugin activation
	once("theirs")
	var ours, theirs time.Duration
	b.ResetTimer()
	for i := 0; i < runs; i++ {
		ours += once("ours")
		theirs += once("theirs")
	}
	b.StopTimer()
	ratio := float64(ours) / float64(theirs)
	b.ReportMetric(ratio, "caisson-dir/local")
	fmt.Printf("docker run --rm -v VOL:/d true, %d each: caisson dir driver %v, docker local driver %v: ratio %.2f (goal ≤ 1.2)\n",
		runs, (ours / runs).Round(100*time.Microsecond), (theirs / runs).Round(100*time.Microsecond), ratio)
}
