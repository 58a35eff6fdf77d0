package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/config"
)

// A setting is a key of the config file with the flag and the environment
// variables that override it. Flags override the environment, which
// overrides the file, which overrides the defaults (config.Default); only
// flags the user gave count. An environment variable set to the empty
// string counts as unset: a value of its own, even an empty one, is given
// in the file or with the flag.
type setting struct {
	key  string   // in the file: "cni.timeout"
	flag string   // without its dashes
	env  []string // the first one set wins
	// usage is the flag's help; the key and the variables are added.
	usage string
	// field points at the value in c: a *string, *[]string (a list of
	// comma-separated values, the flag repeatable), *int,
	// *config.Duration or *config.Size.
	field func(c *config.Config) any
	// pathList makes a *[]string one colon-separated value, as PATH.
	pathList bool
}

// configEnv names the config file when --config does not.
const configEnv = "CAISSON_CONFIG"

// defaultConfigPath is read when no file is named; tests point it
// elsewhere.
var defaultConfigPath = config.DefaultPath

// settingAnnotation marks a flag as a setting's, with its key.
const settingAnnotation = "caisson.config/key"

// fileOnlyKeys are the keys of the config file that no flag or variable
// sets: lists of tables ([[hooks.exec]]), which a flag's value could not
// say as plainly as the file does.
var fileOnlyKeys = []string{"hooks.exec", "hooks.oci", "hooks.nri.enable", "hooks.nri.plugin_path", "hooks.nri.plugin_config_path",
	"hooks.nri.socket", "hooks.nri.registration_timeout", "hooks.nri.request_timeout"}

// settings are every key of the config file but fileOnlyKeys, in its
// order.
var settings = []setting{
	{key: "state.root", flag: "root", env: []string{"CAISSON_ROOT"},
		usage: "work dir for checkpoints, images and root filesystems",
		field: func(c *config.Config) any { return &c.State.Root }},
	{key: "state.run_root", flag: "run-root", env: []string{"CAISSON_RUN_ROOT"},
		usage: "runtime dir, gone at reboot",
		field: func(c *config.Config) any { return &c.State.RunRoot }},
	{key: "log.level", flag: "log-level", env: []string{"CAISSON_LOG_LEVEL"},
		usage: "debug, info, warn or error",
		field: func(c *config.Config) any { return &c.Log.Level }},
	{key: "runtime.binary", flag: "runtime", env: []string{"CAISSON_RUNTIME"},
		usage: "OCI runtime binary: runc or crun, a name or a path",
		field: func(c *config.Config) any { return &c.Runtime.Binary }},
	{key: "runtime.timeout", flag: "runtime-timeout", env: []string{"CAISSON_RUNTIME_TIMEOUT"},
		usage: "limit on each call of the OCI runtime (at least 1s)",
		field: func(c *config.Config) any { return &c.Runtime.Timeout }},
	{key: "cgroups.parent", flag: "cgroup-parent", env: []string{"CAISSON_CGROUP_PARENT"},
		usage: "parent cgroup of every container",
		field: func(c *config.Config) any { return &c.Cgroups.Parent }},
	{key: "cni.config_dir", flag: "cni-config-dir", env: []string{"CAISSON_CNI_CONFIG_DIR"},
		usage: "CNI network configuration lists",
		field: func(c *config.Config) any { return &c.CNI.ConfigDir }},
	{key: "cni.plugin_dirs", flag: "cni-plugin-path", env: []string{"CAISSON_CNI_PATH"}, pathList: true,
		usage: "colon-separated dirs searched for CNI plugins",
		field: func(c *config.Config) any { return &c.CNI.PluginDirs }},
	{key: "cni.default_network", flag: "default-network", env: []string{"CAISSON_DEFAULT_NETWORK"},
		usage: "network that -p without --network uses; written as a bridge network on first use when no config defines it",
		field: func(c *config.Config) any { return &c.CNI.DefaultNetwork }},
	{key: "cni.default_subnet", flag: "default-network-subnet", env: []string{"CAISSON_DEFAULT_NETWORK_SUBNET"},
		usage: "subnet of the default network when caisson writes it",
		field: func(c *config.Config) any { return &c.CNI.DefaultSubnet }},
	{key: "cni.default_bridge", flag: "default-network-bridge", env: []string{"CAISSON_DEFAULT_NETWORK_BRIDGE"},
		usage: "bridge of the default network when caisson writes it",
		field: func(c *config.Config) any { return &c.CNI.DefaultBridge }},
	{key: "cni.timeout", flag: "cni-timeout", env: []string{"CAISSON_CNI_TIMEOUT"},
		usage: "limit on each CNI operation on one network (all plugins of its chain; at least 1s)",
		field: func(c *config.Config) any { return &c.CNI.Timeout }},
	{key: "volumes.docker_host", flag: "docker-host", env: []string{"CAISSON_DOCKER_HOST", "DOCKER_HOST"},
		usage: "dockerd's API, asked for managed volume plugins; empty: legacy plugins only",
		field: func(c *config.Config) any { return &c.Volumes.DockerHost }},
	{key: "images.max_size", flag: "max-image-size", env: []string{"CAISSON_MAX_IMAGE_SIZE"},
		usage: "refuse an image larger than this once unpacked: the sum of its layers' uncompressed sizes, a sparse file counting its full size; 0: no limit; only with an IMAGE (the variable and the file's key are ignored without one)",
		field: func(c *config.Config) any { return &c.Images.MaxSize }},
	{key: "images.insecure_registries", flag: "insecure-registry", env: []string{"CAISSON_INSECURE_REGISTRIES"},
		usage: "registry (host[:port]) to reach over plain http; localhost and private addresses always are (repeatable)",
		field: func(c *config.Config) any { return &c.Images.InsecureRegistries }},
	{key: "security.seccomp_allow", flag: "seccomp-allow", env: []string{"CAISSON_SECCOMP_ALLOW"},
		usage: "seccomp profiles a container may select: default, custom (a profile of its own, which may allow every call), unconfined (no filter); a launch that selects another is refused",
		field: func(c *config.Config) any { return &c.Security.SeccompAllow }},
	{key: "gpu.backend", flag: "gpu-backend", env: []string{"CAISSON_GPU_BACKEND"},
		usage: "where GPUs come from: nvml (the driver; /proc/driver/nvidia without it), or a simulated machine: mock:dgxa100, mock:dgxh100, mock:dgxb200",
		field: func(c *config.Config) any { return &c.GPU.Backend }},
	{key: "gpu.nvml_helper", flag: "nvml-helper", env: []string{"CAISSON_NVML_HELPER"},
		usage: "path of caisson-nvml, the helper that talks to NVML (default: next to caisson, then PATH)",
		field: func(c *config.Config) any { return &c.GPU.NVMLHelper }},
	{key: "gpu.cdi_spec", flag: "gpu-cdi-spec", env: []string{"CAISSON_GPU_CDI_SPEC"},
		usage: "a CDI spec from nvidia-ctk cdi generate whose driver mounts and hooks replace the generated ones",
		field: func(c *config.Config) any { return &c.GPU.CDISpec }},
	{key: "gpu.numa_affinity", flag: "gpu-numa-affinity", env: []string{"CAISSON_GPU_NUMA_AFFINITY"},
		usage: "cpuset of a container with GPUs: best-effort (the CPUs and memory nodes nearest its GPUs that this host can give, else none; it starts either way) or none",
		field: func(c *config.Config) any { return &c.GPU.NUMAAffinity }},
	{key: "host.procfs", flag: "path.procfs", env: []string{"CAISSON_PATH_PROCFS"},
		usage: "procfs mount point, such as the host's /proc mounted in caisson's container",
		field: func(c *config.Config) any { return &c.Host.ProcFS }},
	{key: "host.sysfs", flag: "path.sysfs", env: []string{"CAISSON_PATH_SYSFS"},
		usage: "sysfs mount point, such as the host's /sys mounted in caisson's container",
		field: func(c *config.Config) any { return &c.Host.SysFS }},
	{key: "host.resources", flag: "resources", env: []string{"CAISSON_RESOURCES"},
		usage: `resources offered in place of the detected ones, as Mesos's --resources: "cpus:8;mem:16g;disk:100g;ports:[31000-32000]"`,
		field: func(c *config.Config) any { return &c.Host.Resources }},
	{key: "host.reserve", flag: "reserve", env: []string{"CAISSON_RESERVE"},
		usage: `resources held back for the system, as the kubelet's --system-reserved: "cpus:1;mem:2g"`,
		field: func(c *config.Config) any { return &c.Host.Reserve }},
	{key: "master.listen", flag: "listen", env: []string{"CAISSON_MASTER_LISTEN"},
		usage: "address of the master's API (HTTPS), host:port",
		field: func(c *config.Config) any { return &c.Master.Listen }},
	{key: "master.state_dir", flag: "state-dir", env: []string{"CAISSON_MASTER_STATE_DIR"},
		usage: "where the master keeps its store, its TLS material and the admin token",
		field: func(c *config.Config) any { return &c.Master.StateDir }},
	{key: "master.tls_ca", flag: "tls-ca", env: []string{"CAISSON_MASTER_TLS_CA"},
		usage: "the cluster's CA certificate (default: pki/ca.pem under the state dir)",
		field: func(c *config.Config) any { return &c.Master.TLSCA }},
	{key: "master.tls_cert", flag: "tls-cert", env: []string{"CAISSON_MASTER_TLS_CERT"},
		usage: "the master's certificate (default: pki/master.pem under the state dir)",
		field: func(c *config.Config) any { return &c.Master.TLSCert }},
	{key: "master.tls_key", flag: "tls-key", env: []string{"CAISSON_MASTER_TLS_KEY"},
		usage: "the master's key (default: pki/master-key.pem under the state dir)",
		field: func(c *config.Config) any { return &c.Master.TLSKey }},
	{key: "master.tick_interval", flag: "tick-interval", env: []string{"CAISSON_MASTER_TICK_INTERVAL"},
		usage: "how often the scheduler's clock ticks",
		field: func(c *config.Config) any { return &c.Master.TickInterval }},
	{key: "master.heartbeat_interval", flag: "heartbeat-interval", env: []string{"CAISSON_MASTER_HEARTBEAT_INTERVAL"},
		usage: "how often an agent must say it is alive",
		field: func(c *config.Config) any { return &c.Master.HeartbeatInterval }},
	{key: "master.heartbeat_timeout", flag: "heartbeat-timeout", env: []string{"CAISSON_MASTER_HEARTBEAT_TIMEOUT"},
		usage: "an agent silent this long is offered no more",
		field: func(c *config.Config) any { return &c.Master.HeartbeatTimeout }},
	{key: "master.agent_lost_timeout", flag: "agent-lost-timeout", env: []string{"CAISSON_MASTER_AGENT_LOST_TIMEOUT"},
		usage: "an agent silent this long is lost: its tasks are reported lost and placed again",
		field: func(c *config.Config) any { return &c.Master.AgentLostTimeout }},
	{key: "master.kill_grace", flag: "kill-grace", env: []string{"CAISSON_MASTER_KILL_GRACE"},
		usage: "time between SIGTERM and SIGKILL when a task is killed and its group sets none",
		field: func(c *config.Config) any { return &c.Master.KillGrace }},
	{key: "master.snapshot_every", flag: "snapshot-every", env: []string{"CAISSON_MASTER_SNAPSHOT_EVERY"},
		usage: "events stored between two snapshots of the scheduler's state",
		field: func(c *config.Config) any { return &c.Master.SnapshotEvery }},
	{key: "master.offer_fanout", flag: "offer-fanout", env: []string{"CAISSON_MASTER_OFFER_FANOUT"},
		usage: "how many framework sessions may hold offers for the same free resources at once",
		field: func(c *config.Config) any { return &c.Master.OfferFanout }},
	{key: "master.offer_timeout", flag: "offer-timeout", env: []string{"CAISSON_MASTER_OFFER_TIMEOUT"},
		usage: "offers not answered in time are rescinded",
		field: func(c *config.Config) any { return &c.Master.OfferTimeout }},
	{key: "master.refuse", flag: "refuse", env: []string{"CAISSON_MASTER_REFUSE"},
		usage: "how long a declined agent is not offered again to the session, when the decline says no time",
		field: func(c *config.Config) any { return &c.Master.Refuse }},
	{key: "master.reclaim_grace", flag: "reclaim-grace", env: []string{"CAISSON_MASTER_RECLAIM_GRACE"},
		usage: "how long a borrowing task runs after its reclaim notice, for consumers that set no grace",
		field: func(c *config.Config) any { return &c.Master.ReclaimGrace }},
	{key: "master.retention", flag: "retention", env: []string{"CAISSON_MASTER_RETENTION"},
		usage: "how long a finished session stays, with its tasks, for session ls and task ls; then the master forgets it",
		field: func(c *config.Config) any { return &c.Master.Retention }},
	{key: "agent.master", flag: "master", env: []string{"CAISSON_AGENT_MASTER"},
		usage: "the master's API, https://host:port",
		field: func(c *config.Config) any { return &c.Agent.Master }},
	{key: "agent.listen", flag: "listen", env: []string{"CAISSON_AGENT_LISTEN"},
		usage: "address of the agent's own API (HTTPS, for the master), host:port",
		field: func(c *config.Config) any { return &c.Agent.Listen }},
	{key: "agent.advertise", flag: "advertise", env: []string{"CAISSON_AGENT_ADVERTISE"},
		usage: "address the master reaches the agent's API at, host:port (default: the listen address, with this host's name when it names no host)",
		field: func(c *config.Config) any { return &c.Agent.Advertise }},
	{key: "agent.state_dir", flag: "state-dir", env: []string{"CAISSON_AGENT_STATE_DIR"},
		usage: "where the agent keeps its ID, its queue of status updates and its TLS material",
		field: func(c *config.Config) any { return &c.Agent.StateDir }},
	{key: "agent.tls_ca", flag: "tls-ca", env: []string{"CAISSON_AGENT_TLS_CA"},
		usage: "the cluster's CA certificate (default: pki/ca.pem under the state dir)",
		field: func(c *config.Config) any { return &c.Agent.TLSCA }},
	{key: "agent.tls_cert", flag: "tls-cert", env: []string{"CAISSON_AGENT_TLS_CERT"},
		usage: "the agent's certificate (default: pki/agent.pem under the state dir)",
		field: func(c *config.Config) any { return &c.Agent.TLSCert }},
	{key: "agent.tls_key", flag: "tls-key", env: []string{"CAISSON_AGENT_TLS_KEY"},
		usage: "the agent's key (default: pki/agent-key.pem under the state dir)",
		field: func(c *config.Config) any { return &c.Agent.TLSKey }},
	{key: "agent.token_file", flag: "token-file", env: []string{"CAISSON_AGENT_TOKEN_FILE"},
		usage: "file holding the agent's token (default: token under the state dir)",
		field: func(c *config.Config) any { return &c.Agent.TokenFile }},
	{key: "agent.labels", flag: "label", env: []string{"CAISSON_AGENT_LABELS"},
		usage: "attribute KEY=VALUE that tasks may be constrained by (repeatable)",
		field: func(c *config.Config) any { return &c.Agent.Labels }},
	{key: "agent.kill_grace", flag: "kill-grace", env: []string{"CAISSON_AGENT_KILL_GRACE"},
		usage: "time between SIGTERM and SIGKILL when a kill says none",
		field: func(c *config.Config) any { return &c.Agent.KillGrace }},
	{key: "agent.kept_logs", flag: "kept-logs", env: []string{"CAISSON_AGENT_KEPT_LOGS"},
		usage: "how many ended tasks' logs the agent keeps for caisson logs; the oldest go first",
		field: func(c *config.Config) any { return &c.Agent.KeptLogs }},
	{key: "agent.max_kept_log", flag: "max-kept-log", env: []string{"CAISSON_AGENT_MAX_KEPT_LOG"},
		usage: "the most of one ended task's output kept: its tail, from a line's start",
		field: func(c *config.Config) any { return &c.Agent.MaxKeptLog }},
	{key: "agent.metrics_listen", flag: "metrics-listen", env: []string{"CAISSON_AGENT_METRICS_LISTEN"},
		usage: "address of the agent's Prometheus metrics, host:port (plain HTTP, no authentication; default: none)",
		field: func(c *config.Config) any { return &c.Agent.MetricsListen }},
	{key: "client.master", flag: "master", env: []string{"CAISSON_MASTER"},
		usage: "the master's API, https://host:port",
		field: func(c *config.Config) any { return &c.Client.Master }},
	{key: "client.token_file", flag: "token-file", env: []string{"CAISSON_TOKEN_FILE"},
		usage: "file holding the token to send (--token and CAISSON_TOKEN give it directly)",
		field: func(c *config.Config) any { return &c.Client.TokenFile }},
	{key: "client.tls_ca", flag: "tls-ca", env: []string{"CAISSON_TLS_CA"},
		usage: "the cluster's CA certificate, which the master's must be signed by (default: the system's roots)",
		field: func(c *config.Config) any { return &c.Client.TLSCA }},
}

// The settings each kind of command takes as flags, by key prefix. The
// global ones (the dirs, the log level) are on the root.
var (
	globalSettings = []string{"state.", "log."}
	// containerSettings are those of every command that opens the
	// containerizer: what its isolators and their cleanup read.
	containerSettings = []string{"runtime.", "cgroups.", "cni.", "volumes.", "security.", "gpu.", "host.procfs", "host.sysfs"}
	runSettings       = append([]string{"images."}, containerSettings...)
	gpuSettings       = []string{"gpu.", "host.procfs", "host.sysfs"}
	nodeSettings      = []string{"gpu.", "host."}
	// clientSettings are those of every command that calls the master.
	clientSettings = []string{"client."}
)

func settingFor(key string) *setting {
	for i := range settings {
		if settings[i].key == key {
			return &settings[i]
		}
	}
	return nil
}

// bind defines s's flag on fs, holding its value in c.
func (s *setting) bind(fs *pflag.FlagSet, c *config.Config) {
	usage := s.usage + " (config " + s.key
	if len(s.env) > 0 {
		usage += "; env " + strings.Join(s.env, ", then ")
	}
	usage += ")"
	switch p := s.field(c).(type) {
	case *string:
		fs.StringVar(p, s.flag, *p, usage)
	case *[]string:
		if s.pathList {
			fs.Var((*pathList)(p), s.flag, usage)
		} else {
			fs.StringSliceVar(p, s.flag, *p, usage)
		}
	case *config.Duration:
		fs.DurationVar(&p.Duration, s.flag, p.Duration, usage)
	case *config.Size:
		fs.Var(p, s.flag, usage)
	case *int:
		fs.IntVar(p, s.flag, *p, usage)
	default:
		panic(fmt.Sprintf("setting %s: no flag for %T", s.key, p))
	}
	_ = fs.SetAnnotation(s.flag, settingAnnotation, []string{s.key})
}

// set parses v into s's value in c, as its flag would.
func (s *setting) set(c *config.Config, v string) error {
	fs := pflag.NewFlagSet(s.key, pflag.ContinueOnError)
	s.bind(fs, c)
	err := fs.Lookup(s.flag).Value.Set(v)
	if err != nil && !errors.Is(err, api.ErrInvalid) {
		err = fmt.Errorf("%w: %w", err, api.ErrInvalid)
	}
	return err
}

// pathList is a colon-separated list of dirs, as PATH; empty items are
// skipped.
type pathList []string

func (p *pathList) String() string { return strings.Join(*p, ":") }
func (p *pathList) Type() string   { return "string" }

func (p *pathList) Set(v string) error {
	*p = nil
	for _, d := range strings.Split(v, ":") {
		if d != "" {
			*p = append(*p, d)
		}
	}
	return nil
}

// settingFlags defines on fs the flags of the settings whose keys begin
// with one of prefixes, holding their values in g.flags.
func (g *globals) settingFlags(fs *pflag.FlagSet, prefixes ...string) {
	for i := range settings {
		s := &settings[i]
		for _, p := range prefixes {
			if strings.HasPrefix(s.key, p) {
				s.bind(fs, &g.flags)
				break
			}
		}
	}
}

// isSetting reports whether fl is a setting's flag.
func isSetting(fl *pflag.Flag) bool { return len(fl.Annotations[settingAnnotation]) > 0 }

// settingError is a setting that was refused, named as the user gave it: by
// the flag or the environment variable that set it, with its key.
type settingError struct {
	key  string
	from string // "--cni-timeout" or "CAISSON_CNI_TIMEOUT"
	err  error
}

func (e *settingError) Error() string { return fmt.Sprintf("%s (%s): %v", e.from, e.key, e.err) }

func (e *settingError) Unwrap() error { return e.err }

// configAnnotation on a command says how it reads the configuration:
// noConfig (config default and check, which read files of their own) or
// monitorConfig (the monitor, which reads only the file its container's
// command wrote for it, never the environment).
const (
	configAnnotation = "caisson.config"
	noConfig         = "none"
	monitorConfig    = "monitor"
)

// configPath is the file to read and whether the user named it (a named
// file must exist; the default one may not).
func (g *globals) configPath(cmd *cobra.Command) (string, bool) {
	if fl := cmd.Flags().Lookup("config"); fl != nil && fl.Changed {
		return g.configFile, true
	}
	if v := os.Getenv(configEnv); v != "" {
		return v, true
	}
	return defaultConfigPath, false
}

// resolve sets g.cfg for cmd: the defaults, then the config file, then the
// environment, then the flags cmd was given; and validates the result.
func (g *globals) resolve(cmd *cobra.Command) error {
	c := config.Default()
	from := map[string]string{} // the flag or variable that set each key
	path, named := g.configPath(cmd)
	monitor := cmd.Annotations[configAnnotation] == monitorConfig
	var lines config.Lines
	var err error
	if monitor {
		lines, err = loadMonitorConfig(path, &c)
	} else {
		lines, err = config.Load(path, &c)
	}
	switch {
	case err == nil:
	case !named && errors.Is(err, fs.ErrNotExist):
		path = "" // no file: the defaults
	case len(config.KeyErrors(err)) > 0:
		return err // each names the file
	default:
		return fmt.Errorf("config file: %w", err)
	}
	var given []*setting // the settings whose flags cmd was given
	cmd.Flags().Visit(func(fl *pflag.Flag) {
		if isSetting(fl) {
			given = append(given, settingFor(fl.Annotations[settingAnnotation][0]))
		}
	})
	if !monitor {
		if err := applyEnv(&c, from, given); err != nil {
			return err
		}
	}
	for _, s := range given {
		reflect.ValueOf(s.field(&c)).Elem().Set(reflect.ValueOf(s.field(&g.flags)).Elem())
		from[s.key] = "--" + s.flag
	}
	if err := c.Validate(); err != nil {
		return sourced(err, from, path, lines)
	}
	// The monitor and the isolators' checkpoints must not depend on the
	// current directory.
	for _, p := range []*string{&c.State.Root, &c.State.RunRoot} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	g.cfg = c
	return nil
}

// applyEnv sets the keys whose variables are set (not empty), and
// returns every value it could not read. The variables of the settings
// whose flags were given are not read: the flag wins, even over a value
// that is not the setting's type.
func applyEnv(c *config.Config, from map[string]string, given []*setting) error {
	var errs []error
	for i := range settings {
		s := &settings[i]
		if slices.Contains(given, s) {
			continue
		}
		for _, name := range s.env {
			v := os.Getenv(name)
			if v == "" {
				continue
			}
			if err := s.set(c, v); err != nil {
				errs = append(errs, &settingError{key: s.key, from: name, err: err})
			}
			from[s.key] = name
			break
		}
	}
	return errors.Join(errs...)
}

// sourced names, in each of the config's errors, where the refused value
// came from: a flag or a variable, else the file and its line.
func sourced(err error, from map[string]string, path string, lines config.Lines) error {
	var errs []error
	for _, ke := range config.KeyErrors(err) {
		switch {
		case from[ke.Key] != "":
			errs = append(errs, &settingError{key: ke.Key, from: from[ke.Key], err: ke.Err})
		case path != "" && lines[ke.Key] > 0:
			ke.File, ke.Line = path, lines[ke.Key]
			errs = append(errs, ke)
		default:
			errs = append(errs, ke)
		}
	}
	return errors.Join(errs...)
}

// setUsageTemplate lists a command's flags in three parts: its own, the
// settings it takes (each also in the config file and the environment),
// and the global flags.
func setUsageTemplate(root *cobra.Command) {
	global := root.PersistentFlags()
	cobra.AddTemplateFunc("ownFlags", func(c *cobra.Command) *pflag.FlagSet {
		return flagsWhere(c.LocalFlags(), func(fl *pflag.Flag) bool { return !isSetting(fl) && global.Lookup(fl.Name) != fl })
	})
	cobra.AddTemplateFunc("settingFlags", func(c *cobra.Command) *pflag.FlagSet {
		return flagsWhere(c.Flags(), func(fl *pflag.Flag) bool { return isSetting(fl) && global.Lookup(fl.Name) != fl })
	})
	cobra.AddTemplateFunc("globalFlags", func(c *cobra.Command) *pflag.FlagSet {
		return flagsWhere(c.Flags(), func(fl *pflag.Flag) bool { return global.Lookup(fl.Name) == fl })
	})
	root.SetUsageTemplate(usageTemplate)
}

// flagsWhere is the flags of fs that keep accepts.
func flagsWhere(fs *pflag.FlagSet, keep func(*pflag.Flag) bool) *pflag.FlagSet {
	out := pflag.NewFlagSet("", pflag.ContinueOnError)
	fs.VisitAll(func(fl *pflag.Flag) {
		if keep(fl) && !fl.Hidden {
			out.AddFlag(fl)
		}
	})
	return out
}

// usageTemplate is cobra's, with the flags in three parts.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{with ownFlags .}}{{if .HasFlags}}

Flags:
{{.FlagUsages | trimTrailingWhitespaces}}{{end}}{{end}}{{with settingFlags .}}{{if .HasFlags}}

Settings (each flag overrides its variable, which overrides the config file):
{{.FlagUsages | trimTrailingWhitespaces}}{{end}}{{end}}{{with globalFlags .}}{{if .HasFlags}}

Global Flags:
{{.FlagUsages | trimTrailingWhitespaces}}{{end}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`
