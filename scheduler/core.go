package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/caisson/caisson/api"
)

// Config tunes the core. The zero value is usable: New fills defaults.
type Config struct {
	// OfferFanout is how many sessions may hold offers for the same free
	// resources at once (K). 1 is Mesos' pessimistic offers: offered
	// resources are locked to one session until it answers.
	OfferFanout int `json:"offer_fanout,omitempty"`
	// OfferTimeout rescinds offers not answered in time; 0 is 10s.
	OfferTimeout time.Duration `json:"offer_timeout,omitempty"`
	// Refuse is how long a declined agent is not offered again to the
	// session when the decline names no time; 0 is 5s, as in Mesos.
	Refuse time.Duration `json:"refuse,omitempty"`
	// Grace is the reclaim grace period of consumers that set none; 0 is
	// 30s.
	Grace time.Duration `json:"grace,omitempty"`
}

func (c Config) withDefaults() Config {
	if c.OfferFanout <= 0 {
		c.OfferFanout = 1
	}
	if c.OfferTimeout <= 0 {
		c.OfferTimeout = 10 * time.Second
	}
	if c.Refuse <= 0 {
		c.Refuse = 5 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 30 * time.Second
	}
	return c
}

// Counters are the core's running totals.
type Counters struct {
	OffersSent      int64 `json:"offers_sent"`
	OffersAccepted  int64 `json:"offers_accepted"`
	OffersDeclined  int64 `json:"offers_declined"`
	OffersRescinded int64 `json:"offers_rescinded"`
	Conflicts       int64 `json:"conflicts"`
	Placements      int64 `json:"placements"`
	TasksFinished   int64 `json:"tasks_finished"`
	TasksLost       int64 `json:"tasks_lost"`
	Reclaims        int64 `json:"reclaims"`
	Preempted       int64 `json:"preempted"`
	Withdrawn       int64 `json:"withdrawn"`
	Killed          int64 `json:"killed"`
}

// Core is the scheduler's state machine: Step feeds it one event and
// returns what it decided. It does no I/O, starts no goroutine and reads
// no clock; the same events give the same decisions. It is not safe for
// concurrent use.
type Core struct {
	cfg Config
	now time.Time

	tree   *tree
	leaves minHeap[*consumer]
	sheaps []minHeap[*session] // per consumer, sessions with pending tasks

	agents   []*agent
	agentIdx map[string]int32
	total    Resources // of the live agents

	sessions   map[string]*session
	sessionSeq uint64
	tasks      map[string]*task
	offers     map[string]*offer
	offerSeq   uint64
	offerQueue []*offer // in the order they expire

	dirty     []int32 // agents whose free resources changed
	filterq   minHeap[*filterExpiry]
	filterSeq uint64
	freeEpoch uint64  // bumps whenever free resources appear
	reclaims  []*task // tasks noticed, killed at their deadline
	planSeq   uint64  // reclaim and preemption plans made
	waitBuf   []prioWant
	treeDirty bool
	// minShape is at most the smallest pending task in every dimension
	// (kept low between ticks, exact after one): an agent with less free
	// than it cannot take any task.
	minShape   Resources
	hasPending bool

	// A task was refused for owned resources that are not lent (see
	// freeing).
	lendHit bool

	// Within one Step: sessions to serve once the dirty agents are
	// filled, the fill in progress, and whether to fill every agent
	// again.
	serveq  []*session
	fillSeq uint64
	// leafWalk, classIters and iterBufs are the fill's walks, kept
	// between fills.
	leafWalk   []int
	classIters []heapIter[*session]
	iterBufs   [][]int
	grownBuf   []int32         // a reclaim round's grown agents, kept
	classes    [][]*shapeClass // per leaf, see reclass
	// freeIdx finds agents by what they have free, roomIdx by what they
	// would have free without their revocable tasks (see reindex).
	freeIdx, roomIdx agentIndex
	// order keeps the agents busiest first for serve; candBuf is its
	// list of candidates, kept between serves.
	order   busyOrder
	candBuf []*agent
	rescan  bool

	counters Counters
	ready    Ready
}

type filterExpiry struct {
	seq     uint64 // push order: ties at the same time pop in it
	at      time.Time
	agent   int32
	session *session
}

// New returns an empty core: no consumers, agents or sessions.
func New(cfg Config) *Core {
	c := &Core{
		cfg:      cfg.withDefaults(),
		agentIdx: map[string]int32{},
		sessions: map[string]*session{},
		tasks:    map[string]*task{},
		offers:   map[string]*offer{},
	}
	c.tree, _ = newTree(nil)
	c.initHeaps()
	c.filterq = minHeap[*filterExpiry]{
		less: func(a, b *filterExpiry) bool {
			if !a.at.Equal(b.at) {
				return a.at.Before(b.at)
			}
			return a.seq < b.seq
		},
		setAt: func(*filterExpiry, int) {},
	}
	return c
}

// Now is the time of the last tick.
func (c *Core) Now() time.Time { return c.now }

// Config returns the core's configuration with its defaults filled in.
func (c *Core) Config() Config { return c.cfg }

// Counters returns the running totals.
func (c *Core) Counters() Counters { return c.counters }

// errorf wraps a sentinel so callers can tell bad input from a missing
// object.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel)
}

// Step handles one event and returns the decisions it led to. An event
// that is malformed or names something unknown is an error and changes
// nothing. The returned Ready is reused by the next Step.
func (c *Core) Step(ev Event) (*Ready, error) {
	c.ready.reset()
	var err error
	switch e := deref(ev).(type) {
	case Tick:
		err = c.tick(e.Now)
	case ConsumersSet:
		err = c.setConsumers(e.Consumers)
	case AgentAdded:
		err = c.addAgent(e.Agent)
	case AgentUpdated:
		err = c.updateAgent(e.Agent, e.Unhealthy)
	case AgentLost:
		err = c.loseAgent(e.ID)
	case SessionSubmitted:
		err = c.submit(e.Session)
	case SessionUpdated:
		err = c.updateSession(e.Session, e.Group, e.Count)
	case SessionFinished:
		err = c.finishSession(e.Session)
	case OfferAccepted:
		err = c.accept(e)
	case OfferDeclined:
		err = c.decline(e)
	case Suppress:
		err = c.suppress(e.Session, true)
	case Revive:
		err = c.suppress(e.Session, false)
	case TaskFinished:
		err = c.taskFinished(e.Task, e.Failed)
	case nil:
		err = errorf(api.ErrInvalid, "nil event")
	default:
		err = errorf(api.ErrInvalid, "unknown event %T", ev)
	}
	if err != nil {
		if !errors.Is(err, api.ErrInvalid) && !errors.Is(err, api.ErrNotFound) && !errors.Is(err, api.ErrConflict) {
			err = fmt.Errorf("%w: %w", err, api.ErrInvalid)
		}
		return &c.ready, err
	}
	c.allocate()
	return &c.ready, nil
}

func (c *Core) tick(now time.Time) error {
	if now.Before(c.now) {
		return errorf(api.ErrInvalid, "tick %s is before the current time %s", now.UTC().Format(time.RFC3339Nano), c.now.UTC().Format(time.RFC3339Nano))
	}
	c.now = now
	c.expireOffers()
	c.expireFilters()
	if c.treeDirty {
		c.tree.computeDeserved(c.total)
		c.treeDirty = false
		c.rekeyLeaves()
	}
	c.allocate()
	c.recomputeShape()
	c.withdraw()
	c.reclaim()
	c.killDue()
	return nil
}

func (c *Core) setConsumers(specs []ConsumerSpec) error {
	t, err := newTree(specs)
	if err != nil {
		return errorf(api.ErrInvalid, "%v", err) // it names the consumer
	}
	for _, s := range c.sessions {
		n := t.byName[s.spec.Consumer]
		if n == nil {
			return errorf(api.ErrConflict, "consumers: session %s runs under consumer %q, which the new tree drops", s.spec.ID, s.spec.Consumer)
		}
		if !n.leaf() {
			return errorf(api.ErrConflict, "consumers: session %s runs under consumer %q, which the new tree makes a parent", s.spec.ID, s.spec.Consumer)
		}
	}
	// Move the accounting over.
	for _, s := range sortedSessions(c.sessions) {
		n := t.byName[s.spec.Consumer]
		s.consumer = n
		n.sessions++
		for _, g := range s.groups {
			for _, tk := range g.running {
				charge(n, tk.res, !tk.revocable, 1)
			}
			addUp(n, func(x *consumer) *Resources { return &x.pending }, g.spec.Resources.Scale(int64(g.pending())))
		}
	}
	// Notices go with their claimant; those of a claimant the new tree
	// drops or makes a parent are withdrawn: nothing waits there now.
	for _, tk := range c.reclaims {
		if tk.deadline.IsZero() {
			continue
		}
		switch n := t.byName[tk.claimant.spec.Name]; {
		case n == nil || !n.leaf():
			c.withdrawNotice(tk, "consumer "+tk.claimant.spec.Name+" is no longer a leaf of the consumer tree")
		default:
			n.addClaim(tk)
		}
	}
	c.dropUnclaimed()
	c.tree = t
	c.initHeaps()
	for _, s := range c.sessions {
		s.heapIdx, s.class, s.classIdx = -1, nil, -1 // in the old tree's heaps
	}
	for _, s := range sortedSessions(c.sessions) {
		c.requeue(s)
	}
	c.tree.computeDeserved(c.total)
	c.rekeyLeaves()
	c.markAllFree()
	return nil
}

// charge adds (sign 1) or removes (sign -1) a task's resources from its
// consumer and every ancestor.
func charge(n *consumer, r Resources, owned bool, sign int64) {
	r = r.Scale(sign)
	for ; n != nil; n = n.parent {
		n.alloc = n.alloc.Add(r)
		if owned {
			n.owned = n.owned.Add(r)
		}
	}
}

// addUp adds r to one accumulator of n and of every ancestor.
func addUp(n *consumer, field func(*consumer) *Resources, r Resources) {
	for ; n != nil; n = n.parent {
		p := field(n)
		*p = p.Add(r)
	}
}
