package sim

import (
	"bufio"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caisson/caisson/scheduler"
)

// Report is what a run measured. Its JSON form is what `caisson sim
// --format json` prints.
type Report struct {
	Scenario       string  `json:"scenario"`
	Agents         int     `json:"agents"`
	Sessions       int     `json:"sessions"`
	OfferFanout    int     `json:"offer_fanout"`
	VirtualSeconds float64 `json:"virtual_seconds"`
	WallSeconds    float64 `json:"wall_seconds"`
	// CoreSeconds is the wall time spent inside the core's Step.
	CoreSeconds float64 `json:"core_seconds"`
	Steps       int64   `json:"steps"`
	Ticks       int64   `json:"ticks"`

	SessionsFinished int `json:"sessions_finished"`
	// TasksSubmitted counts the tasks the core was asked to run: the
	// groups' counts at submission and what dynamic allocation added.
	TasksSubmitted int64 `json:"tasks_submitted"`
	// TasksPlaced counts launches, a task run again after a kill
	// included.
	TasksPlaced   int64 `json:"tasks_placed"`
	TasksPending  int   `json:"tasks_pending"`
	TasksFinished int64 `json:"tasks_finished"`
	TasksKilled   int64 `json:"tasks_killed"`
	// PlacementsPerSec is TasksPlaced over CoreSeconds: the core's
	// throughput, not the simulator's.
	PlacementsPerSec float64 `json:"placements_per_sec"`
	// DecisionLatency is the wall time of the core's Step, per event.
	DecisionLatency Quantiles `json:"decision_latency_us"`

	Offers OfferStats `json:"offers"`
	// OvercommitViolations counts launches that would over-commit an
	// agent or a GPU by the simulator's own ledger, tasks launched twice,
	// and failed checks of the core's invariants.
	OvercommitViolations int64 `json:"overcommit_violations"`

	Fairness    Fairness    `json:"fairness"`
	SLA         SLA         `json:"sla"`
	Reclaim     Reclaim     `json:"reclaim"`
	Utilization Utilization `json:"utilization"`
	// GPUAllocationRatio is the highest share of the cluster's GPUs
	// allocated at once.
	GPUAllocationRatio float64 `json:"gpu_allocation_ratio"`
	// PeakRSSBytes is the process's peak resident memory (Linux VmHWM),
	// 0 where unknown.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`

	chart Chart
}

// Chart is the consumers' shares over time, recorded with Options.Series.
func (r *Report) Chart() Chart { return r.chart }

// Quantiles summarise a distribution.
type Quantiles struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// OfferStats are the core's offer counters. ConflictRate is conflicts
// over accepts tried (accepted and conflicting).
type OfferStats struct {
	Sent         int64   `json:"sent"`
	Accepted     int64   `json:"accepted"`
	Declined     int64   `json:"declined"`
	Conflicts    int64   `json:"conflicts"`
	Rescinded    int64   `json:"rescinded"`
	ConflictRate float64 `json:"conflict_rate"`
}

// Fairness compares each leaf consumer's dominant share of the cluster
// with the share it deserves, on every tick, over the leaves that hold
// or want something. MaxDeviation is the largest gap seen, MeanDeviation
// the time-weighted mean of the mean gap, Jain the time-weighted Jain
// index of held/deserved (1 is perfectly fair).
type Fairness struct {
	MaxDeviation  float64 `json:"max_deviation"`
	MeanDeviation float64 `json:"mean_deviation"`
	Jain          float64 `json:"jain"`
}

// SLA measures how long consumers with an owned share wait for it: an
// episode starts on the first tick a consumer has a waiting task that
// fits in the part of its owned share it does not hold, and ends on the
// first tick it has none. An episode longer than the consumer's grace
// period plus the slack violates the SLA; SessionsViolating counts the
// sessions that were waiting then.
type SLA struct {
	Episodes          int       `json:"episodes"`
	TimeToOwnedShare  Quantiles `json:"time_to_owned_share_s"`
	EpisodesViolating int       `json:"episodes_violating"`
	SessionsViolating int       `json:"sessions_violating"`
	SlackSeconds      float64   `json:"slack_s"`
}

// Reclaim measures taking lent resources back: an event starts with the
// first reclaim notice for a consumer and ends when the consumer's SLA
// episode does. TasksNoticed counts the reclaim notices, TasksPreempted the tasks
// killed at their deadline (for reclaim or for priority), TasksWithdrawn
// the notices (for either) withdrawn because the claimant no longer
// needed them.
type Reclaim struct {
	Events         int       `json:"events"`
	Latency        Quantiles `json:"latency_s"`
	TasksNoticed   int64     `json:"tasks_noticed"`
	TasksWithdrawn int64     `json:"tasks_withdrawn"`
	TasksPreempted int64     `json:"tasks_preempted"`
}

// Utilization is the time-weighted share of the cluster's resources held
// by tasks.
type Utilization struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
	GPU    float64 `json:"gpu"`
}

// metrics accumulates during a run.
type metrics struct {
	start            time.Time
	lat              []int64 // ns per Step
	coreNanos        int64
	ticks            int64
	submitted        int64
	placed           int64
	finished         int64
	tasksKilled      int64
	sessionsFinished int
	overcommit       int64

	area    [scheduler.NumKinds]float64 // held × seconds
	span    float64
	gpuPeak float64

	// Fairness, integrated between ticks.
	lastCheck float64
	lastDev   float64
	lastJain  float64
	haveLast  bool
	maxDev    float64
	devArea   float64
	jainArea  float64
	fairSpan  float64

	// SLA and reclaim episodes by leaf.
	short     map[string]float64 // leaf → when its episode started
	flagged   map[string]bool    // leaf → its episode violated
	violators map[string]bool    // sessions
	episodes  []float64
	violating int
	reclaimAt map[string]float64 // leaf → when its reclaim began
	reclaims  []float64
	noticed   int64

	// Shares for the chart.
	times    []float64
	names    []string
	owned    []float64
	held     [][]float64
	deserved [][]float64
}

func (m *metrics) init(r *runner) {
	m.start = r.clock()
	m.short = map[string]float64{}
	m.flagged = map[string]bool{}
	m.violators = map[string]bool{}
	m.reclaimAt = map[string]float64{}
}

func (m *metrics) latency(d time.Duration) {
	m.lat = append(m.lat, int64(d))
	m.coreNanos += int64(d)
}

// integrate adds what the cluster held over the dt before now moves on.
func (m *metrics) integrate(r *runner, dt time.Duration) {
	s := dt.Seconds()
	for k := range m.area {
		m.area[k] += float64(r.held[k]) * s
	}
	m.span += s
}

func (m *metrics) notice(r *runner, n scheduler.Notice) {
	if n.Preempt {
		return
	}
	m.noticed++
	if _, ok := m.reclaimAt[n.Consumer]; !ok {
		m.reclaimAt[n.Consumer] = r.now.Seconds()
	}
}

func (m *metrics) verify(r *runner) {
	if err := r.core.Verify(); err != nil {
		m.overcommit++
	}
}

// checkpoint looks at the consumers after a tick.
func (m *metrics) checkpoint(r *runner) {
	now := r.now.Seconds()
	if r.total[scheduler.GPU] > 0 {
		m.gpuPeak = max(m.gpuPeak, float64(r.held[scheduler.GPU])/float64(r.total[scheduler.GPU]))
	}
	cs := r.core.Consumers()
	total := r.core.Total()
	// Fairness over the leaves that hold or want something.
	if m.haveLast {
		dt := now - m.lastCheck
		m.devArea += m.lastDev * dt
		m.jainArea += m.lastJain * dt
		m.fairSpan += dt
	}
	var sum, sumSq, devSum float64
	n := 0
	for _, c := range cs {
		if !c.Leaf || !(c.Held.Any() || c.Pending.Any()) {
			continue
		}
		h, d := c.Held.Share(total), c.Deserved.Share(total)
		dev := math.Abs(h - d)
		m.maxDev = max(m.maxDev, dev)
		devSum += dev
		n++
		if d > 0 {
			x := h / d
			sum += x
			sumSq += x * x
		}
	}
	m.lastDev, m.lastJain = 0, 1
	if n > 0 {
		m.lastDev = devSum / float64(n)
	}
	if sumSq > 0 {
		m.lastJain = sum * sum / (float64(n) * sumSq)
	}
	m.lastCheck, m.haveLast = now, true
	// SLA episodes.
	for _, c := range cs {
		if !c.Leaf || !c.Owned.Any() {
			continue
		}
		start, open := m.short[c.Name]
		if owes(c) {
			if !open {
				m.short[c.Name] = now
				continue
			}
			if target := c.Grace.Seconds() + r.opts.SLASlack.Seconds(); now-start > target && !m.flagged[c.Name] {
				m.flagged[c.Name] = true
				m.violating++
				for _, id := range r.core.WaitingSessions(c.Name) {
					m.violators[id] = true
				}
			}
			continue
		}
		if open {
			m.closeEpisode(c.Name, now)
		}
	}
	if r.opts.Series {
		m.record(cs, total, now, r.tick.Seconds())
	}
}

// owes reports whether a leaf has a waiting task that fits in the part of
// its owned share it does not hold.
func owes(c scheduler.ConsumerStatus) bool {
	if !c.Smallest.Any() {
		return false
	}
	want := c.HeldOwned.Add(c.Smallest)
	for k := range want {
		switch scheduler.Kind(k) {
		case scheduler.Ports:
			continue
		case scheduler.Disk:
			if c.Owned[k] == 0 {
				continue
			}
		}
		if want[k] > c.Owned[k] {
			return false
		}
	}
	return true
}

func (m *metrics) closeEpisode(name string, now float64) {
	m.episodes = append(m.episodes, now-m.short[name])
	delete(m.short, name)
	delete(m.flagged, name)
	if at, ok := m.reclaimAt[name]; ok {
		m.reclaims = append(m.reclaims, now-at)
		delete(m.reclaimAt, name)
	}
}

// record samples the shares for the chart; after ticks were skipped it
// first repeats the last sample just before now, so the lines step.
func (m *metrics) record(cs []scheduler.ConsumerStatus, total scheduler.Resources, now, tick float64) {
	if m.names == nil {
		for _, c := range cs {
			m.names = append(m.names, c.Name)
			m.owned = append(m.owned, c.Owned.Share(total))
		}
		m.held = make([][]float64, len(cs))
		m.deserved = make([][]float64, len(cs))
	}
	if k := len(m.times); k > 0 && now-m.times[k-1] > 1.5*tick {
		m.times = append(m.times, now-tick)
		for i := range m.held {
			m.held[i] = append(m.held[i], m.held[i][k-1])
			m.deserved[i] = append(m.deserved[i], m.deserved[i][k-1])
		}
	}
	m.times = append(m.times, now)
	for i, c := range cs {
		m.held[i] = append(m.held[i], c.Held.Share(total))
		m.deserved[i] = append(m.deserved[i], c.Deserved.Share(total))
	}
}

// finish closes the open episodes at the end of the run.
func (m *metrics) finish(r *runner) {
	now := r.now.Seconds()
	for _, name := range sortedKeys(m.short) {
		m.closeEpisode(name, now)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// maxChartPanels caps the panels of the chart: with more leaves, the
// top-level consumers are drawn.
const maxChartPanels = 12

func (r *runner) report() *Report {
	m := &r.m
	cnt := r.core.Counters()
	rep := &Report{
		Scenario: r.sc.Name, Agents: len(r.sc.Agents), Sessions: len(r.sc.Sessions),
		OfferFanout:    r.core.Config().OfferFanout,
		VirtualSeconds: r.now.Seconds(),
		WallSeconds:    r.clock().Sub(m.start).Seconds(),
		CoreSeconds:    float64(m.coreNanos) / 1e9,
		Steps:          int64(len(m.lat)),
		Ticks:          m.ticks,

		SessionsFinished: m.sessionsFinished,
		TasksSubmitted:   m.submitted,
		TasksPlaced:      m.placed,
		TasksPending:     r.core.Waiting(),
		TasksFinished:    m.finished,
		TasksKilled:      m.tasksKilled,

		Offers: OfferStats{
			Sent: cnt.OffersSent, Accepted: cnt.OffersAccepted, Declined: cnt.OffersDeclined,
			Conflicts: cnt.Conflicts, Rescinded: cnt.OffersRescinded,
		},
		OvercommitViolations: m.overcommit,
		Fairness:             Fairness{MaxDeviation: m.maxDev, Jain: 1},
		SLA: SLA{
			Episodes: len(m.episodes), TimeToOwnedShare: quantiles(m.episodes),
			EpisodesViolating: m.violating, SessionsViolating: len(m.violators),
			SlackSeconds: r.opts.SLASlack.Seconds(),
		},
		Reclaim: Reclaim{
			Events: len(m.reclaims), Latency: quantiles(m.reclaims),
			TasksNoticed: m.noticed, TasksWithdrawn: cnt.Withdrawn, TasksPreempted: cnt.Preempted,
		},
		GPUAllocationRatio: m.gpuPeak,
		PeakRSSBytes:       peakRSS(),
	}
	if tried := cnt.OffersAccepted + cnt.Conflicts; tried > 0 {
		rep.Offers.ConflictRate = float64(cnt.Conflicts) / float64(tried)
	}
	if rep.CoreSeconds > 0 {
		rep.PlacementsPerSec = float64(m.placed) / rep.CoreSeconds
	}
	lat := make([]float64, len(m.lat))
	for i, d := range m.lat {
		lat[i] = float64(d) / 1e3
	}
	rep.DecisionLatency = quantiles(lat)
	if m.fairSpan > 0 {
		rep.Fairness.MeanDeviation = m.devArea / m.fairSpan
		rep.Fairness.Jain = m.jainArea / m.fairSpan
	}
	util := func(k scheduler.Kind) float64 {
		if r.total[k] == 0 || m.span == 0 {
			return 0
		}
		return m.area[k] / (float64(r.total[k]) * m.span)
	}
	rep.Utilization = Utilization{CPU: util(scheduler.CPU), Memory: util(scheduler.Memory), GPU: util(scheduler.GPU)}
	rep.chart = m.chart(r)
	return rep
}

// chart builds the chart: the leaves, or the top-level consumers when
// there are too many leaves.
func (m *metrics) chart(r *runner) Chart {
	c := Chart{Title: r.sc.Name + ": share of the cluster by consumer (dominant resource)", Times: m.times}
	if len(m.times) == 0 {
		return c
	}
	cs := r.core.Consumers()
	pick := func(ok func(scheduler.ConsumerStatus) bool) []int {
		var out []int
		for i, st := range cs {
			if i < len(m.names) && ok(st) {
				out = append(out, i)
			}
		}
		return out
	}
	idx := pick(func(st scheduler.ConsumerStatus) bool { return st.Leaf })
	if len(idx) > maxChartPanels {
		idx = pick(func(st scheduler.ConsumerStatus) bool { return st.Parent == "" })
		c.Title += ", top level"
	}
	if len(idx) > maxChartPanels {
		idx = idx[:maxChartPanels]
		c.Title += ", first " + strconv.Itoa(maxChartPanels)
	}
	for _, i := range idx {
		c.Series = append(c.Series, Series{Name: m.names[i], Held: m.held[i], Deserved: m.deserved[i], Owned: m.owned[i]})
	}
	return c
}

// quantiles of values, by the nearest rank.
func quantiles(v []float64) Quantiles {
	if len(v) == 0 {
		return Quantiles{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Quantiles{P50: at(0.5), P99: at(0.99), P999: at(0.999), Max: s[len(s)-1]}
}

// peakRSS reads the process's peak resident memory from
// /proc/self/status; 0 where there is none.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 2 && fields[1] == "kB" {
				kb, err := strconv.ParseInt(fields[0], 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
