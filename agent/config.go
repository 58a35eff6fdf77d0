package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/caisson/caisson/api"
)

// DefaultKillGrace is how long a task has between SIGTERM and SIGKILL when
// neither its kill nor its group says.
const DefaultKillGrace = 10 * time.Second

// Config is what an agent needs. cmd/caisson fills it from the agent's
// section of the config file and its flags.
type Config struct {
	// StateDir holds the agent's ID, its task records, its queue of
	// status updates and the logs of ended tasks (see the package doc). It must survive a restart of
	// the agent; it is made 0700 if missing.
	StateDir string
	// MasterURL is the master's API, "https://host:port".
	MasterURL string
	// TLS is the client configuration towards the master: the cluster's
	// CA and this agent's certificate (pki.Files.ClientConfig).
	TLS *tls.Config
	// Token is the agent's token (role agent), sent with every call.
	Token string
	// ListenAddr is where the agent's own API listens ("host:port";
	// port 0 picks one), with ServerTLS (pki.Files.ServerConfig): the
	// master reads task logs there.
	ListenAddr string
	ServerTLS  *tls.Config
	// Address is where the master reaches that API, "host:port"; empty
	// derives it from the listener: its port, and its host unless that is
	// a wildcard address, in which case Hostname.
	Address string
	// Hostname is the host's name as the master shows it; empty is
	// os.Hostname.
	Hostname string
	// Resources says what the host offers. It is called at each
	// registration and each heartbeat; a heartbeat carries the resources
	// only when they differ from those last sent (a GPU's health).
	Resources func(ctx context.Context) (api.NodeResources, error)
	// Labels are the admin's attributes (zone, rack) for constraints.
	Labels map[string]string
	// OnStart, when set, runs once when Run starts, before anything else,
	// with what the agent would register (the admin's agent-start hooks);
	// an error ends Run.
	OnStart func(ctx context.Context, reg *api.AgentRegistration) error
	// Decorate, when set, changes what the agent reports before each
	// registration, and before a heartbeat reports resources that changed
	// (the admin's agent-register hooks): labels and resources. An error
	// fails the registration, which is tried again; a heartbeat then
	// reports no resources.
	Decorate func(ctx context.Context, reg *api.AgentRegistration) error
	// Containers runs the tasks (NewContainers over the containerizer).
	Containers Containers
	// DefaultKillGrace is the time between SIGTERM and SIGKILL when a
	// kill gives none and the task's group neither; zero is
	// DefaultKillGrace.
	DefaultKillGrace time.Duration
	// KeptLogs is how many ended tasks' logs the agent keeps after it
	// removes their containers, under StateDir, for its API to serve;
	// beyond it the oldest go. Zero is DefaultKeptLogs.
	KeptLogs int
	// MaxKeptLog is the most bytes of an ended task's output kept: a
	// longer log keeps its tail, after a first line saying how much was
	// dropped. Zero is DefaultMaxKeptLog.
	MaxKeptLog int
	// Collectors are more metrics the agent serves with its own (its
	// hooks': NRI plugins').
	Collectors []prometheus.Collector
	// MetricsAddr, when set, is where GET /metrics serves the agent's
	// Prometheus metrics ("host:port"; port 0 picks one), in plain HTTP
	// without authentication, as exporters do: bind it to loopback or a
	// monitoring network.
	MetricsAddr string
	// Version is reported by the health endpoint.
	Version string
	// Logger receives the agent's log; nil discards it.
	Logger *slog.Logger
	// Clock tells the time and makes timers; nil is the real clock. Tests
	// give a fake one.
	Clock Clock
}

// Validate says what is missing or wrong, naming the field. Errors wrap
// api.ErrInvalid.
func (c *Config) Validate() error {
	invalid := func(field, msg string) error {
		return &api.FieldError{Field: field, Err: fmt.Errorf("agent: %s: %w", msg, api.ErrInvalid)}
	}
	switch {
	case c.StateDir == "":
		return invalid("state_dir", "a state directory is required")
	case c.MasterURL == "":
		return invalid("master", "the master's URL is required")
	case c.TLS == nil:
		return invalid("tls", "a TLS configuration towards the master is required")
	case c.Token == "":
		return invalid("token", "a token is required")
	case c.ListenAddr == "":
		return invalid("listen", "a listen address for the agent's API is required")
	case c.ServerTLS == nil:
		return invalid("server_tls", "a TLS configuration for the agent's API is required")
	case c.Resources == nil:
		return invalid("resources", "a source of the host's resources is required")
	case c.Containers == nil:
		return invalid("containers", "a containerizer is required")
	case c.DefaultKillGrace < 0:
		return invalid("kill_grace", "the kill grace period cannot be negative")
	case c.KeptLogs < 0:
		return invalid("kept_logs", "the number of kept logs cannot be negative")
	case c.MaxKeptLog < 0:
		return invalid("max_kept_log", "the size of a kept log cannot be negative")
	}
	u, err := url.Parse(c.MasterURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return invalid("master", fmt.Sprintf("master URL %q: want https://HOST:PORT", c.MasterURL))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return invalid("metrics_listen", fmt.Sprintf("metrics address %q: want HOST:PORT", c.MetricsAddr))
		}
	}
	return nil
}

// withDefaults fills in what may be left out.
func (c Config) withDefaults() Config {
	if c.DefaultKillGrace == 0 {
		c.DefaultKillGrace = DefaultKillGrace
	}
	if c.KeptLogs == 0 {
		c.KeptLogs = DefaultKeptLogs
	}
	if c.MaxKeptLog == 0 {
		c.MaxKeptLog = DefaultMaxKeptLog
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return c
}

// Clock is the agent's time: kill deadlines, heartbeats and retries.
type Clock interface {
	Now() time.Time
	// NewTimer fires once, d from now; at once when d <= 0.
	NewTimer(d time.Duration) Timer
}

// Timer is a Clock's timer.
type Timer interface {
	C() <-chan time.Time
	// Stop stops it; it reports whether it had not fired yet.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
