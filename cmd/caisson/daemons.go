package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/agent"
	"github.com/caisson/caisson/agenthook"
	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/config"
	"github.com/caisson/caisson/internal/atomicfile"
	"github.com/caisson/caisson/internal/pki"
	"github.com/caisson/caisson/master"
	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/store"
)

// The cluster's daemons: caisson agent (the node daemon), caisson master
// (the scheduler's server) and caisson up (both on one machine).

// agentSettings are what caisson agent reads: its own section, what the
// containerizer's isolators read, how images are pulled, and what the
// host offers (as caisson node resources shows it).
var agentSettings = append([]string{"agent.", "host.", "images."}, containerSettings...)

func newAgentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent [--master URL] [--listen ADDR] [--state-dir DIR] [OPTIONS]",
		Short: "Run the node daemon: register with the master and run its tasks as containers",
		Long: `Run the node daemon of a cluster. The agent registers what this host offers
(what caisson node resources shows with the same [host] settings) with the
master, runs the tasks the master launches through the containerizer with
every isolator (cgroups sized by the scheduler, the granted host ports, the
task's CNI networks and Docker volumes, exactly the granted GPUs), and
reports each task's status until the master acknowledges it.

It authenticates with mutual TLS (the cluster's CA, its certificate and key;
by default under pki/ in its state dir) and an agent token (the token file
under its state dir): caisson token create --role agent makes one.

Stopping or killing the agent leaves its containers running; a restarted
agent recovers them and comes back under the same ID. See docs/agent.md.`,
		Example: `  caisson agent --master https://master.example:7050
  caisson agent --config /etc/caisson/config.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			a, err := g.newAgent(ctx, g.cfg.Agent, "")
			if err != nil {
				return err
			}
			g.logger().Info("agent started", "master", g.cfg.Agent.Master, "state_dir", g.cfg.Agent.StateDir)
			go printMetricsURL(cmd.OutOrStdout(), a)
			return a.Run(ctx)
		},
	}
	return cmd
}

// printMetricsURL prints where the agent serves its metrics, once it does,
// when it does.
func printMetricsURL(out io.Writer, a *agent.Agent) {
	<-a.Listening()
	if addr := a.MetricsAddr(); addr != "" {
		fmt.Fprintf(out, "metrics: http://%s/metrics\n", addr)
	}
}

// newAgent builds an agent from its settings, over this host's
// containerizer. token, when not empty, replaces the token file.
func (g *globals) newAgent(ctx context.Context, c config.Agent, token string) (*agent.Agent, error) {
	files := c.TLSFiles()
	if err := files.Check(); err != nil {
		return nil, fmt.Errorf("agent: the TLS files (agent.tls_ca, agent.tls_cert, agent.tls_key): %w", err)
	}
	clientTLS, err := files.ClientConfig()
	if err != nil {
		return nil, err
	}
	serverTLS, err := files.ServerConfig()
	if err != nil {
		return nil, err
	}
	if token == "" {
		if token, err = readToken(c.TokenPath(), "agent.token_file"); err != nil {
			return nil, err
		}
	}
	g.nriListen = true // the agent stays: NRI plugins may connect to it
	cz, err := g.open(ctx, true)
	if err != nil {
		return nil, err
	}
	hooks, err := g.hooks()
	if err != nil {
		return nil, err
	}
	// The plugins in the plugin directory start now, and the socket
	// listens, rather than at the first launch.
	if err := hooks.StartNRI(nriRuntime{cz}, true); err != nil {
		return nil, err
	}
	var onStart, decorate func(context.Context, *api.AgentRegistration) error
	if hooks.Has(agenthook.PointAgentStart) {
		onStart = hooks.AgentStart
	}
	if hooks.Has(agenthook.PointAgentRegister) {
		decorate = hooks.Register
	}
	return agent.New(agent.Config{
		StateDir:   c.StateDir,
		MasterURL:  c.Master,
		TLS:        clientTLS,
		Token:      token,
		ListenAddr: c.Listen,
		ServerTLS:  serverTLS,
		Address:    c.Advertise,
		Resources: func(ctx context.Context) (api.NodeResources, error) {
			r, err := g.nodeResources(ctx)
			if err != nil {
				return api.NodeResources{}, err
			}
			return *r, nil
		},
		Labels:           c.LabelMap(),
		Collectors:       hooks.Collectors(),
		OnStart:          onStart,
		Decorate:         decorate,
		Containers:       agent.NewContainers(cz),
		DefaultKillGrace: c.KillGrace.Duration,
		KeptLogs:         c.KeptLogs,
		MaxKeptLog:       int(c.MaxKeptLog),
		MetricsAddr:      c.MetricsListen,
		Version:          version,
		Logger:           g.logger().With("component", "agent"),
	})
}

// writeSecret writes a token that only its owner may read, atomically.
func writeSecret(path, secret string) error {
	return atomicfile.Write(path, []byte(secret+"\n"), 0o600, true)
}

// masterSettings are what caisson master reads.
var masterSettings = []string{"master."}

func newMasterCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "master [--listen ADDR] [--state-dir DIR] [OPTIONS]",
		Short: "Run the cluster's master: the session scheduler's server and its API",
		Long: `Run the master of a cluster: the session scheduler's server. It keeps its
state in a store (bbolt) under its state dir, writing each event before it
acts on what the scheduler decided, serves the API (HTTPS, TLS 1.3; see
docs/api.md) that the commands, framework programs and agents call, and
sends launches and kills to agents.

On its first start with the TLS files in their default places it makes the
cluster's CA, its own certificate and an agent certificate under pki/ in
its state dir, and an admin token in admin.token there (mode 0600). Later
starts keep them, and restore the cluster's state from the store.`,
		Example: `  caisson master --listen :7050 --state-dir /var/lib/caisson/master
  caisson master --config /etc/caisson/config.toml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			srv, err := g.startMaster(ctx, g.cfg.Master)
			if err != nil {
				return err
			}
			defer srv.close()
			srv.printWelcome(cmd.OutOrStdout())
			return srv.wait(ctx)
		},
	}
}

// masterServer is a running master: its loop, its HTTPS server, its
// store.
type masterServer struct {
	m       *master.Master
	st      *store.Bolt
	http    *http.Server
	url     string
	files   pki.Files
	dir     string
	adminOK bool // an admin token was written to admin.token now
	errs    chan error
	log     *slog.Logger
}

// adminTokenFile is where the master writes the admin token it makes on
// its first start, under its state dir.
const adminTokenFile = "admin.token"

// startMaster opens the store, restores the master, makes the TLS
// material and the admin token on a first start, and starts serving.
func (g *globals) startMaster(ctx context.Context, c config.Master) (_ *masterServer, retErr error) {
	log := g.logger().With("component", "master")
	if err := os.MkdirAll(c.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("master: %w", err)
	}
	files := c.TLSFiles()
	if c.TLSCA == "" && c.TLSCert == "" && c.TLSKey == "" {
		hosts := []string{}
		if h, err := os.Hostname(); err == nil {
			hosts = append(hosts, h)
		}
		if host, _, err := net.SplitHostPort(c.Listen); err == nil && host != "" {
			hosts = append(hosts, host)
		}
		if err := pki.Init(filepath.Dir(files.CA), hosts); err != nil {
			return nil, err
		}
	}
	serverTLS, err := files.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("master: the TLS files (master.tls_ca, master.tls_cert, master.tls_key): %w", err)
	}
	agentTLS, err := files.ClientConfig()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(c.StateDir, "master.db"), store.Options{})
	if err != nil {
		return nil, fmt.Errorf("master: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = st.Close()
		}
	}()
	m, err := master.New(master.Config{
		Store:  st,
		Logger: log,
		Scheduler: scheduler.Config{
			OfferFanout: c.OfferFanout, OfferTimeout: c.OfferTimeout.Duration,
			Refuse: c.Refuse.Duration, Grace: c.ReclaimGrace.Duration,
		},
		TickInterval:      c.TickInterval.Duration,
		HeartbeatInterval: c.HeartbeatInterval.Duration,
		HeartbeatTimeout:  c.HeartbeatTimeout.Duration,
		AgentLostTimeout:  c.AgentLostTimeout.Duration,
		DefaultKillGrace:  c.KillGrace.Duration,
		SnapshotEvery:     c.SnapshotEvery,
		Retention:         c.Retention.Duration,
		AgentTLS:          agentTLS,
		Version:           version,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("master: %w", err)
	}
	s := &masterServer{m: m, st: st, files: files, dir: c.StateDir, errs: make(chan error, 2), log: log}
	s.url = "https://" + dialAddr(ln.Addr().(*net.TCPAddr))
	s.http = &http.Server{Handler: m.Handler(), TLSConfig: serverTLS, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { s.errs <- m.Run(ctx) }()
	go func() {
		if err := s.http.Serve(tls.NewListener(ln, serverTLS)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errs <- err
		}
	}()
	secret, created, err := m.BootstrapAdmin()
	if err != nil {
		s.close()
		return nil, err
	}
	if created {
		if err := writeSecret(filepath.Join(c.StateDir, adminTokenFile), secret); err != nil {
			s.close()
			return nil, err
		}
		s.adminOK = true
	}
	log.Info("master started", "url", s.url, "state_dir", c.StateDir)
	return s, nil
}

// dialAddr is where a client on this machine reaches a listener: its port
// on the loopback address when it listens on every address.
func dialAddr(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(a.Port))
}

func (s *masterServer) printWelcome(out io.Writer) {
	fmt.Fprintf(out, "master: %s\n", s.url)
	if s.adminOK {
		fmt.Fprintf(out, "admin token written to %s\n", filepath.Join(s.dir, adminTokenFile))
	}
	fmt.Fprintf(out, "to use it from this machine:\n")
	fmt.Fprintf(out, "  export CAISSON_MASTER=%s\n", s.url)
	fmt.Fprintf(out, "  export CAISSON_TLS_CA=%s\n", s.files.CA)
	fmt.Fprintf(out, "  export CAISSON_TOKEN_FILE=%s\n", filepath.Join(s.dir, adminTokenFile))
}

// wait returns when ctx ends (nil) or the master or its server fails.
func (s *masterServer) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.errs:
		return err
	}
}

// close stops serving, stops the loop and closes the store.
func (s *masterServer) close() {
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(sctx)
	_ = s.m.Close()
	_ = s.st.Close()
}

// upSettings are what caisson up reads: the master's settings as flags,
// and what the agent it runs needs; the agent's own section comes from
// the config file and the environment only (its flags would be the
// master's: --listen, --state-dir).
var upSettings = append(append([]string{}, masterSettings...), "host.", "images.")

func newUpCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "up [--listen ADDR] [--state-dir DIR] [OPTIONS]",
		Short: "Run a one-machine cluster: a master and an agent in one process",
		Long: `Run a master and an agent together on this machine: the quickest way to a
cluster. The master is what caisson master runs, with its state under
master.state_dir; on the first start it makes the cluster's CA and
certificates under pki/ there, an admin token (admin.token there) and an
agent token (the token file under agent.state_dir) for the agent. It prints
where the API listens and the three variables that point the commands at it.

The agent's settings are the [agent] section of the config file and its
CAISSON_AGENT_* variables; its master, TLS files and token are caisson up's.
Stopping caisson up (SIGINT, SIGTERM) leaves the tasks' containers running:
the next caisson up restores the master from its store and the agent
recovers them.`,
		Example: `  caisson up
  caisson up --listen 127.0.0.1:7050 --state-dir /var/lib/caisson/master`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			srv, err := g.startMaster(ctx, g.cfg.Master)
			if err != nil {
				return err
			}
			defer srv.close()
			ac := g.cfg.Agent
			ac.Master = srv.url
			if ac.TLSCA == "" && ac.TLSCert == "" && ac.TLSKey == "" {
				pkiDir := filepath.Dir(srv.files.CA)
				ac.TLSCA = srv.files.CA
				ac.TLSCert = filepath.Join(pkiDir, pki.AgentFile)
				ac.TLSKey = filepath.Join(pkiDir, pki.AgentKeyFile)
			}
			token, err := srv.agentToken(ac)
			if err != nil {
				return err
			}
			a, err := g.newAgent(ctx, ac, token)
			if err != nil {
				return err
			}
			agentErr := make(chan error, 1)
			go func() { agentErr <- a.Run(ctx) }()
			srv.printWelcome(cmd.OutOrStdout())
			go printMetricsURL(cmd.OutOrStdout(), a)
			var runErr error
			select {
			case runErr = <-agentErr:
			case <-ctx.Done():
				runErr = <-agentErr
			case runErr = <-srv.errs:
				stop()
				<-agentErr
			}
			return runErr
		},
	}
}

// agentToken is the token of caisson up's agent: the one in its token
// file, or a new agent token written there.
func (s *masterServer) agentToken(c config.Agent) (string, error) {
	path := c.TokenPath()
	if _, err := os.Stat(path); err == nil {
		return readToken(path, "agent.token_file")
	}
	tok, err := s.m.CreateToken(api.TokenRequest{Role: api.RoleAgent, Name: "caisson up"})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return tok.Secret, writeSecret(path, tok.Secret)
}

func newCertsCmd(g *globals) *cobra.Command {
	var hosts []string
	var out string
	cmd := &cobra.Command{
		Use:   "certs --host NAME [--host NAME...] --out DIR [--state-dir MASTER_DIR]",
		Short: "Sign an agent's certificate with the cluster's CA, for another host",
		Long: `Sign a certificate and key for an agent on another host with the cluster's
CA, which caisson master and caisson up keep under pki/ in the master's state
dir, and write them with a copy of the CA's certificate to DIR:

  DIR/ca.pem  DIR/agent.pem  DIR/agent-key.pem (mode 0600)

Copy DIR to pki/ under the agent's state dir (or name the files with the
agent section's tls_ca, tls_cert and tls_key). --host names the agent's host
as the master reaches it (its advertise address's host): the master checks
the agent's certificate against it when it reads a task's logs.`,
		Example: `  caisson certs --host node-1.example --host 10.0.0.11 --out node-1-pki`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(hosts) == 0 {
				return fmt.Errorf("--host: name the agent's host at least once: %w", api.ErrInvalid)
			}
			if out == "" {
				return fmt.Errorf("--out: name the directory to write to: %w", api.ErrInvalid)
			}
			caDir := filepath.Dir(g.cfg.Master.TLSFiles().CA)
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			ca, err := os.ReadFile(filepath.Join(caDir, pki.CAFile))
			if err != nil {
				return fmt.Errorf("the cluster's CA (start caisson master or caisson up once to make it): %w", err)
			}
			if err := pki.Issue(caDir, pki.RoleAgent, filepath.Join(out, pki.AgentFile), filepath.Join(out, pki.AgentKeyFile), hosts); err != nil {
				return err
			}
			if err := atomicfile.Write(filepath.Join(out, pki.CAFile), ca, 0o644, true); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s, %s and %s to %s\n", pki.CAFile, pki.AgentFile, pki.AgentKeyFile, out)
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "a name or address of the agent's host (repeatable)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the CA certificate, the agent's certificate and key to")
	return cmd
}
