package master

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/store"
)

// Defaults of Config's zero fields.
const (
	DefaultTickInterval      = time.Second
	DefaultHeartbeatTimeout  = 15 * time.Second
	DefaultAgentLostTimeout  = 60 * time.Second
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultKillGrace         = 10 * time.Second
	DefaultSnapshotEvery     = 10000
	DefaultRetention         = 24 * time.Hour
)

// Config configures a Master. Zero durations and counts take the defaults
// above.
type Config struct {
	// Store keeps the master's log and snapshots; the caller opens and
	// closes it.
	Store store.Store
	// Logger is the master's; slog.Default() when nil.
	Logger *slog.Logger
	// Scheduler tunes the core (offer fan-out and timeout, refuse time,
	// reclaim grace). A master restored from a snapshot keeps the
	// snapshot's.
	Scheduler scheduler.Config
	// TickInterval is how often the core's clock moves when something
	// happens; a tick that would decide nothing is skipped.
	TickInterval time.Duration
	// HeartbeatTimeout: an agent that neither heartbeats nor holds its
	// stream this long is disconnected. AgentLostTimeout: disconnected
	// this long, it is lost, and its tasks are lost and placed again.
	HeartbeatTimeout time.Duration
	AgentLostTimeout time.Duration
	// HeartbeatInterval is how often agents are told to heartbeat; it
	// must be below HeartbeatTimeout.
	HeartbeatInterval time.Duration
	// DefaultKillGrace is the time between SIGTERM and SIGKILL of a killed
	// task whose group sets no kill_grace.
	DefaultKillGrace time.Duration
	// SnapshotEvery is how many log records are written between two
	// snapshots, at least: never fewer than the master's tables hold
	// rows (tasks, sessions, agents), so that snapshots cost a bounded
	// amount per record.
	SnapshotEvery int
	// Retention is how long a finished session stays, with its tasks,
	// their states, exit codes and reasons, for session and task ls; then
	// the master forgets it.
	Retention time.Duration
	// AgentTLS is the client configuration the master dials agents' own
	// API with (task logs): the cluster's CA and the master's certificate.
	AgentTLS *tls.Config
	// Clock is the master's time; the real clock when nil.
	Clock Clock
	// Version is what /v1/health reports.
	Version string
}

// Validate says what is wrong with the configuration, with the defaults
// filled in; errors wrap api.ErrInvalid.
func (c Config) Validate() error {
	if c.Store == nil {
		return fmt.Errorf("master: no store: %w", api.ErrInvalid)
	}
	d := c.withDefaults()
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"tick interval", c.TickInterval}, {"heartbeat timeout", c.HeartbeatTimeout},
		{"agent lost timeout", c.AgentLostTimeout}, {"heartbeat interval", c.HeartbeatInterval},
		{"default kill grace", c.DefaultKillGrace}, {"retention", c.Retention},
	} {
		if f.v < 0 {
			return fmt.Errorf("master: %s %s is negative: %w", f.name, f.v, api.ErrInvalid)
		}
	}
	if c.SnapshotEvery < 0 {
		return fmt.Errorf("master: snapshot every %d records is negative: %w", c.SnapshotEvery, api.ErrInvalid)
	}
	if d.HeartbeatInterval >= d.HeartbeatTimeout {
		return fmt.Errorf("master: heartbeat interval %s must be below the heartbeat timeout %s: %w", d.HeartbeatInterval, d.HeartbeatTimeout, api.ErrInvalid)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TickInterval == 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.AgentLostTimeout == 0 {
		c.AgentLostTimeout = DefaultAgentLostTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.DefaultKillGrace == 0 {
		c.DefaultKillGrace = DefaultKillGrace
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return c
}

// Clock is the master's source of time: the real clock, or a test's.
type Clock interface {
	Now() time.Time
	// NewTimer fires once, d from now.
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's one-shot timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it stopped
	// it (false when it had fired or was stopped).
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
