package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
)

// TestMetrics: with a metrics address, GET /metrics there serves the
// agent's counters in Prometheus's text format, with what happened: a
// registration, a launch, its time, a task ended out of memory, the
// updates the master acknowledged.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MetricsAddr = "127.0.0.1:0"
	ra := e.startWith(t, cfg)
	_, st := e.connected(t)
	l := launchOf("s1/web/0")
	cid := e.run(t, st, l)
	e.containers.exit(cid, api.Termination{ExitCode: 137, Reason: api.ReasonOOM})
	e.master.nextOf(t, l.Task)
	e.waitForgotten(t, l.Task)
	waitQueue(t, ra.Agent, func(n int) bool { return n == 0 })

	ra.apiURL() // the metrics listen once the API does
	resp, err := http.Get("http://" + ra.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	lines := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		lines[line] = true
	}
	for _, want := range []string{
		"caisson_agent_registrations_total 1",
		"caisson_agent_registered 1",
		"caisson_agent_launches_total 1",
		"caisson_agent_launch_seconds_count 1",
		`caisson_agent_task_ends_total{reason="oom-killed",state="failed"} 1`,
		`caisson_agent_tasks{state="running"} 0`,
		`caisson_agent_tasks{state="staging"} 0`,
		"caisson_agent_updates_queued 0",
		"caisson_agent_updates_delivered_total 3",
	} {
		if !lines[want] {
			t.Errorf("no line %q in the metrics", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// Without a metrics address, nothing listens for them.
func TestNoMetricsListener(t *testing.T) {
	e := newEnv(t)
	ra := e.start(t)
	ra.apiURL()
	if addr := ra.MetricsAddr(); addr != "" {
		t.Errorf("MetricsAddr = %q without a metrics address", addr)
	}
}
