// Command caisson runs containers through an OCI runtime with composable
// isolators. See README.md and `caisson --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/cni"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/containerizer/image"
	"github.com/caisson/caisson/containerizer/runc"
	"github.com/caisson/caisson/gpu"
	gpuisolator "github.com/caisson/caisson/gpu/isolator"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/isolators/cgroups"
	"github.com/caisson/caisson/resources"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, as Docker uses them.
const (
	exitCaissonError = 125
	exitCannotInvoke = 126
	exitNotFound     = 127
)

// exitError carries a container's own exit code out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode maps an error to the process exit code, in one place.
func exitCode(err error) int {
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, api.ErrCommandNotFound):
		return exitNotFound
	case errors.Is(err, api.ErrCommandNotExecutable):
		return exitCannotInvoke
	default:
		return exitCaissonError
	}
}

// globals are the options every subcommand shares. Flags override the
// environment, which overrides the defaults.
type globals struct {
	root, runRoot, runtime, cgroupParent, logLevel string
	runtimeTimeout                                 time.Duration
	insecureRegistries                             []string
	seccompAllow                                   []string
	maxImageSize                                   int64 // set by run's --max-image-size

	cniConfDir, cniPath          string
	defaultNetwork               string
	defaultSubnet, defaultBridge string
	cniTimeout                   time.Duration
	dockerHost                   string
	hostFlags                    // --path.procfs, --path.sysfs, --resources, --reserve (node.go)
	gpuFlags                     // --gpu-backend, --nvml-helper, --gpu-cdi-spec, --gpu-numa-affinity (gpu.go)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "caisson",
		Short: "Run isolated containers through an OCI runtime",
		Long: `caisson runs OCI containers through runc (or crun) and composes isolators
(cgroups v1 and v2, CNI networks, Docker volumes and NVIDIA GPUs).
It needs no daemon: each container has a small monitor process that holds its
exit status, so detached containers outlive the command that started them.

Real containers need Linux and root.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	// The global settings are checked before any command runs, whether it
	// uses them or not: a mistake is an error, never a silent default.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := g.validate(); err != nil {
			return err
		}
		// Every command's own flags: an empty value never reads as a flag
		// not given. Only run's --entrypoint gives it a meaning.
		return refuseEmpty(cmd.LocalFlags(), "entrypoint")
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.root, "root", envOr("CAISSON_ROOT", "/var/lib/caisson"), "work dir for checkpoints, images and root filesystems (env CAISSON_ROOT)")
	pf.StringVar(&g.runRoot, "run-root", envOr("CAISSON_RUN_ROOT", "/run/caisson"), "runtime dir, gone at reboot (env CAISSON_RUN_ROOT)")
	pf.StringVar(&g.runtime, "runtime", envOr("CAISSON_RUNTIME", "runc"), "OCI runtime binary: runc or crun, a name or a path (env CAISSON_RUNTIME)")
	pf.StringVar(&g.cgroupParent, "cgroup-parent", envOr("CAISSON_CGROUP_PARENT", "/caisson"), "parent cgroup of every container (env CAISSON_CGROUP_PARENT)")
	pf.StringVar(&g.logLevel, "log-level", envOr("CAISSON_LOG_LEVEL", "warn"), "debug, info, warn or error (env CAISSON_LOG_LEVEL)")
	pf.DurationVar(&g.runtimeTimeout, "runtime-timeout", 2*time.Minute, "limit on each call of the OCI runtime (at least 1s)")
	var insecure []string
	if v := os.Getenv("CAISSON_INSECURE_REGISTRIES"); v != "" {
		insecure = strings.Split(v, ",")
	}
	pf.StringSliceVar(&g.insecureRegistries, "insecure-registry", insecure,
		"registry (host[:port]) to reach over plain http; localhost and private addresses always are (env CAISSON_INSECURE_REGISTRIES)")

	seccompAllow := slices.Clone(api.SeccompProfiles)
	if v := os.Getenv("CAISSON_SECCOMP_ALLOW"); v != "" {
		seccompAllow = strings.Split(v, ",")
	}
	pf.StringSliceVar(&g.seccompAllow, "seccomp-allow", seccompAllow,
		"seccomp profiles a container may select: default, custom (a profile of its own, which may allow every call), unconfined (no filter); a launch that selects another is refused (env CAISSON_SECCOMP_ALLOW)")

	pf.StringVar(&g.cniConfDir, "cni-config-dir", envOr("CAISSON_CNI_CONFIG_DIR", cni.DefaultConfDir), "CNI network configuration lists (env CAISSON_CNI_CONFIG_DIR)")
	pf.StringVar(&g.cniPath, "cni-plugin-path", envOr("CAISSON_CNI_PATH", strings.Join(cni.DefaultPluginDirs, ":")), "colon-separated dirs searched for CNI plugins (env CAISSON_CNI_PATH)")
	pf.StringVar(&g.defaultNetwork, "default-network", envOr("CAISSON_DEFAULT_NETWORK", cni.DefaultNetworkName),
		"network that -p without --network uses; written as a bridge network on first use when no config defines it (env CAISSON_DEFAULT_NETWORK)")
	pf.StringVar(&g.defaultSubnet, "default-network-subnet", envOr("CAISSON_DEFAULT_NETWORK_SUBNET", cni.DefaultSubnet), "subnet of the default network when caisson writes it (env CAISSON_DEFAULT_NETWORK_SUBNET)")
	pf.StringVar(&g.defaultBridge, "default-network-bridge", envOr("CAISSON_DEFAULT_NETWORK_BRIDGE", cni.DefaultBridge), "bridge of the default network when caisson writes it (env CAISSON_DEFAULT_NETWORK_BRIDGE)")
	pf.DurationVar(&g.cniTimeout, "cni-timeout", cni.DefaultTimeout, "limit on each CNI operation on one network (all plugins of its chain; at least 1s)")
	pf.StringVar(&g.dockerHost, "docker-host", envOr("CAISSON_DOCKER_HOST", envOr("DOCKER_HOST", "unix:///var/run/docker.sock")),
		"dockerd's API, asked for managed volume plugins (env CAISSON_DOCKER_HOST, then DOCKER_HOST); empty: legacy plugins only")
	g.hostFlags.register(pf)
	g.gpuFlags.register(pf)

	root.AddCommand(
		newRunCmd(g), newPsCmd(g), newInspectCmd(g), newStatsCmd(g), newLogsCmd(g),
		newUpdateCmd(g), newKillCmd(g), newRmCmd(g), newWaitCmd(g), newMonitorCmd(g), newRecoverCmd(g),
		newNetworkCmd(g), newVolumePluginCmd(g), newNodeCmd(g), newGPUCmd(g), newImageCmd(g), newSimCmd(),
	)
	return root
}

// logLevels are the values of --log-level.
var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// parseLogLevel reads --log-level: debug, info, warn or error, in any case.
func parseLogLevel(s string) (slog.Level, error) {
	if l, ok := logLevels[strings.ToLower(strings.TrimSpace(s))]; ok {
		return l, nil
	}
	return 0, fmt.Errorf("%q: want debug, info, warn or error: %w", s, api.ErrInvalid)
}

// minTimeout is the shortest limit on an external call that makes sense:
// less cannot even start a process on a busy host.
const minTimeout = time.Second

// settingError is a global setting that was refused, named as the user
// gave it: by its flag, and the environment variable that may set it.
type settingError struct {
	flag, env string
	err       error
}

func (e *settingError) Error() string {
	if e.env == "" {
		return fmt.Sprintf("%s: %v", e.flag, e.err)
	}
	return fmt.Sprintf("%s (env %s): %v", e.flag, e.env, e.err)
}

func (e *settingError) Unwrap() error { return e.err }

// validate checks the global settings that commands would otherwise read
// only when they need them, or not at all, and refuses those that could
// only fail. Each is checked on its own, so the error names the setting
// the user gave, whatever the library's words.
func (g *globals) validate() error {
	for _, c := range []struct {
		flag, env string
		check     func() error
	}{
		{"--log-level", "CAISSON_LOG_LEVEL", func() error { _, err := parseLogLevel(g.logLevel); return err }},
		{"--runtime-timeout", "", func() error { return checkTimeout(g.runtimeTimeout) }},
		{"--cni-timeout", "", func() error { return checkTimeout(g.cniTimeout) }},
		{"--resources", "CAISSON_RESOURCES", resources.Config{Overrides: g.overrides}.Validate},
		{"--reserve", "CAISSON_RESERVE", resources.Config{Reserve: g.reserve}.Validate},
		{"--seccomp-allow", "CAISSON_SECCOMP_ALLOW", func() error {
			if len(g.seccompAllow) == 0 {
				return fmt.Errorf("empty; allow at least default: %w", api.ErrInvalid)
			}
			return containerizer.CheckSeccompAllow(g.seccompAllow)
		}},
		{"--gpu-backend", "CAISSON_GPU_BACKEND", func() error {
			if !slices.Contains(gpu.Backends, g.gpuBackend) {
				return fmt.Errorf("%q: want one of %s: %w", g.gpuBackend, strings.Join(gpu.Backends, ", "), api.ErrInvalid)
			}
			return nil
		}},
		{"--gpu-numa-affinity", "CAISSON_GPU_NUMA_AFFINITY", gpuisolator.Config{NUMAAffinity: g.numaAffinity}.Validate},
	} {
		if err := c.check(); err != nil {
			return &settingError{flag: c.flag, env: c.env, err: err}
		}
	}
	return nil
}

// checkTimeout refuses a limit on an external call that could only fail.
func checkTimeout(d time.Duration) error {
	if d < minTimeout {
		return fmt.Errorf("%s: must be at least %s: %w", d, minTimeout, api.ErrInvalid)
	}
	return nil
}

func (g *globals) logger() *slog.Logger {
	lvl, err := parseLogLevel(g.logLevel)
	if err != nil {
		lvl = slog.LevelWarn // validate refused it before any command ran
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// open builds the containerizer: the only place where concrete runtimes,
// provisioners and isolators are wired together.
func (g *globals) open(ctx context.Context, recover bool) (*containerizer.Containerizer, error) {
	log := g.logger()
	root, runRoot, err := g.dirs()
	if err != nil {
		return nil, err
	}
	rt := runc.New(runc.Config{
		Command: g.runtime,
		Root:    filepath.Join(runRoot, "runtime", filepath.Base(g.runtime)),
		Timeout: g.runtimeTimeout,
		Logger:  log.With("runtime", filepath.Base(g.runtime)),
	})
	store, err := g.imageStore(log)
	if err != nil {
		return nil, err
	}
	cg, err := cgroups.New(cgroups.Config{Parent: g.cgroupParent, Logger: log.With("isolator", "cgroups")})
	if err != nil {
		return nil, err
	}
	network, err := g.network(log)
	if err != nil {
		return nil, err
	}
	vols, err := g.volumes(log)
	if err != nil {
		return nil, err
	}
	gm, err := g.gpus()
	if err != nil {
		return nil, err
	}
	gpus, err := gpuisolator.New(gm, gpuisolator.Config{
		NUMAAffinity: g.numaAffinity, ProcFS: g.procFS, SysFS: g.sysFS, CgroupParent: g.cgroupParent,
		Logger: log.With("isolator", gpuisolator.Name),
	})
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// The monitor cleans up, so it gets every setting the isolators use.
	monitor := []string{self, "--root", root, "--run-root", runRoot, "--runtime", g.runtime,
		"--cgroup-parent", g.cgroupParent, "--log-level", g.logLevel,
		"--runtime-timeout", g.runtimeTimeout.String(),
		"--cni-config-dir", g.cniConfDir, "--cni-plugin-path", g.cniPath, "--default-network", g.defaultNetwork,
		"--default-network-subnet", g.defaultSubnet, "--default-network-bridge", g.defaultBridge,
		"--cni-timeout", g.cniTimeout.String(), "--docker-host", g.dockerHost,
		"--path.procfs", g.procFS, "--path.sysfs", g.sysFS,
		// Checked before any command runs: the monitor, which inherits
		// the environment, must not find the environment's instead.
		"--resources", g.overrides, "--reserve", g.reserve, "--seccomp-allow", strings.Join(g.seccompAllow, ",")}
	monitor = append(append(monitor, g.gpuFlags.args()...), "monitor")
	cfg := containerizer.Config{
		Root: root, RunRoot: runRoot, Runtime: rt, Provisioner: store,
		Isolators:      []isolators.Isolator{cg, network, vols, gpus},
		MonitorCommand: monitor,
		SeccompAllow:   g.seccompAllow,
		Logger:         log,
		CrashPoint:     crashPoint(),
	}
	cz, err := containerizer.New(cfg)
	if err != nil {
		return nil, err
	}
	if recover {
		if err := cz.Recover(ctx, false); err != nil {
			log.Warn("recovery left work undone", "err", err)
		}
	}
	return cz, nil
}

// imageStore builds the image store under the work dir.
func (g *globals) imageStore(log *slog.Logger) (*image.Store, error) {
	root, runRoot, err := g.dirs()
	if err != nil {
		return nil, err
	}
	return image.New(image.Config{
		Root:               filepath.Join(root, "images"),
		HideHostPaths:      []string{root, runRoot},
		InsecureRegistries: g.insecureRegistries,
		MaxImageSize:       g.maxImageSize,
		Logger:             log.With("component", "image"),
	})
}

// crashPoint is fault injection for the crash-recovery tests: with
// CAISSON_TEST_CRASH_AT set, the process dies at once, with no chance to
// clean up, right after the named launch step.
func crashPoint() func(string) {
	step := os.Getenv("CAISSON_TEST_CRASH_AT")
	if step == "" {
		return nil
	}
	return func(s string) {
		if s == step {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}

// dirs returns the work and runtime dirs as absolute paths: the monitor and
// the isolators' checkpoints must not depend on the current directory.
func (g *globals) dirs() (root, runRoot string, err error) {
	if root, err = filepath.Abs(g.root); err != nil {
		return "", "", err
	}
	runRoot, err = filepath.Abs(g.runRoot)
	return root, runRoot, err
}

// network builds the network/cni isolator.
func (g *globals) network(log *slog.Logger) (*cni.Isolator, error) {
	root, runRoot, err := g.dirs()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, d := range strings.Split(g.cniPath, ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return cni.New(cni.Config{
		ConfDir: g.cniConfDir, PluginDirs: dirs,
		StateDir: filepath.Join(root, "cni"), RunDir: filepath.Join(runRoot, "cni"),
		DefaultNetwork: g.defaultNetwork, DefaultSubnet: g.defaultSubnet, DefaultBridge: g.defaultBridge,
		Timeout: g.cniTimeout, Logger: log.With("isolator", cni.Name), CrashPoint: crashPoint(),
	})
}

func main() {
	cmd := newRootCmd()
	err := cmd.ExecuteContext(context.Background())
	code := exitCode(err)
	var ee exitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "caisson: %s\n", errorLine(withFlags(err)))
	}
	os.Exit(code)
}

// errorLine is an error as one line: the lines of a joined error (or of
// a library's message) separated by "; ".
func errorLine(err error) string {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}
