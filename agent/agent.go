package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caisson/caisson/api"
)

// Retries of calls to the master back off exponentially, with jitter,
// from backoffBase up to backoffMax.
const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
	// defaultHeartbeat is the heartbeat period when the master gives none.
	defaultHeartbeat = 10 * time.Second
	// updateBatch is the most updates sent in one call.
	updateBatch = 500
)

// Agent is a node daemon: see the package doc.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	clock Clock
	store *store
	kept  *keptLogs
	mc    *masterClient

	running atomic.Bool

	mu    sync.Mutex
	id    string
	queue *queue
	tasks map[string]*task
	// sentResources are the detected resources behind what the master
	// last accepted (which Config.Decorate may have changed).
	sentResources *api.NodeResources
	// registered has a value when a registration succeeded since the
	// update sender last looked.
	registered chan struct{}
	// apiAddr is the address the agent's API listens on, once it does;
	// metricsAddr the metrics listener's.
	apiAddr     string
	metricsAddr string
	metrics     *metrics
	// listening is closed once the agent's API listens.
	listening chan struct{}

	wg sync.WaitGroup // the goroutines of Run

	// forgotten, when set (by tests), is called when a task's record is
	// deleted.
	forgotten func(task string)
}

// New checks cfg and makes an agent; it reads its ID from the state dir.
// Run starts it.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	st, err := newStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	id, err := st.loadID()
	if err != nil {
		return nil, err
	}
	kept, bad, err := openKeptLogs(filepath.Join(cfg.StateDir, logsDir), cfg.KeptLogs, cfg.MaxKeptLog)
	if err != nil {
		return nil, err
	}
	for _, e := range bad {
		cfg.Logger.Warn("a kept log cannot be deleted", "err", e)
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger, clock: cfg.Clock, store: st, kept: kept, id: id,
		mc:         newMasterClient(cfg.MasterURL, cfg.Token, cfg.TLS),
		tasks:      map[string]*task{},
		registered: make(chan struct{}, 1),
		listening:  make(chan struct{}),
	}
	a.metrics = newMetrics(a)
	return a, nil
}

// ID is the agent's ID, empty until the master first gave one.
func (a *Agent) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// Run runs the agent until ctx is done: it serves its API, recovers the
// tasks of a previous run, registers with the master (retrying while the
// master cannot be reached), and serves the master's launches and kills,
// registering again whenever the stream drops. When ctx is done it stops,
// leaving the containers running: a new Run over the same state dir
// recovers them. It returns an error only when it cannot start; an agent
// is run once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return fmt.Errorf("agent: already run: %w", api.ErrWrongState)
	}
	defer a.mc.close()
	if a.cfg.OnStart != nil {
		res, err := a.cfg.Resources(ctx)
		if err != nil {
			return fmt.Errorf("the host's resources: %w", err)
		}
		reg := a.reported(res)
		if err := a.cfg.OnStart(ctx, &reg); err != nil {
			return fmt.Errorf("agent-start hooks: %w", err)
		}
	}
	// The metrics first: once the API listens, both do.
	stopMetrics, err := a.serveMetrics()
	if err != nil {
		return err
	}
	defer stopMetrics()
	stopAPI, err := a.serve()
	if err != nil {
		return err
	}
	defer stopAPI()
	q, bad, err := loadQueue(filepath.Join(a.cfg.StateDir, updatesDir))
	if err != nil {
		return err
	}
	for _, e := range bad {
		a.log.Error("a queued status update cannot be read; it is set aside", "err", e)
	}
	a.mu.Lock()
	a.queue = q
	a.mu.Unlock()
	if err := a.recover(ctx); err != nil {
		a.wg.Wait()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.sendUpdates(ctx)
	}()
	a.connect(ctx)
	a.wg.Wait()
	return nil
}

// connect registers and serves the master's stream until ctx is done.
func (a *Agent) connect(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		reg, err := a.register(ctx)
		if err == nil {
			var opened bool
			opened, err = a.session(ctx, reg)
			if opened {
				failures = 0
				continue // the stream dropped: register again at once
			}
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("master unreachable; retrying", "err", err, "attempt", failures+1)
		if !a.sleep(ctx, backoff(failures), nil) {
			return
		}
		failures++
	}
}

// backoff is the wait after n failures in a row: exponential, capped,
// with jitter (half of it random).
func backoff(n int) time.Duration {
	d := backoffMax
	if n < 16 {
		d = min(backoffBase<<n, backoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d on the agent's clock; it returns false when ctx is done
// first, true at the end or when wake has a value.
func (a *Agent) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := a.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	case <-wake:
		return true
	}
}

// register says who the agent is, what it offers and which tasks it
// knows, and acts on the answer: it keeps the ID and kills the tasks the
// master names.
func (a *Agent) register(ctx context.Context) (*api.Registered, error) {
	res, err := a.cfg.Resources(ctx)
	if err != nil {
		return nil, fmt.Errorf("the host's resources: %w", err)
	}
	reg := a.reported(res)
	reg.Tasks = a.knownTasks()
	if a.cfg.Decorate != nil {
		if err := a.cfg.Decorate(ctx, &reg); err != nil {
			return nil, fmt.Errorf("agent-register hooks: %w", err)
		}
	}
	var out api.Registered
	if err := a.mc.call(ctx, "/v1/agent/register", reg, &out); err != nil {
		return nil, err
	}
	if out.ID == "" {
		return nil, fmt.Errorf("master: the registration's answer has no agent ID: %w", api.ErrInvalid)
	}
	if out.ID != reg.ID {
		if reg.ID != "" {
			a.log.Warn("the master gave this agent a new ID", "old", reg.ID, "new", out.ID)
		}
		if err := a.store.saveID(out.ID); err != nil {
			return nil, err
		}
		a.mu.Lock()
		a.id = out.ID
		a.mu.Unlock()
	}
	a.mu.Lock()
	a.sentResources = &res
	a.mu.Unlock()
	a.log.Info("registered with the master", "agent", out.ID, "tasks", len(reg.Tasks), "kill", len(out.Kill))
	for _, task := range out.Kill {
		a.kill(ctx, api.TaskKill{Task: task, Reason: "replaced", Deadline: a.clock.Now()}, false)
	}
	select {
	case a.registered <- struct{}{}:
	default:
	}
	a.metrics.registrations.Inc()
	return &out, nil
}

// knownTasks are the tasks the agent runs or keeps undelivered updates
// for, as a registration lists them.
func (a *Agent) knownTasks() []api.AgentTask {
	known := map[string]api.AgentTask{}
	a.mu.Lock()
	for id, t := range a.tasks {
		at := api.AgentTask{ID: id, Container: t.rec.Container, State: t.rec.State}
		if t.rec.Terminal != nil {
			at.State = t.rec.Terminal.State
		}
		known[id] = at
	}
	q := a.queue
	a.mu.Unlock()
	for _, u := range q.all() {
		if _, running := a.taskOf(u.Task); running {
			continue
		}
		at := known[u.Task]
		at.ID, at.State = u.Task, u.State
		if u.Container != "" {
			at.Container = u.Container
		}
		known[u.Task] = at
	}
	out := make([]api.AgentTask, 0, len(known))
	for _, at := range known {
		out = append(out, at)
	}
	slices.SortFunc(out, func(x, y api.AgentTask) int {
		if x.ID < y.ID {
			return -1
		}
		if x.ID > y.ID {
			return 1
		}
		return 0
	})
	return out
}

// session serves the master's stream until it drops or ctx is done, and
// heartbeats meanwhile. opened says whether the stream was opened.
func (a *Agent) session(ctx context.Context, reg *api.Registered) (opened bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := a.mc.stream(sctx, reg.ID)
	if err != nil {
		return false, err
	}
	defer body.Close()
	var hb sync.WaitGroup
	hb.Add(1)
	go func() {
		defer hb.Done()
		a.heartbeat(sctx, cancel, reg)
	}()
	defer hb.Wait()
	defer cancel()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxMessageBytes)
	for sc.Scan() {
		var msg api.AgentMessage
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			a.log.Warn("the master sent a line that is not a message", "err", err)
			continue
		}
		switch {
		case msg.Launch != nil:
			a.launch(ctx, msg.Launch)
		case msg.Kill != nil:
			a.kill(ctx, *msg.Kill, true)
		}
	}
	err = sc.Err()
	if err == nil {
		err = errors.New("master: the stream ended")
	}
	if ctx.Err() == nil {
		a.log.Info("the master's stream dropped; registering again", "err", err)
	}
	return true, err
}

// heartbeat says the agent is alive every period the master asked for,
// with its tasks' usage and, when they changed, its resources. When the
// master no longer knows the agent, it ends the session (stop).
func (a *Agent) heartbeat(ctx context.Context, stop context.CancelFunc, reg *api.Registered) {
	every := reg.Heartbeat.D()
	if every <= 0 {
		every = defaultHeartbeat
	}
	for a.sleep(ctx, every, nil) {
		hb := api.Heartbeat{Agent: reg.ID, Usage: a.usage(ctx)}
		res, err := a.cfg.Resources(ctx)
		if err != nil {
			a.log.Warn("the host's resources", "err", err)
		}
		a.mu.Lock()
		changed := err == nil && (a.sentResources == nil || !reflect.DeepEqual(*a.sentResources, res))
		a.mu.Unlock()
		if changed {
			hb.Resources = a.decorated(ctx, res)
		}
		err = a.mc.call(ctx, "/v1/agent/heartbeat", hb, nil)
		switch {
		case err == nil:
			if hb.Resources != nil {
				a.mu.Lock()
				a.sentResources = &res
				a.mu.Unlock()
			}
		case errorsIsAny(err, api.ErrNotFound, api.ErrUnauthorized, api.ErrForbidden):
			a.log.Warn("the master refused a heartbeat; registering again", "err", err)
			stop()
			return
		case ctx.Err() == nil:
			a.log.Warn("heartbeat", "err", err)
		}
	}
}

// reported is what the agent says of itself with res: its ID (empty
// before the first registration), host name, address (empty before its
// API listens), resources and a copy of its labels, for the master and
// the hooks that may change them (Config.OnStart, Config.Decorate).
func (a *Agent) reported(res api.NodeResources) api.AgentRegistration {
	return api.AgentRegistration{ID: a.ID(), Hostname: a.cfg.Hostname, Address: a.address(), Resources: res, Labels: maps.Clone(a.cfg.Labels)}
}

// decorated is what a heartbeat reports of the detected resources res:
// them, as Config.Decorate changes them; nil when it fails (logged).
func (a *Agent) decorated(ctx context.Context, res api.NodeResources) *api.NodeResources {
	if a.cfg.Decorate == nil {
		return &res
	}
	reg := a.reported(res)
	if err := a.cfg.Decorate(ctx, &reg); err != nil {
		a.log.Warn("agent-register hooks: the changed resources are not reported", "err", err)
		return nil
	}
	return &reg.Resources
}

// usage is what each running task uses.
func (a *Agent) usage(ctx context.Context) map[string]api.Usage {
	a.mu.Lock()
	running := map[string]string{}
	for id, t := range a.tasks {
		if t.rec.State == api.TaskRunning && t.rec.Container != "" && t.rec.Terminal == nil {
			running[id] = t.rec.Container
		}
	}
	a.mu.Unlock()
	out := map[string]api.Usage{}
	for id, c := range running {
		u, err := a.cfg.Containers.Usage(ctx, c)
		if u == nil {
			a.log.Debug("usage", "task", id, "err", err)
			continue
		}
		out[id] = *u
	}
	return out
}

// sendUpdates sends the queued status updates to the master, oldest first
// in batches, until it acknowledges them; it waits for the first
// registration, and sends again at once after each one.
func (a *Agent) sendUpdates(ctx context.Context) {
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.registered:
		case <-a.queue.added:
		}
		for {
			id := a.ID()
			batch := a.queue.pending(updateBatch)
			if id == "" || len(batch) == 0 {
				break
			}
			var acks api.Acks
			err := a.mc.call(ctx, "/v1/agent/updates", api.StatusUpdates{Agent: id, Updates: batch}, &acks)
			if err == nil {
				var n int
				n, err = a.queue.ack(acks.UUIDs)
				if n > 0 {
					failures = 0
					continue
				}
				if err == nil {
					err = errors.New("master: no update acknowledged")
				}
			}
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("status updates not delivered; retrying", "err", err, "queued", len(batch))
			if !a.sleep(ctx, backoff(failures), a.registered) {
				return
			}
			failures++
		}
	}
}

// newUpdate is an update of a task, with a new UUID and the time.
func (a *Agent) newUpdate(task, state string) api.StatusUpdate {
	return api.StatusUpdate{UUID: newUUID(), Task: task, State: state, Time: a.clock.Now().UTC()}
}
