package config

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/caisson/caisson/agenthook"
	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/gpu"
	gpuisolator "github.com/caisson/caisson/gpu/isolator"
	"github.com/caisson/caisson/isolators/cgroups"
	"github.com/caisson/caisson/resources"
)

// The sections, one per component. Each field's comment tag is written
// above its key in the default file (caisson config default); keep them
// true. Every section has a Validate whose errors are *KeyError, keyed
// within the section ("timeout"); Config.Validate prefixes the section,
// and keys any other error by the section's name alone.

// State says where caisson keeps its state.
type State struct {
	Root    string `toml:"root" comment:"Work dir: checkpoints, bundles, logs, image layers; survives reboots.\nA relative path is taken from the current directory."`
	RunRoot string `toml:"run_root" comment:"Runtime dir: the OCI runtime's state, pinned network namespaces; gone at reboot."`
}

// Validate refuses an empty dir.
func (s State) Validate() error {
	return errors.Join(
		required("root", s.Root),
		required("run_root", s.RunRoot),
	)
}

// Log is caisson's own logging.
type Log struct {
	Level string `toml:"level" comment:"debug, info, warn or error."`
}

// Validate refuses a level that is not one of the four.
func (l Log) Validate() error {
	if _, err := ParseLogLevel(l.Level); err != nil {
		return &KeyError{Key: "level", Err: err}
	}
	return nil
}

// Runtime is the OCI runtime (containerizer/runc).
type Runtime struct {
	Binary  string   `toml:"binary" comment:"OCI runtime: runc or crun, a name looked up in PATH or a path."`
	Timeout Duration `toml:"timeout" comment:"Limit on each call of the runtime (at least 1s; kills and deletes, which undo, get at least 30s)."`
}

// Validate refuses an empty binary and a timeout that could only fail.
func (r Runtime) Validate() error {
	return errors.Join(
		required("binary", r.Binary),
		checkTimeout("timeout", r.Timeout.Duration),
	)
}

// Cgroups is the cgroups isolator (isolators/cgroups).
type Cgroups struct {
	Parent string `toml:"parent" comment:"Parent cgroup of every container: a clean absolute path below the root."`
}

// Validate applies the isolator's rule for the parent.
func (c Cgroups) Validate() error {
	if err := cgroups.CheckParent(c.Parent); err != nil {
		return &KeyError{Key: "parent", Err: err}
	}
	return nil
}

// CNI is the network isolator (cni).
type CNI struct {
	ConfigDir      string   `toml:"config_dir" comment:"Directory of CNI network configuration lists (re-read at every launch)."`
	PluginDirs     []string `toml:"plugin_dirs" comment:"Directories searched, in order, for CNI plugins."`
	DefaultNetwork string   `toml:"default_network" comment:"Network of a container that publishes ports and names none; written as a bridge\nnetwork on first use when no configuration defines it."`
	DefaultSubnet  string   `toml:"default_subnet" comment:"Subnet of the default network when caisson writes it."`
	DefaultBridge  string   `toml:"default_bridge" comment:"Bridge of the default network when caisson writes it."`
	Timeout        Duration `toml:"timeout" comment:"Limit on each CNI operation on one network, all plugins of its chain\n(at least 1s; a DEL, which undoes, gets at least 1m)."`
}

// Validate refuses empty names and a timeout that could only fail.
func (c CNI) Validate() error {
	errs := []error{
		required("config_dir", c.ConfigDir),
		requiredList("plugin_dirs", c.PluginDirs),
		required("default_network", c.DefaultNetwork),
		required("default_subnet", c.DefaultSubnet),
		required("default_bridge", c.DefaultBridge),
		checkTimeout("timeout", c.Timeout.Duration),
	}
	return errors.Join(errs...)
}

// Volumes is the volume isolator (volumes/isolator, volumes/client).
type Volumes struct {
	DockerHost string `toml:"docker_host" comment:"dockerd's API, asked for managed volume plugins; empty: legacy plugins only."`
}

// Validate accepts any value: an empty one asks no dockerd.
func (Volumes) Validate() error { return nil }

// Images is the image store (containerizer/image).
type Images struct {
	MaxSize            Size     `toml:"max_size" comment:"Refuse an image larger than this once unpacked (the sum of its layers'\nuncompressed sizes); 0: no limit."`
	InsecureRegistries []string `toml:"insecure_registries" comment:"Registries (host[:port]) reached over plain http; localhost and private\naddresses always are."`
}

// Validate refuses a negative size and an empty registry.
func (i Images) Validate() error {
	var errs []error
	if i.MaxSize < 0 {
		errs = append(errs, &KeyError{Key: "max_size", Err: fmt.Errorf("%d: negative: %w", i.MaxSize, api.ErrInvalid)})
	}
	if slices.Contains(i.InsecureRegistries, "") {
		errs = append(errs, &KeyError{Key: "insecure_registries", Err: fmt.Errorf("an empty registry: %w", api.ErrInvalid)})
	}
	return errors.Join(errs...)
}

// Security is the launch policy (containerizer).
type Security struct {
	SeccompAllow []string `toml:"seccomp_allow" comment:"Seccomp profiles a container may select: default (Docker's), custom (a profile of\nits own, which may allow every call), unconfined (no filter). A launch that\nselects another is refused."`
}

// Validate applies the containerizer's rule; an empty list would refuse
// every launch.
func (s Security) Validate() error {
	if len(s.SeccompAllow) == 0 {
		return &KeyError{Key: "seccomp_allow", Err: fmt.Errorf("empty; allow at least default: %w", api.ErrInvalid)}
	}
	if err := containerizer.CheckSeccompAllow(s.SeccompAllow); err != nil {
		return &KeyError{Key: "seccomp_allow", Err: err}
	}
	return nil
}

// GPU is where GPUs come from (gpu/manager) and how they are given
// (gpu/isolator).
type GPU struct {
	Backend      string `toml:"backend" comment:"Where GPUs come from: nvml (the driver; /proc/driver/nvidia without it), or a\nsimulated machine: mock:dgxa100, mock:dgxh100, mock:dgxb200."`
	NVMLHelper   string `toml:"nvml_helper" comment:"Path of caisson-nvml, the helper that talks to NVML; empty: next to caisson,\nthen PATH."`
	CDISpec      string `toml:"cdi_spec" comment:"A CDI spec from nvidia-ctk cdi generate whose driver mounts and hooks replace\nthe generated ones; empty: none."`
	NUMAAffinity string `toml:"numa_affinity" comment:"Cpuset of a container with GPUs: best-effort (the CPUs and memory nodes nearest\nits GPUs that this host can give, else none; it starts either way) or none."`
}

// Validate refuses an unknown backend or NUMA policy.
func (g GPU) Validate() error {
	var errs []error
	if !slices.Contains(gpu.Backends, g.Backend) {
		errs = append(errs, &KeyError{Key: "backend", Err: fmt.Errorf("%q: want one of %s: %w", g.Backend, strings.Join(gpu.Backends, ", "), api.ErrInvalid)})
	}
	if err := (gpuisolator.Config{NUMAAffinity: g.NUMAAffinity}).Validate(); err != nil {
		errs = append(errs, &KeyError{Key: "numa_affinity", Err: err})
	}
	return errors.Join(errs...)
}

// Host is what the host offers (resources): where its /proc and /sys are,
// and what the admin decided about its resources.
type Host struct {
	ProcFS    string `toml:"procfs" comment:"procfs mount point, such as the host's /proc mounted in caisson's container."`
	SysFS     string `toml:"sysfs" comment:"sysfs mount point, such as the host's /sys mounted in caisson's container."`
	Resources string `toml:"resources" comment:"Resources offered in place of the detected ones, in Mesos's resources syntax:\n\"cpus:8;mem:16g;disk:100g;ports:[31000-32000]\"; empty: the detected ones."`
	Reserve   string `toml:"reserve" comment:"Resources held back for the system, as the kubelet's system-reserved:\n\"cpus:1;mem:2g\"; empty: none."`
}

// Validate refuses empty mount points and amounts that do not parse.
func (h Host) Validate() error {
	errs := []error{required("procfs", h.ProcFS), required("sysfs", h.SysFS)}
	if err := (resources.Config{Overrides: h.Resources}).Validate(); err != nil {
		errs = append(errs, &KeyError{Key: "resources", Err: err})
	}
	if err := (resources.Config{Reserve: h.Reserve}).Validate(); err != nil {
		errs = append(errs, &KeyError{Key: "reserve", Err: err})
	}
	return errors.Join(errs...)
}

// Hooks are the admin's hooks (package agenthook): exec hooks at the
// points of a container's life and the agent's, and OCI hooks added to
// every container's spec.
type Hooks struct {
	Exec []ExecHook `toml:"exec,omitempty" comment:"Exec hooks, as [[hooks.exec]] tables; those of one point run in this order."`
	OCI  []OCIHook  `toml:"oci,omitempty" comment:"OCI hooks added to every container's runtime spec, as [[hooks.oci]] tables."`
	NRI  NRI        `toml:"nri" comment:"NRI plugins (the Node Resource Interface of containerd and CRI-O) see and adjust every container."`
}

// NRI is the [hooks.nri] table (agenthook.NRIConfig).
type NRI struct {
	Enable              bool     `toml:"enable" comment:"Make caisson an NRI runtime."`
	PluginPath          string   `toml:"plugin_path" comment:"The plugins caisson starts itself, executables named IDX-NAME (10-devices), in index order."`
	PluginConfigPath    string   `toml:"plugin_config_path" comment:"Their configuration files, IDX-NAME.conf or NAME.conf."`
	Socket              string   `toml:"socket" comment:"Where plugins that run on their own connect to the agent (caisson agent, caisson up); empty: none."`
	RegistrationTimeout Duration `toml:"registration_timeout" comment:"How long a plugin may take to register."`
	RequestTimeout      Duration `toml:"request_timeout" comment:"How long a plugin may take to answer an event; past it the plugin is disconnected."`
}

// ExecHook is one [[hooks.exec]] table (agenthook.ExecHook).
type ExecHook struct {
	Name      string   `toml:"name,omitempty" comment:"Names the hook in errors and logs; empty is the executable's base name."`
	Point     string   `toml:"point" comment:"agent-start, agent-register, pre-launch, post-launch or post-stop."`
	Path      string   `toml:"path" comment:"The executable, an absolute path."`
	Args      []string `toml:"args,omitempty"`
	Env       []string `toml:"env,omitempty" comment:"KEY=VALUE variables added to the hook's environment."`
	Timeout   Duration `toml:"timeout,omitempty" comment:"Past it the hook and all it started are killed; 10s when unset."`
	OnFailure string   `toml:"on_failure,omitempty" comment:"fail (the default): the launch or the agent fails; ignore: logged."`
	MaxOutput Size     `toml:"max_output,omitempty" comment:"More output than this is a failure; 1m when unset."`
}

// OCIHook is one [[hooks.oci]] table (agenthook.OCIHook).
type OCIHook struct {
	Stage   string   `toml:"stage" comment:"prestart, createRuntime, createContainer, startContainer, poststart or poststop."`
	Path    string   `toml:"path" comment:"The executable: the host's, the container's for startContainer."`
	Args    []string `toml:"args,omitempty" comment:"The arguments after the path."`
	Env     []string `toml:"env,omitempty"`
	Timeout int      `toml:"timeout,omitempty" comment:"In seconds; 0 leaves it to the runtime."`
}

// Agenthook is the section as package agenthook takes it (without its
// cgroup directory and logger, which the CLI adds).
func (h Hooks) Agenthook() agenthook.Config {
	var c agenthook.Config
	for _, e := range h.Exec {
		c.Exec = append(c.Exec, agenthook.ExecHook{
			Name: e.Name, Point: e.Point, Path: e.Path, Args: e.Args, Env: e.Env,
			Timeout: e.Timeout.Duration, OnFailure: e.OnFailure, MaxOutput: int64(e.MaxOutput),
		})
	}
	for _, o := range h.OCI {
		c.OCI = append(c.OCI, agenthook.OCIHook{Stage: o.Stage, Path: o.Path, Args: o.Args, Env: o.Env, Timeout: o.Timeout})
	}
	n := h.NRI
	c.NRI = agenthook.NRIConfig{
		Enable: n.Enable, PluginPath: n.PluginPath, PluginConfigPath: n.PluginConfigPath, SocketPath: n.Socket,
		RegistrationTimeout: n.RegistrationTimeout.Duration, RequestTimeout: n.RequestTimeout.Duration,
	}
	return c
}

// Validate checks every hook, its executable included: agenthook's
// rules. An error's key names the hook's table by its index
// ("exec[1].timeout").
func (h Hooks) Validate() error {
	cfg := h.Agenthook()
	var errs []error
	for _, err := range leafErrors(cfg.Validate()) {
		var fe *api.FieldError
		if errors.As(err, &fe) {
			ke := &KeyError{Key: fe.Field, Err: fe.Err}
			if fe.Value != "" {
				ke.Err = fmt.Errorf("%s: %w", fe.Value, fe.Err)
			}
			err = ke
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// MinTimeout is the shortest limit on an external call that makes sense:
// less cannot even start a process on a busy host.
const MinTimeout = time.Second

func checkTimeout(key string, d time.Duration) error {
	if d < MinTimeout {
		return &KeyError{Key: key, Err: fmt.Errorf("%s: must be at least %s: %w", d, MinTimeout, api.ErrInvalid)}
	}
	return nil
}

func required(key, v string) error {
	if v == "" {
		return &KeyError{Key: key, Err: fmt.Errorf("empty: %w", api.ErrInvalid)}
	}
	return nil
}

func requiredList(key string, v []string) error {
	switch {
	case len(v) == 0:
		return &KeyError{Key: key, Err: fmt.Errorf("empty: %w", api.ErrInvalid)}
	case slices.Contains(v, ""):
		return &KeyError{Key: key, Err: fmt.Errorf("an empty item: %w", api.ErrInvalid)}
	}
	return nil
}

// logLevels are the values of log.level.
var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// ParseLogLevel reads a log level: debug, info, warn or error, in any case.
func ParseLogLevel(s string) (slog.Level, error) {
	if l, ok := logLevels[strings.ToLower(strings.TrimSpace(s))]; ok {
		return l, nil
	}
	return 0, fmt.Errorf("%q: want debug, info, warn or error: %w", s, api.ErrInvalid)
}
