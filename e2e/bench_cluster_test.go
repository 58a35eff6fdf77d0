//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/oci"
)

// BenchmarkClusterLaunch measures submit-to-running on one real agent: the
// time from a tenant's submit of a one-task session (through the Go
// client) until the task's running update reaches the session's event
// stream, next to bare `runc run --detach` of the same root filesystem,
// interleaved in the same run. It reports p50 and p99 of both and their
// ratios; absolute times here are noisy, the ratios are the numbers.
func BenchmarkClusterLaunch(b *testing.B) {
	testutil.RequiresRoot(b)
	runcPath := testutil.LookPath(b, "runc")
	const launches = 30
	c := newCluster(b)
	c.addAgent("cpus:2;mem:2g")
	tok := c.tenants(twoTenants, "/a")
	cl := c.client(tok["/a"])
	ctx := context.Background()

	// The bare-runc bundle: the same hardened spec caisson starts from.
	base := b.TempDir()
	bundle := filepath.Join(base, "bundle")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		b.Fatal(err)
	}
	s := oci.Default()
	s.Root.Path = c.e.rootfs
	s.Root.Readonly = true
	s.Process.Args = []string{"sleep", "600"}
	s.Linux.CgroupsPath = "/caisson-bench-cluster-runc/run"
	data, _ := json.Marshal(s)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		b.Fatal(err)
	}
	runcRoot := filepath.Join(base, "runc-state")
	b.Cleanup(func() {
		_ = exec.Command(runcPath, "--root", runcRoot, "delete", "-f", "bench").Run()
		for _, m := range cgroupMounts(b) {
			_ = os.Remove(filepath.Join(m, "/caisson-bench-cluster-runc/run"))
			_ = os.Remove(filepath.Join(m, "/caisson-bench-cluster-runc"))
		}
	})
	runcOnce := func() time.Duration {
		// Output to a file: a pipe would stay open in the detached
		// container, and the command would not return.
		out, err := os.CreateTemp(base, "runc-out-")
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		cmd := exec.Command(runcPath, "--root", runcRoot, "run", "--detach", "--bundle", bundle, "bench")
		cmd.Stdout, cmd.Stderr = out, out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			msg, _ := os.ReadFile(out.Name())
			b.Fatalf("runc run: %v\n%s", err, msg)
		}
		d := time.Since(start)
		if out, err := exec.Command(runcPath, "--root", runcRoot, "delete", "-f", "bench").CombinedOutput(); err != nil {
			b.Fatalf("runc delete: %v\n%s", err, out)
		}
		return d
	}
	spec := api.SessionSpec{Name: "bench", Groups: []api.TaskGroup{{
		Name: "g", Count: 1, Resources: api.TaskResources{CPUs: 0.1, MemoryBytes: 32 << 20},
		Container: api.ContainerSpec{Rootfs: c.e.rootfs, Command: []string{"sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"}},
	}}}
	// caissonOnce submits the session and waits for its task's running
	// update on the session's event stream, the way a program follows a
	// session. The stream opens as soon as the submit returns, well before
	// the agent can have started the container; a poll every 50 ms stands
	// by in case the update came first (then the time is the poll's, a
	// little late, and counted in polled).
	polled := 0
	caissonOnce := func() time.Duration {
		start := time.Now()
		sess, err := cl.Submit(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		seen := make(chan time.Time, 2)
		go func() {
			_ = cl.Events(sctx, sess.ID, func(ev api.SessionEvent) error {
				if u := ev.Update; u != nil && u.State == api.TaskRunning {
					seen <- time.Now()
					return errors.New("seen")
				}
				return nil
			})
		}()
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		deadline := time.After(time.Minute)
		var at time.Time
		for at.IsZero() {
			select {
			case at = <-seen:
			case <-poll.C:
				tasks, err := cl.Tasks(ctx, sess.ID)
				if err != nil {
					b.Fatal(err)
				}
				switch {
				case len(tasks) == 1 && tasks[0].State == api.TaskRunning:
					at, polled = time.Now(), polled+1
				case len(tasks) == 1 && api.TaskTerminal(tasks[0].State):
					b.Fatalf("task %s: %s %s %s", tasks[0].ID, tasks[0].State, tasks[0].Reason, tasks[0].Message)
				}
			case <-deadline:
				b.Fatalf("session %s: no task running after a minute", sess.ID)
			}
		}
		d := at.Sub(start)
		if err := cl.KillSession(ctx, sess.ID); err != nil {
			b.Fatal(err)
		}
		c.waitTasks(sess.ID, api.TaskKilled, 1)
		return d
	}
	// Warm up both paths.
	runcOnce()
	caissonOnce()

	var runc, cz []time.Duration
	b.ResetTimer()
	for range launches {
		runc = append(runc, runcOnce())
		cz = append(cz, caissonOnce())
	}
	b.StopTimer()
	slices.Sort(runc)
	slices.Sort(cz)
	pct := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	r50, r99, c50, c99 := pct(runc, 0.5), pct(runc, 0.99), pct(cz, 0.5), pct(cz, 0.99)
	b.ReportMetric(float64(c50.Microseconds())/1000, "ms/p50-submit-to-running")
	b.ReportMetric(float64(c99.Microseconds())/1000, "ms/p99-submit-to-running")
	b.ReportMetric(float64(r50.Microseconds())/1000, "ms/p50-runc-run-detach")
	b.ReportMetric(float64(c50)/float64(r50), "p50-ratio")
	b.ReportMetric(float64(c99)/float64(r99), "p99-ratio")
	b.ReportMetric(float64(polled), "polled")
	fmt.Printf("submit to running on one agent, %d each: p50 %v p99 %v; bare runc run --detach p50 %v p99 %v; ratio p50 %.2f p99 %.2f (goal ≤ 1.5); %d seen by the fallback poll\n",
		launches, c50.Round(100*time.Microsecond), c99.Round(100*time.Microsecond), r50.Round(100*time.Microsecond), r99.Round(100*time.Microsecond),
		float64(c50)/float64(r50), float64(c99)/float64(r99), polled)
}
