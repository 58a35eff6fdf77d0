package master

import (
	"strings"
	"time"

	"github.com/caisson/caisson/scheduler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the master's Prometheus metrics, in a registry of its own.
type metrics struct {
	m   *Master
	reg *prometheus.Registry

	writeSeconds   prometheus.Histogram
	batchRecords   prometheus.Histogram
	launches       prometheus.Counter
	launchFailures *prometheus.CounterVec
	taskEnds       *prometheus.CounterVec
	owned          *prometheus.GaugeVec
	deserved       *prometheus.GaugeVec
	held           *prometheus.GaugeVec
	agents         *prometheus.GaugeVec
}

const namespace, subsystem = "caisson", "master"

func newMetrics(m *Master) *metrics {
	x := &metrics{m: m, reg: prometheus.NewRegistry()}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
	}
	x.writeSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem,
		Name: "store_write_seconds", Help: "Time of one group commit's store write (one transaction).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
	x.batchRecords = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem,
		Name: "store_batch_records", Help: "Records written by one group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 10)})
	x.launches = prometheus.NewCounter(prometheus.CounterOpts(opts("launches_total", "Tasks sent to agents to launch.")))
	x.launchFailures = prometheus.NewCounterVec(prometheus.CounterOpts(opts("launch_failures_total",
		"Tasks that failed before they ran, by reason (the agent's, up to its first colon).")), []string{"reason"})
	x.taskEnds = prometheus.NewCounterVec(prometheus.CounterOpts(opts("task_ends_total",
		"Tasks that ended, by state and reason (up to its first colon).")), []string{"state", "reason"})
	x.owned = prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("consumer_owned",
		"A consumer's owned resources, by consumer path and resource.")), []string{"consumer", "resource"})
	x.deserved = prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("consumer_deserved",
		"A consumer's deserved share as last computed, by consumer path and resource.")), []string{"consumer", "resource"})
	x.held = prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("consumer_held",
		"What a consumer's tasks hold, by consumer path and resource.")), []string{"consumer", "resource"})
	x.agents = prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("agents", "Agents by state.")), []string{"state"})
	x.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		x.writeSeconds, x.batchRecords, x.launches, x.launchFailures, x.taskEnds, x.owned, x.deserved, x.held, x.agents)
	for _, c := range []struct {
		name, help string
		get        func(*scheduler.Counters) int64
	}{
		{"placements_total", "Tasks the core placed.", func(c *scheduler.Counters) int64 { return c.Placements }},
		{"offers_sent_total", "Offers made to framework sessions.", func(c *scheduler.Counters) int64 { return c.OffersSent }},
		{"offers_accepted_total", "Offers accepted.", func(c *scheduler.Counters) int64 { return c.OffersAccepted }},
		{"offers_declined_total", "Offers declined.", func(c *scheduler.Counters) int64 { return c.OffersDeclined }},
		{"offers_rescinded_total", "Offers rescinded.", func(c *scheduler.Counters) int64 { return c.OffersRescinded }},
		{"conflicts_total", "Accepts rejected.", func(c *scheduler.Counters) int64 { return c.Conflicts }},
		{"reclaim_notices_total", "Notices given to tasks on borrowed resources.", func(c *scheduler.Counters) int64 { return c.Reclaims }},
		{"preemption_notices_total", "Notices given to tasks for a session of higher priority.", func(c *scheduler.Counters) int64 { return c.Preempted }},
		{"notices_withdrawn_total", "Notices withdrawn.", func(c *scheduler.Counters) int64 { return c.Withdrawn }},
		{"kills_total", "Tasks the core killed.", func(c *scheduler.Counters) int64 { return c.Killed }},
		{"tasks_lost_total", "Tasks lost with their agent.", func(c *scheduler.Counters) int64 { return c.TasksLost }},
	} {
		get := c.get
		x.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts(opts(c.name, c.help)), func() float64 {
			if cs := m.counters.Load(); cs != nil {
				return float64(get(cs))
			}
			return 0
		}))
	}
	return x
}

func (x *metrics) storeWrite(d time.Duration, records int) {
	x.writeSeconds.Observe(d.Seconds())
	x.batchRecords.Observe(float64(records))
}

// reasonLabel keeps a reason's code, not its free text.
func reasonLabel(reason string) string {
	code, _, _ := strings.Cut(reason, ":")
	if len(code) > 64 {
		code = code[:64]
	}
	return code
}

func (x *metrics) launchFailure(reason string) {
	x.launchFailures.WithLabelValues(reasonLabel(reason)).Inc()
}

func (x *metrics) taskEnded(state, reason string) {
	x.taskEnds.WithLabelValues(state, reasonLabel(reason)).Inc()
}

// refresh sets the gauges; the loop calls it on its ticks.
func (x *metrics) refresh() {
	m := x.m
	x.owned.Reset()
	x.deserved.Reset()
	x.held.Reset()
	for _, c := range m.core.Consumers() {
		set := func(g *prometheus.GaugeVec, r scheduler.Resources) {
			w := scheduler.WireResources(r)
			g.WithLabelValues(c.Name, "cpus").Set(w.CPUs)
			g.WithLabelValues(c.Name, "memory_bytes").Set(float64(w.MemoryBytes))
			g.WithLabelValues(c.Name, "disk_bytes").Set(float64(w.DiskBytes))
			g.WithLabelValues(c.Name, "gpus").Set(w.GPUs)
			g.WithLabelValues(c.Name, "ports").Set(float64(w.Ports))
		}
		set(x.owned, c.Owned)
		set(x.deserved, c.Deserved)
		set(x.held, c.Held)
	}
	counts := map[string]float64{agentConnected: 0, agentDisconnected: 0, agentLost: 0}
	for _, a := range m.agents {
		counts[m.agentState(a)]++
	}
	for state, n := range counts {
		x.agents.WithLabelValues(state).Set(n)
	}
}
