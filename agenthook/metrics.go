package agenthook

import (
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/prometheus/client_golang/prometheus"
)

// nriMetrics are the NRI plugins' Prometheus metrics, which the agent
// serves (Hooks.Collectors): how many plugins are registered, and each
// plugin's requests by event and result, and their latency.
type nriMetrics struct {
	plugins  prometheus.Gauge
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

var _ nri.Metrics = (*nriMetrics)(nil)

func newNRIMetrics() *nriMetrics {
	const namespace, subsystem = "caisson", "agent"
	return &nriMetrics{
		plugins: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Subsystem: subsystem, Name: "nri_plugins",
			Help: "NRI plugins registered, caisson's own validator included."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: "nri_plugin_requests_total",
			Help: "Requests to NRI plugins, by plugin, event and result (ok or error)."}, []string{"plugin", "operation", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem, Name: "nri_plugin_request_seconds",
			Help: "Time NRI plugins took to answer, by plugin and event.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)},
			[]string{"plugin", "operation"}),
	}
}

func (m *nriMetrics) RecordPluginInvocation(plugin, operation string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.requests.WithLabelValues(plugin, operation, result).Inc()
}

func (m *nriMetrics) RecordPluginLatency(plugin, operation string, latency time.Duration) {
	m.latency.WithLabelValues(plugin, operation).Observe(latency.Seconds())
}

func (m *nriMetrics) RecordPluginAdjustments(string, string, *nri.ContainerAdjustment, int, int) {}

func (m *nriMetrics) UpdatePluginCount(n int) { m.plugins.Set(float64(n)) }

// Collectors are the hooks' Prometheus metrics, for the agent to serve:
// the NRI plugins', when NRI is enabled; none otherwise.
func (h *Hooks) Collectors() []prometheus.Collector {
	if h.nri == nil {
		return nil
	}
	m := h.nri.metrics
	return []prometheus.Collector{m.plugins, m.requests, m.latency}
}
