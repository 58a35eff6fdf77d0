package sim

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/scheduler/scenario"
)

var update = flag.Bool("update", false, "rewrite the report golden files in testdata")

// TestReportGolden replays the examples and a generated workload with a
// fixed clock and compares the whole report with testdata/NAME.json, so a
// change to any decision (placements, offers, fairness, SLA, reclaim,
// withdrawals) shows as a diff to review. Only the peak RSS, which the
// process decides, is left out, and numbers match to a relative 1e-6:
// ppc64le fuses multiply-adds, which moves the last bits of a
// time-weighted mean. Rerun with -update when the change is right.
func TestReportGolden(t *testing.T) {
	synth := func(y Synthetic) func(*testing.T) *scenario.Scenario {
		return func(t *testing.T) *scenario.Scenario {
			sc, err := y.Scenario()
			if err != nil {
				t.Fatal(err)
			}
			return sc
		}
	}
	file := func(name string) func(*testing.T) *scenario.Scenario {
		return func(t *testing.T) *scenario.Scenario { return load(t, name) }
	}
	for _, tt := range []struct {
		name string
		sc   func(*testing.T) *scenario.Scenario
		opts Options
	}{
		{"small", file("../../examples/sim-small.yaml"), Options{}},
		{"multitenant", file("../../examples/sim-multitenant.yaml"), Options{}},
		{"synthetic", synth(Synthetic{Agents: 50, Sessions: 40, Tasks: 4000, GPUFraction: 0.2, Seed: 7}), Options{}},
		{"synthetic-fanout4", synth(Synthetic{Agents: 50, Sessions: 40, Tasks: 4000, GPUFraction: 0.2, Seed: 7}), Options{OfferFanout: 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Clock = fixedClock()
			rep, err := Run(context.Background(), tt.sc(t), opts)
			if err != nil {
				t.Fatal(err)
			}
			rep.PeakRSSBytes = 0
			got, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", tt.name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			var w, g any
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(w, g, cmpopts.EquateApprox(1e-6, 0)); diff != "" {
				t.Errorf("report differs from %s (-want +got), rerun with -update if the change is right:\n%s", path, diff)
			}
		})
	}
}
