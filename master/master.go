package master

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

// maxBatch bounds how many queued calls one group commit takes.
const maxBatch = 512

// Master is the cluster's master: the scheduler core, the tables around
// it, and the API. One goroutine (Run's) owns all of it; HTTP handlers
// and in-process callers send it operations (see do).
type Master struct {
	cfg   Config
	log   *slog.Logger
	clock Clock

	// Owned by the loop (or by New, before it runs).
	core      *scheduler.Core
	seq       uint64 // the last record written
	snapSeq   uint64 // the last snapshot's
	idle      bool   // the last tick decided nothing, and nothing came since
	lastWake  time.Time
	consumers api.ConsumerTree
	leaves    map[string]bool // consumer paths that are leaves
	sessions  map[string]*session
	tasks     map[string]*task
	// noticed are the tasks of batch sessions under a notice whose
	// SIGTERM waits for its time (see termAt).
	noticed map[string]*task
	taskSeq uint64
	agents  map[string]*agent
	tokens  map[string]*tokenRecord
	offers  map[string]*offer

	// auth is the tokens as handlers read them: replaced whole, after
	// the records that change them are durable.
	auth     atomic.Pointer[map[string]*tokenRecord]
	counters atomic.Pointer[scheduler.Counters]

	metrics   *metrics
	logClient *http.Client

	ops chan *op

	// onDetach, when set (by tests, before Run), is called in the loop
	// when an agent's stream is gone.
	onDetach func(agent string)

	mu     sync.Mutex // guards phase, cancel; held by inline batches
	phase  int
	cancel context.CancelFunc
	done   chan struct{} // closed when the master stops
	exited chan struct{} // closed when Run returns
}

const (
	phaseNew = iota
	phaseRunning
	phaseStopped
)

// errStopped answers calls after the master stopped.
var errStopped = fmt.Errorf("master: stopped: %w", api.ErrUnavailable)

// New builds a master from what its store holds: the latest snapshot and
// the log after it, replayed without acting on anything. Agents and
// sessions reconnect once Run serves.
func New(cfg Config) (*Master, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Master{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock,
		leaves: map[string]bool{}, sessions: map[string]*session{}, tasks: map[string]*task{}, noticed: map[string]*task{},
		agents: map[string]*agent{}, tokens: map[string]*tokenRecord{}, offers: map[string]*offer{},
		ops: make(chan *op, 4096), done: make(chan struct{}), exited: make(chan struct{}),
	}
	m.metrics = newMetrics(m)
	m.logClient = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.AgentTLS, ForceAttemptHTTP2: true}}
	loaded, err := cfg.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("master: %w", err)
	}
	if loaded.Snapshot != nil {
		if err := m.restore(loaded.Snapshot); err != nil {
			return nil, fmt.Errorf("master: restore the snapshot at %d: %w", loaded.SnapshotSeq, err)
		}
	} else {
		m.core = scheduler.New(cfg.Scheduler)
	}
	m.seq, m.snapSeq = loaded.SnapshotSeq, loaded.SnapshotSeq
	replay := &txn{m: m, replay: true}
	for _, r := range loaded.Events {
		rec, err := decodeRecord(r.Data)
		if err == nil {
			err = m.apply(rec, replay)
		}
		if err != nil {
			return nil, fmt.Errorf("master: replay record %d: %w", r.Seq, err)
		}
		m.seq = r.Seq
	}
	now := m.clock.Now()
	m.lastWake = now
	for _, a := range m.agents {
		a.lastSeen = now // every agent gets its time to come back
	}
	m.publishTokens()
	m.publishCounters()
	m.log.Info("master restored", "seq", m.seq, "snapshot", m.snapSeq, "replayed", len(loaded.Events),
		"agents", len(m.agents), "sessions", len(m.sessions), "tasks", len(m.tasks))
	return m, nil
}

// Run is the loop that owns the core: it takes the queued calls, agent
// messages and ticks in groups, writes each group's records in one store
// transaction, then acts on their decisions and answers the callers. It
// returns nil when ctx ends or Close is called, and an error when the
// store fails (the master then stops: its memory is ahead of its log).
func (m *Master) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.phase != phaseNew {
		m.mu.Unlock()
		return fmt.Errorf("master: Run called twice or after Close: %w", api.ErrWrongState)
	}
	ctx, cancel := context.WithCancel(ctx)
	m.phase, m.cancel = phaseRunning, cancel
	m.mu.Unlock()
	defer close(m.exited)
	defer m.stop()
	defer cancel()

	var timer Timer
	var timerAt time.Time
	batch := make([]*op, 0, maxBatch)
	for {
		at := m.nextWake()
		if timer == nil || !at.Equal(timerAt) {
			if timer != nil {
				timer.Stop()
			}
			timer, timerAt = m.clock.NewTimer(max(0, at.Sub(m.clock.Now()))), at
		}
		batch = batch[:0]
		tick := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case o := <-m.ops:
			batch = append(batch, o)
		case <-timer.C():
			tick, timer = true, nil
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case o := <-m.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		if err := m.process(batch, tick); err != nil {
			m.log.Error("master stops", "err", err)
			return err
		}
	}
}

// nextWake is when the loop ticks next: a tick interval after the last,
// or the core's next deadline if that comes first.
func (m *Master) nextWake() time.Time {
	at := m.lastWake.Add(m.cfg.TickInterval)
	if d, ok := m.core.NextDeadline(); ok && d.Before(at) {
		at = d
	}
	return at
}

// stop ends the master: queued and later calls are answered with
// ErrUnavailable, streams end.
func (m *Master) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase == phaseStopped {
		return
	}
	m.phase = phaseStopped
	close(m.done)
	for _, a := range m.agents {
		if a.stream != nil {
			a.stream.close()
		}
	}
	for _, s := range m.sessions {
		for st := range s.streams {
			st.close()
		}
	}
}

// Close stops Run, if it runs, and waits for it; streams end. It does
// not close the store, which is the caller's. It is idempotent.
func (m *Master) Close() error {
	m.mu.Lock()
	phase, cancel := m.phase, m.cancel
	m.mu.Unlock()
	switch phase {
	case phaseRunning:
		cancel()
		<-m.exited
	case phaseNew:
		m.stop()
	}
	return nil
}

// op is one call into the loop.
type op struct {
	fn   func(tx *txn) (any, error)
	res  any
	err  error
	done chan struct{}
}

// do runs fn in the loop and returns its answer once the records it wrote
// are durable. Before Run, fn runs at once in the caller's goroutine (a
// group of one), so that a master can be set up (BootstrapAdmin) before
// it serves.
func (m *Master) do(ctx context.Context, fn func(tx *txn) (any, error)) (any, error) {
	o := &op{fn: fn, done: make(chan struct{})}
	m.mu.Lock()
	switch m.phase {
	case phaseNew:
		defer m.mu.Unlock()
		if err := m.process([]*op{o}, false); err != nil {
			return nil, err
		}
		return o.res, o.err
	case phaseStopped:
		m.mu.Unlock()
		return nil, errStopped
	}
	m.mu.Unlock()
	select {
	case m.ops <- o:
	case <-m.done:
		return nil, errStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-o.done:
		return o.res, o.err
	case <-m.done:
		select {
		case <-o.done:
			return o.res, o.err
		default:
			return nil, errStopped
		}
	}
}

// txn gathers what one group of calls wrote and what it decided to do.
type txn struct {
	m       *Master
	replay  bool
	now     time.Time
	records [][]byte
	actions []func()
	// conflictTo routes an accept's conflicts that name no session (the
	// offer was gone) to the session that accepted.
	conflictTo string
}

// log applies a record and, unless replaying, queues it for the store. A
// record the master or the core refuses changes nothing and is not
// written. Before the first event that the core sees at a time the clock
// has left behind by more than a tick interval, a tick brings it up to
// date.
func (tx *txn) log(r *record) error {
	m := tx.m
	if !tx.replay && touchesCore(r) && tx.now.Sub(m.core.Now()) > m.cfg.TickInterval {
		if err := tx.log(eventRecord(scheduler.Tick{Now: tx.now})); err != nil {
			return err
		}
	}
	if err := m.apply(r, tx); err != nil {
		return err
	}
	if tx.replay {
		return nil
	}
	data, err := r.encode()
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}
	tx.records = append(tx.records, data)
	return nil
}

// touchesCore reports whether a record steps the core with something
// other than a tick.
func touchesCore(r *record) bool {
	if r.ev != nil {
		_, tick := r.ev.(scheduler.Tick)
		return !tick
	}
	return r.Consumers != nil || r.Session != nil || r.Agent != nil || r.Update != nil || r.Kill != nil
}

// after queues an action for once the group's records are durable.
func (tx *txn) after(f func()) {
	if !tx.replay {
		tx.actions = append(tx.actions, f)
	}
}

// process runs one group: the calls (and a tick), one store write, the
// actions, the answers. An error is the store's: nothing was acted on
// and the master must stop.
func (m *Master) process(batch []*op, tick bool) error {
	// Without its monotonic reading: the time goes into records, and
	// replay must compare times as the live master did.
	tx := &txn{m: m, now: m.clock.Now().Round(0)}
	if tick {
		m.timerTick(tx)
	}
	for _, o := range batch {
		o.res, o.err = o.fn(tx)
	}
	if n := len(tx.records); n > 0 {
		start := time.Now()
		err := m.cfg.Store.AppendBatch(m.seq+1, tx.records)
		m.metrics.storeWrite(time.Since(start), n)
		if err != nil {
			err = fmt.Errorf("master: write %d records: %w", n, err)
			for _, o := range batch {
				o.res, o.err = nil, fmt.Errorf("%w: %w", err, api.ErrUnavailable)
				close(o.done)
			}
			return err
		}
		m.seq += uint64(n)
	}
	for _, f := range tx.actions {
		f()
	}
	for _, o := range batch {
		close(o.done)
	}
	m.publishCounters()
	if m.seq-m.snapSeq >= m.snapshotEvery() {
		m.snapshot()
	}
	return nil
}

// termDue logs the SIGTERM of the noticed tasks whose time has come.
func (m *Master) termDue(tx *txn) {
	for _, id := range slices.Sorted(maps.Keys(m.noticed)) {
		t := m.noticed[id]
		if !m.awaitsTerm(t) {
			delete(m.noticed, id)
			continue
		}
		if !tx.now.Before(m.termAt(t)) {
			if err := tx.log(&record{Term: &termRecord{Task: id}}); err != nil {
				m.log.Error("SIGTERM of a noticed task refused", "task", id, "err", err)
			}
		}
	}
}

// maxForget bounds the sessions one tick forgets, so that a long-stopped
// master's first ticks stay small groups.
const maxForget = 1000

// forgetFinished logs the forgetting of the sessions that finished at
// least Config.Retention ago and whose tasks have all ended.
func (m *Master) forgetFinished(tx *txn) {
	var ids []string
	for id, s := range m.sessions {
		if !s.running() && tx.now.Sub(s.finished) >= m.cfg.Retention && allEnded(s.tasks) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids)
	ids = ids[:min(len(ids), maxForget)]
	if err := tx.log(&record{Forget: &forgetRecord{Sessions: ids}}); err != nil {
		m.log.Error("forget finished sessions refused", "err", err)
	}
}

func allEnded(tasks []*task) bool {
	for _, t := range tasks {
		if !t.ended() {
			return false
		}
	}
	return true
}

// snapshotEvery is how many records to write between snapshots:
// Config.SnapshotEvery, or as many as the tables hold rows when that is
// more, so that what snapshots cost stays in proportion to what is
// logged.
func (m *Master) snapshotEvery() uint64 {
	return uint64(max(m.cfg.SnapshotEvery, len(m.tasks)+len(m.sessions)+len(m.agents)))
}

// timerTick is the loop's periodic work: the core's clock (unless the
// tick would decide nothing), agents' liveness, and forgetting the
// sessions whose retention is over.
func (m *Master) timerTick(tx *txn) {
	now := tx.now
	m.lastWake = now
	if now.After(m.core.Now()) {
		d, ok := m.core.NextDeadline()
		if !m.idle || (ok && !now.Before(d)) {
			if err := tx.log(eventRecord(scheduler.Tick{Now: now})); err != nil {
				m.log.Error("tick refused", "err", err)
			}
		}
	}
	for _, a := range sortedAgents(m.agents) {
		switch {
		case a.lost:
		case a.stream != nil:
			a.lastSeen = now
		case now.Sub(a.lastSeen) >= m.cfg.HeartbeatTimeout+m.cfg.AgentLostTimeout:
			m.log.Warn("agent lost", "agent", a.reg.ID, "last_seen", a.lastSeen)
			if err := tx.log(eventRecord(scheduler.AgentLost{ID: a.reg.ID})); err != nil {
				m.log.Error("agent lost refused", "agent", a.reg.ID, "err", err)
			}
		case now.Sub(a.lastSeen) >= m.cfg.HeartbeatTimeout && !a.unreachable:
			m.log.Warn("agent unreachable", "agent", a.reg.ID, "last_seen", a.lastSeen)
			if err := tx.log(eventRecord(scheduler.AgentUpdated{Agent: a.spec(), Unhealthy: true})); err != nil {
				m.log.Error("agent unreachable refused", "agent", a.reg.ID, "err", err)
			}
		}
	}
	m.metrics.refresh()
	m.termDue(tx)
	m.forgetFinished(tx)
}

func (m *Master) publishCounters() {
	c := m.core.Counters()
	m.counters.Store(&c)
}

func (m *Master) publishTokens() {
	t := make(map[string]*tokenRecord, len(m.tokens))
	for id, r := range m.tokens {
		t[id] = r
	}
	m.auth.Store(&t)
}

// snapshot saves the master's tables and the core at the last record.
func (m *Master) snapshot() {
	data, err := m.encodeSnapshot()
	if err == nil {
		err = m.cfg.Store.SaveSnapshot(m.seq, data)
	}
	if err != nil {
		// The log still has everything: the next snapshot will do.
		m.log.Error("snapshot", "seq", m.seq, "err", err)
		return
	}
	m.snapSeq = m.seq
	m.log.Debug("snapshot", "seq", m.seq, "bytes", len(data))
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID is a random identifier of 8 lower-case letters and digits (40
// bits), that taken does not hold.
func newID(taken func(string) bool) string {
	for {
		var b [5]byte
		_, _ = rand.Read(b[:])
		id := idEncoding.EncodeToString(b[:])
		if !taken(id) && !strings.ContainsAny(id[:1], "234567") {
			return id
		}
	}
}

// errorsIs reports whether err wraps any of targets.
func errorsIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
