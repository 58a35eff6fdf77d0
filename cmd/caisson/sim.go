package main

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/userfile"
	"github.com/caisson/caisson/scheduler/scenario"
	"github.com/caisson/caisson/scheduler/sim"
	"github.com/caisson/caisson/scheduler/trace"
)

func newSimCmd() *cobra.Command {
	var (
		format, plot, traceName, nodesFile, podsFile string
		cpuProfile                                   string
		agents, sessions, tasks, fanout              int
		gpuFraction                                  float64
		seed                                         uint64
		delay, slack, duration                       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sim [SCENARIO.yaml | --agents N --sessions M --tasks T | --trace openb] [OPTIONS]",
		Short: "Replay a workload against the session scheduler in virtual time",
		Long: `sim runs the scheduler core (consumer tree, optimistic offers, the built-in
session scheduler, reclaim and preemption) against a workload in virtual time
and prints what it measured. Nothing runs on this machine: agents, tasks and
frameworks are simulated; the decision latencies are the core's real ones.

The workload is one of:
  SCENARIO.yaml          a scenario file (format: examples/README.md)
  --agents N --sessions M --tasks T [--gpu-fraction F] [--seed S]
                         a generated multi-tenant workload: three business
                         units owning 80% of the cluster and a lab, Spark
                         sessions with dynamic allocation, GPU gangs, pods,
                         batch and framework sessions
  --trace openb [--nodes NODES.csv --pods PODS.csv]
                         the Alibaba GPU cluster trace (2023); its GPU nodes
                         and default pods ship with caisson

Metrics (--format json has them all): tasks submitted, placed and pending,
the core's placements per second and decision latency, offers (sent,
accepted, declined, conflicts, rescinded), over-commit violations, fairness
(deviation from the deserved share, Jain's index), SLA (time for a consumer
to get its owned share), reclaim, utilisation, the GPU allocation ratio and
the peak memory. --plot draws each consumer's share of the cluster over time
against its deserved and owned shares.

Input files may be FIFOs (/dev/stdin) but not directories, and are read up
to a limit: 16 MiB for a scenario, 64 MiB for a node or pod list. --plot and
--cpuprofile replace a regular file atomically, write through a device or
FIFO (/dev/null, /dev/stdout), follow a symlink without replacing it, and
refuse a directory or socket before the replay; nothing is made beside
them until the replay is over, so an interrupted one leaves nothing.`,
		Example: `  caisson sim examples/sim-multitenant.yaml --plot shares.svg
  caisson sim --agents 10000 --sessions 1000 --tasks 1000000 --format json
  caisson sim --agents 200 --sessions 100 --tasks 20000 --offer-fanout 4
  caisson sim --trace openb`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			f := cmd.Flags()
			synthetic := f.Changed("agents") || f.Changed("sessions") || f.Changed("tasks") || f.Changed("gpu-fraction")
			sources := 0
			for _, on := range []bool{len(args) == 1, synthetic, traceName != ""} {
				if on {
					sources++
				}
			}
			switch {
			case traceName == "" && (nodesFile != "" || podsFile != ""):
				return fmt.Errorf("--nodes and --pods go with --trace openb: %w", api.ErrInvalid)
			case sources != 1:
				return fmt.Errorf("give one workload: a scenario file, --agents/--sessions/--tasks, or --trace openb: %w", api.ErrInvalid)
			case !synthetic && f.Changed("seed") && traceName != "":
				return fmt.Errorf("--seed goes with a scenario file or a generated workload; a trace has no randomness: %w", api.ErrInvalid)
			case delay < 0 || duration < 0:
				return fmt.Errorf("--framework-delay and --duration cannot be negative: %w", api.ErrInvalid)
			case slack <= 0:
				return fmt.Errorf("--sla-slack %s: want a time above zero: %w", slack, api.ErrInvalid)
			}
			var sc *scenario.Scenario
			var err error
			switch {
			case len(args) == 1:
				if sc, err = scenario.Load(args[0]); err != nil {
					return err
				}
				sc.Name = filepath.Base(args[0])
				if f.Changed("seed") {
					sc.Seed = seed
				}
			case synthetic:
				sc, err = sim.Synthetic{Agents: agents, Sessions: sessions, Tasks: tasks, GPUFraction: gpuFraction, Seed: seed}.Scenario()
				if err != nil {
					return err
				}
			default:
				if sc, err = loadTrace(traceName, nodesFile, podsFile); err != nil {
					return err
				}
			}
			if f.Changed("duration") {
				sc.Duration = duration
			}
			opts := sim.Options{OfferFanout: fanout, SLASlack: slack, Series: plot != ""}
			if f.Changed("framework-delay") {
				opts.FrameworkDelay = scenario.FixedDist(delay)
			}
			// Both outputs are checked before the run, so that a path that
			// cannot be written is refused before the work, not after; and
			// made only once written, so that a run cut short (Ctrl-C)
			// leaves nothing beside them.
			for _, out := range []struct{ flag, path string }{{"--plot", plot}, {"--cpuprofile", cpuProfile}} {
				if out.path == "" {
					continue
				}
				if err := userfile.Check(out.path); err != nil {
					return fmt.Errorf("%s: %w", out.flag, err)
				}
			}
			stop, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			rep, err := replay(cmd.Context(), sc, opts)
			if perr := stop(err == nil); err == nil {
				err = perr
			}
			if err != nil {
				return err
			}
			if plot != "" {
				var buf bytes.Buffer
				if err := sim.WritePlot(&buf, rep.Chart()); err != nil {
					return err
				}
				if err := userfile.Write(plot, buf.Bytes(), 0o644); err != nil {
					return fmt.Errorf("--plot: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				return printJSON(out, rep)
			}
			return printSimReport(out, rep, plot)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "table", "table or json")
	f.StringVar(&plot, "plot", "", "write an SVG chart of each consumer's share over time to this file")
	f.IntVar(&agents, "agents", 100, "generated workload: agents (32 cores, 128 GiB)")
	f.IntVar(&sessions, "sessions", 20, "generated workload: sessions")
	f.IntVar(&tasks, "tasks", 2000, "generated workload: tasks of work, split evenly between the sessions")
	f.Float64Var(&gpuFraction, "gpu-fraction", 0.1, "generated workload: the share of agents with four A100s")
	f.Uint64Var(&seed, "seed", 1, "seed of the generated workload, or replaces a scenario file's seed")
	f.StringVar(&traceName, "trace", "", "replay a cluster trace: openb")
	f.StringVar(&nodesFile, "nodes", "", "the trace's node list (default: the copy that ships with caisson)")
	f.StringVar(&podsFile, "pods", "", "the trace's pod list (default: the copy that ships with caisson)")
	f.IntVar(&fanout, "offer-fanout", 0, "K: sessions offered the same resources at once; 1 is Mesos' pessimistic offers (default: the scenario's, else 1)")
	f.DurationVar(&delay, "framework-delay", 50*time.Millisecond, "how long a framework session takes to answer an offer, in virtual time")
	f.DurationVar(&slack, "sla-slack", 5*time.Second, "added to a consumer's grace period: the time by which it must hold its owned share")
	f.DurationVar(&duration, "duration", 0, "stop after this much virtual time (default: the scenario's, else when nothing is left to happen)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the replay to this file (go tool pprof reads it)")
	return cmd
}

// replay is the simulation sim runs; tests look at what is on disk while
// it runs.
var replay = sim.Run

// startCPUProfile profiles the process until stop is called, in memory;
// stop(true) writes the profile to path as userfile.Write does (a regular
// file is replaced, a device or FIFO written through), stop(false) drops
// it. An empty path profiles nothing.
func startCPUProfile(path string) (stop func(write bool) error, err error) {
	if path == "" {
		return func(bool) error { return nil }, nil
	}
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return nil, fmt.Errorf("--cpuprofile %s: %w", path, err)
	}
	return func(write bool) error {
		pprof.StopCPUProfile()
		if !write {
			return nil
		}
		if err := userfile.Write(path, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return nil
	}, nil
}

// loadTrace reads a trace: the files given, or the copy that ships.
func loadTrace(name, nodesFile, podsFile string) (*scenario.Scenario, error) {
	if name != "openb" {
		return nil, fmt.Errorf("--trace %q: the simulator replays openb (the Alibaba GPU trace): %w", name, api.ErrInvalid)
	}
	if (nodesFile == "") != (podsFile == "") {
		return nil, fmt.Errorf("give both --nodes and --pods, or neither for the copy that ships: %w", api.ErrInvalid)
	}
	if nodesFile == "" {
		nodes, pods, err := trace.OpenB()
		if err != nil {
			return nil, err
		}
		return sim.FromOpenB("openb (2023)", nodes, pods)
	}
	nodes, err := trace.LoadNodes(nodesFile)
	if err != nil {
		return nil, err
	}
	pods, err := trace.LoadPods(podsFile)
	if err != nil {
		return nil, err
	}
	return sim.FromOpenB("openb: "+filepath.Base(podsFile), nodes, pods)
}

func printSimReport(out io.Writer, r *sim.Report, plot string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	q := func(x sim.Quantiles, unit string) string {
		return fmt.Sprintf("p50 %.3g%s  p99 %.3g%s  p999 %.3g%s  max %.3g%s", x.P50, unit, x.P99, unit, x.P999, unit, x.Max, unit)
	}
	row("SCENARIO", "%s", r.Scenario)
	row("CLUSTER", "%d agents, %d sessions, offer fan-out %d", r.Agents, r.Sessions, r.OfferFanout)
	row("TIME", "%s virtual in %.2fs (core %.2fs, %d steps, %d ticks)", (time.Duration(r.VirtualSeconds * float64(time.Second))).Round(time.Millisecond), r.WallSeconds, r.CoreSeconds, r.Steps, r.Ticks)
	row("SESSIONS FINISHED", "%d", r.SessionsFinished)
	row("TASKS", "%d submitted, %d placed, %d pending, %d finished, %d killed", r.TasksSubmitted, r.TasksPlaced, r.TasksPending, r.TasksFinished, r.TasksKilled)
	row("PLACEMENTS/S", "%.0f", r.PlacementsPerSec)
	row("DECISION LATENCY", "%s", q(r.DecisionLatency, "µs"))
	o := r.Offers
	row("OFFERS", "%d sent, %d accepted, %d declined, %d conflicts (%.1f%%), %d rescinded", o.Sent, o.Accepted, o.Declined, o.Conflicts, 100*o.ConflictRate, o.Rescinded)
	row("OVERCOMMIT VIOLATIONS", "%d", r.OvercommitViolations)
	row("FAIRNESS", "max deviation %.3f, mean deviation %.3f, Jain %.3f", r.Fairness.MaxDeviation, r.Fairness.MeanDeviation, r.Fairness.Jain)
	row("SLA", "%d episodes, time to owned share %s; %d episodes over grace+%gs, %d sessions affected", r.SLA.Episodes, q(r.SLA.TimeToOwnedShare, "s"), r.SLA.EpisodesViolating, r.SLA.SlackSeconds, r.SLA.SessionsViolating)
	row("RECLAIM", "%d events, latency %s; %d tasks noticed, %d killed at their deadline, %d notices withdrawn", r.Reclaim.Events, q(r.Reclaim.Latency, "s"), r.Reclaim.TasksNoticed, r.Reclaim.TasksPreempted, r.Reclaim.TasksWithdrawn)
	row("UTILIZATION", "cpu %.1f%%, memory %.1f%%, gpu %.1f%%", 100*r.Utilization.CPU, 100*r.Utilization.Memory, 100*r.Utilization.GPU)
	row("GPU ALLOCATION RATIO", "%.1f%% (peak)", 100*r.GPUAllocationRatio)
	row("PEAK RSS", "%s", api.FormatSize(uint64(max(r.PeakRSSBytes, 0))))
	if plot != "" {
		row("PLOT", "%s", plot)
	}
	return tw.Flush()
}
