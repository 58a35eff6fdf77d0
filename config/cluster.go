package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/pki"
)

// The cluster's sections: the master (the scheduler's server), the agent
// (the node daemon) and the client (the commands that call the master's
// API). What the agent offers is the host section's: the same resources
// and reserve that caisson node resources shows.

// DefaultPort is the port the master's API listens on by default.
const DefaultPort = 7050

// DefaultAgentPort is the port of an agent's own API (logs, for the
// master) by default.
const DefaultAgentPort = 7051

// Master is the scheduler's server (caisson master, caisson up).
type Master struct {
	Listen            string   `toml:"listen" comment:"Address of the API (HTTPS): host:port; an empty host is every address."`
	StateDir          string   `toml:"state_dir" comment:"Where the master keeps its store (bbolt), its TLS material and the admin token."`
	TLSCA             string   `toml:"tls_ca" comment:"The cluster's CA certificate; empty: pki/ca.pem under state_dir."`
	TLSCert           string   `toml:"tls_cert" comment:"The master's certificate; empty: pki/master.pem under state_dir."`
	TLSKey            string   `toml:"tls_key" comment:"The master's key; empty: pki/master-key.pem under state_dir."`
	TickInterval      Duration `toml:"tick_interval" comment:"How often the scheduler's clock ticks: offers time out, notices fall due."`
	HeartbeatInterval Duration `toml:"heartbeat_interval" comment:"How often an agent must say it is alive."`
	HeartbeatTimeout  Duration `toml:"heartbeat_timeout" comment:"An agent silent this long is disconnected: offered no more (at least\nheartbeat_interval)."`
	AgentLostTimeout  Duration `toml:"agent_lost_timeout" comment:"An agent silent this long is lost: its tasks are reported lost and placed again\n(at least heartbeat_timeout)."`
	KillGrace         Duration `toml:"kill_grace" comment:"Time between SIGTERM and SIGKILL when a task is killed and its group sets none."`
	SnapshotEvery     int      `toml:"snapshot_every" comment:"Events stored between two snapshots of the scheduler's state (at least 1)."`
	OfferFanout       int      `toml:"offer_fanout" comment:"How many framework sessions may hold offers for the same free resources at once\n(1: an offer locks its resources until it is answered)."`
	OfferTimeout      Duration `toml:"offer_timeout" comment:"Offers not answered in time are rescinded."`
	Refuse            Duration `toml:"refuse" comment:"How long a declined agent is not offered again to the session, when the decline\nsays no time."`
	ReclaimGrace      Duration `toml:"reclaim_grace" comment:"How long a borrowing task runs after its reclaim notice, for consumers that set\nno grace."`
	Retention         Duration `toml:"retention" comment:"How long a finished session stays, with its tasks, for session ls and task ls;\nthen the master forgets it."`
}

// DefaultMaster is the master section's defaults.
func DefaultMaster() Master {
	return Master{
		Listen:            ":" + strconv.Itoa(DefaultPort),
		StateDir:          "/var/lib/caisson/master",
		TickInterval:      Duration{time.Second},
		HeartbeatInterval: Duration{5 * time.Second},
		HeartbeatTimeout:  Duration{15 * time.Second},
		AgentLostTimeout:  Duration{time.Minute},
		KillGrace:         Duration{10 * time.Second},
		SnapshotEvery:     10000,
		OfferFanout:       1,
		OfferTimeout:      Duration{10 * time.Second},
		Refuse:            Duration{5 * time.Second},
		ReclaimGrace:      Duration{30 * time.Second},
		Retention:         Duration{24 * time.Hour},
	}
}

// Validate refuses an address that is not host:port, an empty state dir,
// durations that cannot work together and counts below one.
func (m Master) Validate() error {
	errs := []error{
		checkListen("listen", m.Listen),
		required("state_dir", m.StateDir),
		checkPositive("tick_interval", m.TickInterval.Duration),
		checkPositive("heartbeat_interval", m.HeartbeatInterval.Duration),
		checkAtLeast("heartbeat_timeout", m.HeartbeatTimeout.Duration, "heartbeat_interval", m.HeartbeatInterval.Duration),
		checkAtLeast("agent_lost_timeout", m.AgentLostTimeout.Duration, "heartbeat_timeout", m.HeartbeatTimeout.Duration),
		checkNotNegative("kill_grace", m.KillGrace.Duration),
		checkCount("snapshot_every", m.SnapshotEvery),
		checkCount("offer_fanout", m.OfferFanout),
		checkPositive("offer_timeout", m.OfferTimeout.Duration),
		checkNotNegative("refuse", m.Refuse.Duration),
		checkNotNegative("reclaim_grace", m.ReclaimGrace.Duration),
		checkPositive("retention", m.Retention.Duration),
	}
	return errors.Join(errs...)
}

// TLSFiles are the master's TLS files, the empty ones replaced by their
// places under the state dir.
func (m Master) TLSFiles() pki.Files {
	return tlsFiles(m.StateDir, m.TLSCA, m.TLSCert, m.TLSKey, pki.MasterFile, pki.MasterKeyFile)
}

// Agent is the node daemon (caisson agent, caisson up). What it offers
// is the host section's resources, less its reserve.
type Agent struct {
	Master        string   `toml:"master" comment:"The master's API: https://host:port."`
	Listen        string   `toml:"listen" comment:"Address of the agent's own API (HTTPS, for the master: logs): host:port."`
	Advertise     string   `toml:"advertise" comment:"Address the master reaches the agent's API at: host:port; empty: the listen\naddress, with this host's name when it names no host."`
	StateDir      string   `toml:"state_dir" comment:"Where the agent keeps its ID, its queue of status updates and its TLS material."`
	TLSCA         string   `toml:"tls_ca" comment:"The cluster's CA certificate; empty: pki/ca.pem under state_dir."`
	TLSCert       string   `toml:"tls_cert" comment:"The agent's certificate; empty: pki/agent.pem under state_dir."`
	TLSKey        string   `toml:"tls_key" comment:"The agent's key; empty: pki/agent-key.pem under state_dir."`
	TokenFile     string   `toml:"token_file" comment:"File holding the agent's token (role agent); empty: token under state_dir."`
	Labels        []string `toml:"labels" comment:"Attributes the agent's tasks may be constrained by, KEY=VALUE (zone=a, rack=12);\nthey win over the detected ones (arch, os, hostname, gpu_model)."`
	KillGrace     Duration `toml:"kill_grace" comment:"Time between SIGTERM and SIGKILL when a kill says none."`
	KeptLogs      int      `toml:"kept_logs" comment:"How many ended tasks' logs the agent keeps for caisson logs; the oldest go first."`
	MaxKeptLog    Size     `toml:"max_kept_log" comment:"The most of one ended task's output kept: its tail, from a line's start."`
	MetricsListen string   `toml:"metrics_listen" comment:"Address of the agent's Prometheus metrics (GET /metrics, plain HTTP, no authentication:\nloopback or a monitoring network): host:port; empty: none."`
}

// DefaultAgent is the agent section's defaults.
func DefaultAgent() Agent {
	return Agent{
		Master:     "https://127.0.0.1:" + strconv.Itoa(DefaultPort),
		Listen:     ":" + strconv.Itoa(DefaultAgentPort),
		StateDir:   "/var/lib/caisson/agent",
		Labels:     []string{},
		KillGrace:  Duration{10 * time.Second},
		KeptLogs:   1000,
		MaxKeptLog: 1 << 20,
	}
}

// Validate refuses a master that is not an https URL, addresses that are
// not host:port, an empty state dir and labels that are not KEY=VALUE.
func (a Agent) Validate() error {
	errs := []error{
		checkMasterURL("master", a.Master),
		checkListen("listen", a.Listen),
		required("state_dir", a.StateDir),
		checkNotNegative("kill_grace", a.KillGrace.Duration),
		checkCount("kept_logs", a.KeptLogs),
	}
	if a.MetricsListen != "" {
		errs = append(errs, checkListen("metrics_listen", a.MetricsListen))
	}
	if a.MaxKeptLog < 1 {
		errs = append(errs, &KeyError{Key: "max_kept_log", Err: fmt.Errorf("%d: want at least one byte: %w", a.MaxKeptLog, api.ErrInvalid)})
	}
	if a.Advertise != "" {
		host, port, err := net.SplitHostPort(a.Advertise)
		if err == nil && host == "" {
			err = errors.New("no host")
		}
		if err == nil {
			err = checkPort(port, 1)
		}
		if err != nil {
			errs = append(errs, &KeyError{Key: "advertise", Err: fmt.Errorf("%q: want host:port: %v: %w", a.Advertise, err, api.ErrInvalid)})
		}
	}
	if _, err := parseLabels(a.Labels); err != nil {
		errs = append(errs, &KeyError{Key: "labels", Err: err})
	}
	return errors.Join(errs...)
}

// TLSFiles are the agent's TLS files, the empty ones replaced by their
// places under the state dir.
func (a Agent) TLSFiles() pki.Files {
	return tlsFiles(a.StateDir, a.TLSCA, a.TLSCert, a.TLSKey, pki.AgentFile, pki.AgentKeyFile)
}

// TokenPath is the agent's token file: token_file, else token under the
// state dir.
func (a Agent) TokenPath() string {
	if a.TokenFile != "" {
		return a.TokenFile
	}
	return filepath.Join(a.StateDir, "token")
}

// LabelMap is the labels as a map. Validate has refused labels it cannot
// read; LabelMap skips them.
func (a Agent) LabelMap() map[string]string {
	m, _ := parseLabels(a.Labels)
	return m
}

// Client is how the commands that call the master's API (caisson submit,
// session, task, logs, consumer, token, agents) reach it. The token
// itself is never in the file: --token and CAISSON_TOKEN give it, or
// token_file names a file holding it.
type Client struct {
	Master    string `toml:"master" comment:"The master's API: https://host:port."`
	TokenFile string `toml:"token_file" comment:"File holding the token the commands send; empty: the token is given in the\nenvironment (CAISSON_TOKEN) or on the command line."`
	TLSCA     string `toml:"tls_ca" comment:"The cluster's CA certificate, which the master's must be signed by; empty: the\nsystem's roots."`
}

// DefaultClient is the client section's defaults: the master of caisson
// up on this machine.
func DefaultClient() Client {
	return Client{Master: "https://127.0.0.1:" + strconv.Itoa(DefaultPort)}
}

// Validate refuses a master that is not an https URL.
func (c Client) Validate() error {
	return checkMasterURL("master", c.Master)
}

func tlsFiles(stateDir, ca, cert, key, certName, keyName string) pki.Files {
	or := func(v, name string) string {
		if v != "" {
			return v
		}
		return filepath.Join(stateDir, "pki", name)
	}
	return pki.Files{CA: or(ca, pki.CAFile), Cert: or(cert, certName), Key: or(key, keyName)}
}

// checkMasterURL refuses a master's address that is not https://host[:port]:
// the API is served over TLS only, and credentials go in a token, never in
// the URL.
func checkMasterURL(key, v string) error {
	bad := func(why string) error {
		return &KeyError{Key: key, Err: fmt.Errorf("%q: %s: want https://host:port: %w", v, why, api.ErrInvalid)}
	}
	u, err := url.Parse(v)
	switch {
	case v == "":
		return bad("empty")
	case err != nil:
		return bad("not a URL")
	case u.Scheme != "https":
		return bad("the API is served over https only")
	case u.Host == "" || u.Hostname() == "":
		return bad("no host")
	case u.User != nil:
		return bad("credentials go in a token, not in the URL")
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
		return bad("a path, query or fragment")
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p, 1); err != nil {
			return bad(err.Error())
		}
	}
	return nil
}

// checkListen refuses an address a server cannot listen on: host:port,
// the host possibly empty (every address), port 0 for any free one.
func checkListen(key, v string) error {
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		err = checkPort(port, 0)
	}
	if err != nil {
		return &KeyError{Key: key, Err: fmt.Errorf("%q: want host:port or :port: %v: %w", v, err, api.ErrInvalid)}
	}
	return nil
}

func checkPort(p string, lo int) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < lo || n > 65535 {
		return fmt.Errorf("port %q is not %d-65535", p, lo)
	}
	return nil
}

func checkPositive(key string, d time.Duration) error {
	if d <= 0 {
		return &KeyError{Key: key, Err: fmt.Errorf("%s: must be more than 0: %w", d, api.ErrInvalid)}
	}
	return nil
}

func checkNotNegative(key string, d time.Duration) error {
	if d < 0 {
		return &KeyError{Key: key, Err: fmt.Errorf("%s: negative: %w", d, api.ErrInvalid)}
	}
	return nil
}

// checkAtLeast refuses d below min, the value of minKey, or not more
// than 0.
func checkAtLeast(key string, d time.Duration, minKey string, min time.Duration) error {
	if err := checkPositive(key, d); err != nil {
		return err
	}
	if d < min {
		return &KeyError{Key: key, Err: fmt.Errorf("%s: must be at least %s (%s): %w", d, minKey, min, api.ErrInvalid)}
	}
	return nil
}

func checkCount(key string, n int) error {
	if n < 1 {
		return &KeyError{Key: key, Err: fmt.Errorf("%d: must be at least 1: %w", n, api.ErrInvalid)}
	}
	return nil
}

// parseLabels reads KEY=VALUE labels; a key is not empty and set once.
func parseLabels(labels []string) (map[string]string, error) {
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		_, dup := m[k]
		switch {
		case !ok || strings.TrimSpace(k) == "" || k != strings.TrimSpace(k):
			return m, fmt.Errorf("%q: want KEY=VALUE, the key without spaces around it: %w", l, api.ErrInvalid)
		case dup:
			return m, fmt.Errorf("%q: key %s is set twice: %w", l, k, api.ErrInvalid)
		}
		m[k] = v
	}
	return m, nil
}
