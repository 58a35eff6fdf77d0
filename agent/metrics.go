package agent

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/caisson/caisson/api"
)

// metrics are the agent's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg           *prometheus.Registry
	launches      prometheus.Counter
	launchSeconds prometheus.Histogram
	taskEnds      *prometheus.CounterVec
	registrations prometheus.Counter
}

func newMetrics(a *Agent) *metrics {
	const namespace, subsystem = "caisson", "agent"
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
	}
	x := &metrics{reg: prometheus.NewRegistry()}
	x.launches = prometheus.NewCounter(prometheus.CounterOpts(opts("launches_total", "Launches the master sent that the agent started.")))
	x.launchSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem,
		Name: "launch_seconds", Help: "Time from a launch's arrival to its container running (the containerizer's launch).",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)})
	x.taskEnds = prometheus.NewCounterVec(prometheus.CounterOpts(opts("task_ends_total",
		"Tasks that ended, by state and reason (up to its first colon).")), []string{"state", "reason"})
	x.registrations = prometheus.NewCounter(prometheus.CounterOpts(opts("registrations_total", "Registrations the master accepted.")))
	tasks := prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "tasks"), "Tasks the agent runs, by state.", []string{"state"}, nil)
	x.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		x.launches, x.launchSeconds, x.taskEnds, x.registrations,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("updates_queued", "Status updates waiting for the master's acknowledgement.")),
			func() float64 { n, _ := a.queueCounts(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("updates_delivered_total", "Status updates the master acknowledged.")),
			func() float64 { _, n := a.queueCounts(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("registered", "1 while the agent holds an ID from the master, else 0.")),
			func() float64 {
				if a.ID() == "" {
					return 0
				}
				return 1
			}),
		taskStates{desc: tasks, a: a})
	x.reg.MustRegister(a.cfg.Collectors...)
	return x
}

// taskStates collects caisson_agent_tasks: every state is reported, zero
// included, so that a series does not vanish when its last task ends.
type taskStates struct {
	desc *prometheus.Desc
	a    *Agent
}

func (c taskStates) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c taskStates) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{api.TaskStaging: 0, api.TaskRunning: 0}
	c.a.mu.Lock()
	for _, t := range c.a.tasks {
		if t.rec.Terminal == nil {
			counts[t.rec.State]++
		}
	}
	c.a.mu.Unlock()
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), state)
	}
}

// ended counts a task's end.
func (x *metrics) ended(u api.StatusUpdate) {
	reason, _, _ := strings.Cut(u.Reason, ":")
	x.taskEnds.WithLabelValues(u.State, reason).Inc()
}

// queueCounts are the update queue's counts (see queue.counts); zeros
// before Run loads it.
func (a *Agent) queueCounts() (queued int, acked uint64) {
	a.mu.Lock()
	q := a.queue
	a.mu.Unlock()
	if q == nil {
		return 0, 0
	}
	return q.counts()
}

// serveMetrics serves GET /metrics on Config.MetricsAddr, in plain HTTP
// and without authentication, as Prometheus exporters do; stop stops it.
// Without an address it serves nothing.
func (a *Agent) serveMetrics() (stop func(), err error) {
	if a.cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("agent metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	a.mu.Lock()
	a.metricsAddr = ln.Addr().String()
	a.mu.Unlock()
	return a.serveOn(ln, mux), nil
}

// Listening is closed once Run's listeners listen: the agent's API and,
// with Config.MetricsAddr, the metrics.
func (a *Agent) Listening() <-chan struct{} { return a.listening }

// MetricsAddr is where the metrics listener listens once Run started it;
// empty without one.
func (a *Agent) MetricsAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.metricsAddr
}
