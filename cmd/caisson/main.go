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
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/agenthook"
	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/cni"
	"github.com/caisson/caisson/config"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/containerizer/image"
	"github.com/caisson/caisson/containerizer/runc"
	gpuisolator "github.com/caisson/caisson/gpu/isolator"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/isolators/cgroups"
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

// globals are what every command shares: the configuration, resolved
// before any command runs (see settings.go).
type globals struct {
	// cfg is the resolved configuration: defaults, file, environment,
	// flags.
	cfg config.Config
	// flags hold what the setting flags parse; resolve copies those the
	// user gave into cfg.
	flags config.Config
	// configFile is --config.
	configFile string
	// hooksOnce makes the admin's hooks once per process (g.hooks); the
	// agent's listen for NRI plugins (nriListen), others' do not.
	hooksOnce sync.Once
	hooksVal  *agenthook.Hooks
	hooksErr  error
	nriListen bool
}

func newRootCmd() *cobra.Command { return newRoot(&globals{}) }

// newRoot is the caisson command, whose commands share g.
func newRoot(g *globals) *cobra.Command {
	g.flags = config.Default()
	root := &cobra.Command{
		Use:   "caisson",
		Short: "Run isolated containers through an OCI runtime",
		Long: `caisson runs OCI containers through runc (or crun) and composes isolators
(cgroups v1 and v2, CNI networks, Docker volumes and NVIDIA GPUs).
It needs no daemon: each container has a small monitor process that holds its
exit status, so detached containers outlive the command that started them.

Settings come from the config file (--config, default ` + config.DefaultPath + `),
each overridden by its environment variable and by its flag: see
caisson config default.

Real containers need Linux and root.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagParseError{err} })
	// The settings are resolved and checked before any command runs,
	// whether it uses them or not: a mistake is an error, never a silent
	// default.
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Annotations[configAnnotation] != noConfig {
			if err := g.resolve(cmd); err != nil {
				return err
			}
		}
		// Every command's own flags: an empty value never reads as a flag
		// not given. Only run's --entrypoint gives it a meaning; the
		// settings' flags are checked with the rest of the configuration.
		return refuseEmpty(cmd.LocalFlags(), "entrypoint")
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.configFile, "config", defaultConfigPath, "config file; a missing one is an error unless it is the default (env "+configEnv+")")
	g.settingFlags(pf, globalSettings...)
	setUsageTemplate(root)

	// Each command takes the settings it uses as flags; a parent's are
	// its subcommands' too.
	local := func(cmd *cobra.Command, prefixes ...string) *cobra.Command {
		g.settingFlags(cmd.Flags(), prefixes...)
		return cmd
	}
	inherited := func(cmd *cobra.Command, prefixes ...string) *cobra.Command {
		g.settingFlags(cmd.PersistentFlags(), prefixes...)
		return cmd
	}
	root.AddCommand(
		local(newRunCmd(g), runSettings...),
		local(newPsCmd(g), containerSettings...),
		local(newInspectCmd(g), containerSettings...),
		local(newStatsCmd(g), containerSettings...),
		local(g.withTaskLogs(newLogsCmd(g)), containerSettings...),
		local(newUpdateCmd(g), containerSettings...),
		local(newKillCmd(g), containerSettings...),
		local(newRmCmd(g), containerSettings...),
		local(newWaitCmd(g), containerSettings...),
		local(newRecoverCmd(g), containerSettings...),
		inherited(newNetworkCmd(g), containerSettings...),
		inherited(newImageCmd(g), containerSettings...),
		inherited(newGPUCmd(g), gpuSettings...),
		inherited(newNodeCmd(g), nodeSettings...),
		newMonitorCmd(g), newVolumePluginCmd(g), newSimCmd(), newConfigCmd(g), newHooksCmd(g),
		// The cluster's commands, which call the master's API.
		newSubmitCmd(g), newSessionCmd(g), newTaskCmd(g), newConsumerCmd(g), newTokenCmd(g), newAgentsCmd(g),
		// The cluster's daemons.
		local(newAgentCmd(g), agentSettings...),
		local(newMasterCmd(g), masterSettings...),
		local(newUpCmd(g), upSettings...),
		local(newCertsCmd(g), "master.state_dir", "master.tls_ca"),
	)
	return root
}

func (g *globals) logger() *slog.Logger {
	lvl, err := config.ParseLogLevel(g.cfg.Log.Level)
	if err != nil {
		lvl = slog.LevelWarn // resolve refused it before any command ran
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// open builds the containerizer: the only place where concrete runtimes,
// provisioners and isolators are wired together.
func (g *globals) open(ctx context.Context, recover bool) (*containerizer.Containerizer, error) {
	log := g.logger()
	c := &g.cfg
	runtime := filepath.Base(c.Runtime.Binary)
	rt := runc.New(runc.Config{
		Command: c.Runtime.Binary,
		Root:    filepath.Join(c.State.RunRoot, "runtime", runtime),
		Timeout: c.Runtime.Timeout.Duration,
		Logger:  log.With("runtime", runtime),
	})
	store, err := g.imageStore(log)
	if err != nil {
		return nil, err
	}
	cg, err := cgroups.New(cgroups.Config{Parent: c.Cgroups.Parent, Logger: log.With("isolator", "cgroups")})
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
		NUMAAffinity: c.GPU.NUMAAffinity, ProcFS: c.Host.ProcFS, SysFS: c.Host.SysFS, CgroupParent: c.Cgroups.Parent,
		Logger: log.With("isolator", gpuisolator.Name),
	})
	if err != nil {
		return nil, err
	}
	hooks, err := g.hooks()
	if err != nil {
		return nil, err
	}
	// The monitor cleans up and runs the post-stop hooks, so it reads
	// every setting the isolators and the hooks use: the whole
	// configuration, from a file written for it when it starts.
	monitor, prepare, err := g.monitorCommand()
	if err != nil {
		return nil, err
	}
	cfg := containerizer.Config{
		Root: c.State.Root, RunRoot: c.State.RunRoot, Runtime: rt, Provisioner: store,
		Isolators:      []isolators.Isolator{cg, network, vols, gpus},
		Hooks:          hooks.Container(),
		MonitorCommand: monitor,
		PrepareMonitor: prepare,
		SeccompAllow:   c.Security.SeccompAllow,
		Logger:         log,
		CrashPoint:     crashPoint(),
	}
	cz, err := containerizer.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := hooks.StartNRI(nriRuntime{cz}, false); err != nil {
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
	c := &g.cfg
	return image.New(image.Config{
		Root:               filepath.Join(c.State.Root, "images"),
		HideHostPaths:      []string{c.State.Root, c.State.RunRoot},
		InsecureRegistries: c.Images.InsecureRegistries,
		MaxImageSize:       imageSizeLimit(c.Images.MaxSize),
		Logger:             log.With("component", "image"),
	})
}

// imageSizeLimit is images.max_size as the image store takes it: 0, no
// limit, is negative there.
func imageSizeLimit(n config.Size) int64 {
	if n == 0 {
		return -1
	}
	return int64(n)
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

// network builds the network/cni isolator.
func (g *globals) network(log *slog.Logger) (*cni.Isolator, error) {
	c := &g.cfg
	return cni.New(cni.Config{
		ConfDir: c.CNI.ConfigDir, PluginDirs: c.CNI.PluginDirs,
		StateDir: filepath.Join(c.State.Root, "cni"), RunDir: filepath.Join(c.State.RunRoot, "cni"),
		DefaultNetwork: c.CNI.DefaultNetwork, DefaultSubnet: c.CNI.DefaultSubnet, DefaultBridge: c.CNI.DefaultBridge,
		Timeout: c.CNI.Timeout.Duration, Logger: log.With("isolator", cni.Name), CrashPoint: crashPoint(),
	})
}

func main() {
	g := &globals{}
	cmd := newRoot(g)
	err := cmd.ExecuteContext(context.Background())
	g.closeHooks()
	code := exitCode(err)
	var ee exitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "caisson: %s\n", errorLine(withFlags(err)))
	}
	os.Exit(code)
}

// flagParseError is a flag cobra could not parse: invalid input, as the
// error's text (pflag's own) does not say to errors.Is.
type flagParseError struct{ err error }

func (e flagParseError) Error() string   { return e.err.Error() }
func (e flagParseError) Unwrap() []error { return []error{e.err, api.ErrInvalid} }

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
