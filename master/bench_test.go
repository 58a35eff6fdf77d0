package master

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/store"
)

// The throughput workload: 1,000 agents of 100 CPUs, 100 sessions of
// 1,000 one-CPU tasks: the cluster's exact capacity.
const (
	benchAgents   = 1000
	benchSessions = 100
	benchTasks    = 1000 // per session
)

func benchNode() api.NodeResources { return nodeResources(100, 400<<30) }

func benchSpec(i int) api.SessionSpec { return batchSpec(fmt.Sprintf("s%d", i), benchTasks, 1) }

// BenchmarkClusterThroughput runs the workload end to end: the master
// (on bbolt, with fsync) serves HTTPS on loopback to 1,000 simulated
// agents that speak the real protocol (registration, NDJSON stream,
// batched status updates) without containers; 100 sessions of 1,000
// tasks are submitted through the API, and the clock runs from the first
// submit until every task's running update is acknowledged. The bare
// core places the same workload in the same run; the ratio is the
// master's rate over the core's. It runs the workload once, whatever
// -benchtime. Goal: 10,000 tasks/s.
func BenchmarkClusterThroughput(b *testing.B) {
	c := newCluster(b, clusterOptions{realClock: true})
	c.consumers(api.Consumer{Path: "/bench"})
	tenant := c.client(c.newToken(api.TokenRequest{Consumer: "/bench"}), false)
	agentTok := c.newToken(api.TokenRequest{Role: api.RoleAgent})

	const total = benchSessions * benchTasks
	var acked atomic.Int64
	allAcked := make(chan struct{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	agents := make([]*fakeAgent, benchAgents)
	for i := range agents {
		f := c.newAgent(agentTok, fmt.Sprintf("node%04d", i), benchNode(), nil)
		pending := make(chan string, benchTasks*2)
		f.onLaunch = func(l api.TaskLaunch) { pending <- l.Task }
		f.register()
		f.connect()
		agents[i] = f
		// The agent's status updates, batched: all launches received
		// since the last POST are reported running in one.
		wg.Go(func() {
			for {
				var batch []api.StatusUpdate
				select {
				case id := <-pending:
					batch = append(batch, update(id, api.TaskRunning))
				case <-stop:
					return
				}
			drain:
				for len(batch) < 1000 {
					select {
					case id := <-pending:
						batch = append(batch, update(id, api.TaskRunning))
					default:
						break drain
					}
				}
				acks := f.report(batch...)
				if acked.Add(int64(len(acks.UUIDs))) == total {
					close(allAcked)
				}
			}
		})
	}
	b.Cleanup(func() {
		close(stop)
		wg.Wait()
	})

	// Agents heartbeat: their connections are up when the work comes.
	for _, f := range agents {
		f.cl.must(http.MethodPost, "/v1/agent/heartbeat", api.Heartbeat{Agent: f.ID}, http.StatusNoContent, nil)
	}
	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	for i := range benchSessions {
		tenant.must(http.MethodPost, "/v1/sessions", benchSpec(i), http.StatusCreated, nil)
	}
	submitted := time.Since(start)
	select {
	case <-allAcked:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d tasks acknowledged in 5 minutes", acked.Load(), total)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	runtime.GC()
	coreRate := coreThroughput(b)
	rate := float64(total) / elapsed.Seconds()
	b.ReportMetric(rate, "tasks/s")
	b.ReportMetric(coreRate, "core-tasks/s")
	b.ReportMetric(rate/coreRate, "master/core")
	b.ReportMetric(submitted.Seconds(), "submit-s")
	fmt.Printf("master end to end, %d agents, %d tasks: %.0f tasks/s (goal ≥ 10,000, moonshot 50,000); the bare core %.0f/s; ratio %.3f\n",
		benchAgents, total, rate, coreRate, rate/coreRate)
	for _, f := range agents {
		f.mu.Lock()
		for task, n := range f.launches {
			if n != 1 {
				b.Fatalf("agent %s got %d launches of %s", f.ID, n, task)
			}
		}
		f.mu.Unlock()
	}
}

// coreThroughput places the same workload with the bare core: agents
// added, then the sessions submitted, each step's launches counted.
func coreThroughput(b *testing.B) float64 {
	core := scheduler.New(scheduler.Config{})
	step := func(ev scheduler.Event) *scheduler.Ready {
		r, err := core.Step(ev)
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	step(scheduler.ConsumersSet{Consumers: scheduler.ConsumersFrom(api.ConsumerTree{Consumers: []api.Consumer{{Path: "/bench"}}})})
	step(scheduler.Tick{Now: t0})
	for i := range benchAgents {
		step(scheduler.AgentAdded{Agent: scheduler.AgentFromNode(fmt.Sprintf("a%d", i), "h", benchNode(), nil)})
	}
	placed := 0
	start := time.Now()
	for i := range benchSessions {
		placed += len(step(scheduler.SessionSubmitted{Session: scheduler.SessionFrom(fmt.Sprintf("s%d", i), "/bench", "", benchSpec(i))}).Launches)
	}
	elapsed := time.Since(start)
	if placed != benchSessions*benchTasks {
		b.Fatalf("the core placed %d tasks, want %d", placed, benchSessions*benchTasks)
	}
	return float64(placed) / elapsed.Seconds()
}

// BenchmarkMasterMemory reports the master's live heap per agent (1,000
// agents registered, nothing else) and per task (100 sessions of 1,000
// tasks launched on them and reported running), core and tables
// included, the store's log on disk left out. It drives the master in
// process (no HTTP) and measures once, whatever -benchtime.
func BenchmarkMasterMemory(b *testing.B) {
	st, err := store.Open(b.TempDir()+"/master.db", store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	heap := func() float64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc)
	}
	b.ResetTimer()
	base := heap()
	m, err := New(Config{Store: st, Clock: newFakeClock(), SnapshotEvery: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	do := func(f func(tx *txn) (any, error)) any {
		res, err := m.do(context.Background(), f)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	do(func(tx *txn) (any, error) {
		return nil, tx.log(&record{Consumers: &api.ConsumerTree{Consumers: []api.Consumer{{Path: "/bench"}}}})
	})
	empty := heap()
	var ids []string
	for i := range benchAgents {
		reg := do(func(tx *txn) (any, error) {
			return m.registerAgent(tx, api.AgentRegistration{Hostname: fmt.Sprintf("node%04d", i), Address: "10.0.0.1:7070", Resources: benchNode()})
		}).(api.Registered)
		ids = append(ids, reg.ID)
	}
	withAgents := heap()
	for i := range benchSessions {
		spec := benchSpec(i)
		spec.Consumer = "/bench"
		do(func(tx *txn) (any, error) {
			id := newID(func(id string) bool { return m.sessions[id] != nil })
			return nil, tx.log(&record{Session: &sessionRecord{ID: id, Spec: spec, Submitted: tx.now}})
		})
	}
	for _, id := range ids {
		do(func(tx *txn) (any, error) {
			var req api.StatusUpdates
			req.Agent = id
			for _, t := range sortedTasks(m.agents[id].tasks) {
				req.Updates = append(req.Updates, update(t.ID, api.TaskRunning))
			}
			return m.applyUpdates(tx, req)
		})
	}
	withTasks := heap()
	if n := len(m.tasks); n != benchSessions*benchTasks {
		b.Fatalf("%d tasks, want %d", n, benchSessions*benchTasks)
	}
	runtime.KeepAlive(m)
	b.ReportMetric((withAgents-empty)/benchAgents, "B/agent")
	b.ReportMetric((withTasks-withAgents)/(benchSessions*benchTasks), "B/task")
	b.ReportMetric(empty-base, "B/empty-master")
}
