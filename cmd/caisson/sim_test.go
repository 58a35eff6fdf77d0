package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
)

func TestSimScenario(t *testing.T) {
	plot := filepath.Join(t.TempDir(), "shares.svg")
	out, err := runCaisson(t, "sim", "../../examples/sim-small.yaml", "--format", "json", "--plot", plot)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for _, k := range []string{"tasks_submitted", "tasks_placed", "tasks_pending", "placements_per_sec", "decision_latency_us",
		"offers", "overcommit_violations", "fairness", "sla", "reclaim", "utilization", "gpu_allocation_ratio", "peak_rss_bytes"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("the report has no %s", k)
		}
	}
	if rep["scenario"] != "sim-small.yaml" || rep["sessions_finished"] != float64(3) {
		t.Errorf("report %v", rep)
	}
	data, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ XMLName xml.Name }
	if err := xml.Unmarshal(data, &doc); err != nil || doc.XMLName.Local != "svg" || !strings.Contains(string(data), "team-b") {
		t.Fatalf("plot is not an SVG of the consumers: %v", err)
	}
}

func TestSimTableAndSources(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	out, err := runCaisson(t, "sim", "--agents", "10", "--sessions", "5", "--tasks", "200", "--offer-fanout", "2", "--duration", "2m", "--cpuprofile", prof)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(prof); err != nil || st.Size() == 0 {
		t.Errorf("--cpuprofile wrote no profile: %v", err)
	}
	for _, want := range []string{"synthetic: 10 agents, 5 sessions, 200 tasks", "offer fan-out 2", "PLACEMENTS/S", "OVERCOMMIT VIOLATIONS   0"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	out, err = runCaisson(t, "sim", "--trace", "openb", "--format", "json", "--duration", "1h")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"agents": 1213`) {
		t.Errorf("trace replay:\n%s", out)
	}
}

func TestSimBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nagents: []\nconsumers: []\nsessions:\n  - id: x\n    consumer: nobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	plot := filepath.Join(dir, "p.svg")
	for _, args := range [][]string{
		{"sim"},
		{"sim", "../../examples/sim-small.yaml", "--agents", "3"},
		{"sim", "--trace", "borg"},
		{"sim", "--trace", "openb", "--nodes", "x.csv"},
		{"sim", "--nodes", "x.csv", "--pods", "y.csv"},
		{"sim", "--agents", "0"},
		{"sim", "--agents", "5", "--sessions", "10", "--tasks", "3"},
		{"sim", "../../examples/sim-small.yaml", "--format", "yaml"},
		{"sim", "../../examples/sim-small.yaml", "--offer-fanout", "-1"},
		{"sim", "../../examples/sim-small.yaml", "--sla-slack", "0"},
		{"sim", bad, "--plot", plot},
	} {
		if _, err := runCaisson(t, args...); !errors.Is(err, api.ErrInvalid) || exitCode(err) != exitCaissonError {
			t.Errorf("%v: %v, want an invalid-input error (exit 125)", args, err)
		}
	}
	if _, err := os.Stat(plot); !os.IsNotExist(err) {
		t.Errorf("a failed run left a plot behind: %v", err)
	}
	_, err := runCaisson(t, "sim", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:") {
		t.Errorf("error does not name the file and line: %v", err)
	}
	if _, err := runCaisson(t, "sim", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing scenario file is not an error")
	}
	if _, err := runCaisson(t, "sim", "../../examples/sim-small.yaml", "--cpuprofile", filepath.Join(dir, "no", "cpu.prof")); err == nil || !strings.Contains(err.Error(), "--cpuprofile") {
		t.Errorf("a profile that cannot be written: %v", err)
	}
}
