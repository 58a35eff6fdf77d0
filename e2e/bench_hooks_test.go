//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkHooksLaunch launches and removes busybox `true` containers
// through caisson run with no hooks, with one exec hook (a pre-launch
// shell script that reads its request and answers an environment
// variable), and with one and three NRI plugins started from the plugin
// directory (each caisson run starts them, synchronises them and stops
// them), interleaved in the same run, and reports the median of each and
// their ratios to no hooks. The goal: one NRI plugin adds under 10%.
func BenchmarkHooksLaunch(b *testing.B) {
	const launches = 30
	e := newEnv(b)
	dir := b.TempDir()
	hook := filepath.Join(dir, "hook")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ncat >/dev/null\necho '{\"env\": {\"SITE\": \"eu-1\"}}'\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	config := func(name, body string) string {
		p := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(p, []byte("version = 1\n"+body), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	variants := []struct {
		name, config string
		times        []time.Duration
	}{
		{name: "no hooks", config: config("none", "")},
		{name: "one exec hook", config: config("exec", fmt.Sprintf("[[hooks.exec]]\npoint = \"pre-launch\"\npath = %q\n", hook))},
		{name: "one NRI plugin", config: config("nri1", nriConfig(b, filepath.Join(dir, "nri1"), []string{"10-env"}, ""))},
		{name: "three NRI plugins", config: config("nri3", nriConfig(b, filepath.Join(dir, "nri3"), []string{"10-env", "20-limits", "30-events"}, ""))},
	}
	once := func(config string) time.Duration {
		cmd := e.cmd("run", "--rm", "--rootfs", e.rootfs, "true")
		cmd.Env = append(cmd.Env, "CAISSON_CONFIG="+config)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("caisson run: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	for _, v := range variants {
		once(v.config) // warm up
	}
	b.ResetTimer()
	for range launches {
		for i := range variants {
			variants[i].times = append(variants[i].times, once(variants[i].config))
		}
	}
	b.StopTimer()
	median := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	base := median(variants[0].times)
	fmt.Printf("caisson run --rm of busybox true, %d each, medians:", launches)
	for _, v := range variants {
		m := median(v.times)
		b.ReportMetric(float64(m.Microseconds())/1000, "ms/"+strings.ReplaceAll(v.name, " ", "-"))
		fmt.Printf(" %s %v (%.2f)", v.name, m.Round(100*time.Microsecond), float64(m)/float64(base))
	}
	fmt.Println(" (goal: one NRI plugin under 1.10)")
	b.ReportMetric(float64(median(variants[1].times))/float64(base), "exec-hook/none")
	b.ReportMetric(float64(median(variants[2].times))/float64(base), "nri-1/none")
	b.ReportMetric(float64(median(variants[3].times))/float64(base), "nri-3/none")
}
