package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

type runFlags struct {
	name, rootfs, platform, entrypoint string
	workdir, user, hostname, shmSize   string
	env, labels, networks, publish     []string
	mounts, volumes, securityOpts      []string
	ingressRate, egressRate            string
	gpus                               string
	ingressBurst, egressBurst          string
	detach, rm, noImage, interactive   bool
	entrypointGiven                    bool
	resources                          resourceFlags
}

func newRunCmd(g *globals) *cobra.Command { return runCmd(g, &runFlags{}) }

// runCmd is the run command, whose flags land in f.
func runCmd(g *globals, f *runFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] (IMAGE | --rootfs DIR | --no-image) [COMMAND [ARG...]]",
		Short: "Run a command in a new container",
		Long: `Run a command in a new container and print its output; the exit status is the
command's own (128+N when signal N killed it, 137 after a kill or an OOM).
125 means caisson itself failed, 126 that the command cannot be run, 127 that
it does not exist.

The root filesystem is one of:
  IMAGE            oci:PATH[:TAG], docker-archive:PATH, docker://REF or a registry REF
  --rootfs DIR     a directory, used read-only under a private writable layer
  --no-image       the host's filesystem, read-only, with a writable sandbox
                   at /mnt/sandbox (the working directory) and a private /tmp

Every blob of an image is checked against the digest and size that name it,
and each layer against its diff ID, before it is used; a tampered image is
refused. An image larger than --max-image-size once unpacked is refused.
A signal (Ctrl-C) while the container is being made cancels the launch.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runRun(cmd, g, f, args) },
	}
	cmd.Flags().SetInterspersed(false)
	fl := cmd.Flags()
	fl.Bool("help", false, "help for run")
	fl.StringVar(&f.name, "name", "", "container name")
	fl.StringVar(&f.rootfs, "rootfs", "", "use DIR as the root filesystem (read-only lower layer)")
	fl.BoolVar(&f.noImage, "no-image", false, "run on the host filesystem, read-only, with a writable sandbox")
	fl.StringVar(&f.platform, "platform", "", "image platform, os/arch[/variant] (default: this host's); only with an IMAGE")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint; an empty one clears it")
	f.resources.register(fl)
	fl.StringVar(&f.shmSize, "shm-size", "", "size of /dev/shm (default 64m)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable KEY=VALUE (KEY alone copies it from here)")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set a label KEY=VALUE")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user: NAME, UID, NAME:GROUP or UID:GID")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "container hostname")
	fl.StringArrayVar(&f.networks, "network", nil, "none (the default: loopback only), host, or a CNI network; repeat for eth0, eth1, ...")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port, [IP:]HOST:CONTAINER[/tcp|udp|sctp] (without --network: on the default network)")
	fl.StringVar(&f.ingressRate, "ingress-rate", "", "limit incoming traffic, bits/s with k, m or g (e.g. 10mbit)")
	fl.StringVar(&f.egressRate, "egress-rate", "", "limit outgoing traffic, bits/s with k, m or g")
	fl.StringVar(&f.ingressBurst, "ingress-burst", "", "burst for --ingress-rate in bits (default: one second's worth)")
	fl.StringVar(&f.egressBurst, "egress-burst", "", "burst for --egress-rate in bits (default: one second's worth)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount a volume of a Docker volume plugin: type=volume,driver=D,src=NAME,dst=/path[,ro][,volume-opt=k=v] (created when missing)")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "short form of --mount: DRIVER/NAME:/path[:ro]")
	fl.StringVar(&f.gpus, "gpus", "", "NVIDIA GPUs: a number (the best-linked free ones not in MIG mode), all, UUIDs of GPUs and MIG devices GPU-…,MIG-…, or mig-PROFILE[:N] for N MIG devices of a profile, as mig-1g.5gb:2 (see caisson gpu ls)")
	fl.StringArrayVar(&f.securityOpts, "security-opt", nil, "seccomp=PROFILE.json (a Docker-format profile), seccomp=unconfined (no filter) or seccomp=builtin (the default: Docker's profile); --seccomp-allow (security.seccomp_allow) says which are allowed")
	fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container ID")
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "give the container this command's standard input")
	return cmd
}

// check refuses flags that cannot work together or hold nothing.
func (f *runFlags) check(cmd *cobra.Command) error {
	fl := cmd.Flags()
	f.entrypointGiven = fl.Changed("entrypoint")
	// Flags of an image: given with another root filesystem, they would
	// be silently ignored. The config file's images.max_size and
	// CAISSON_MAX_IMAGE_SIZE, settings of the host rather than of this run,
	// are.
	for _, name := range []string{"platform", "max-image-size"} {
		switch {
		case !fl.Changed(name):
		case f.rootfs != "":
			return fmt.Errorf("--%s applies to an image, not to --rootfs: %w", name, api.ErrInvalid)
		case f.noImage:
			return fmt.Errorf("--%s applies to an image, not to --no-image: %w", name, api.ErrInvalid)
		}
	}
	return nil
}

func (f *runFlags) spec(g *globals, args []string) (api.ContainerSpec, error) {
	s := api.ContainerSpec{
		Name: f.name, Rootfs: f.rootfs, Platform: f.platform, WorkingDir: f.workdir, User: f.user,
		Hostname: f.hostname, Networks: f.networks, AutoRemove: f.rm,
	}
	if err := f.networkSpec(g, &s); err != nil {
		return s, err
	}
	if err := f.volumeSpec(&s); err != nil {
		return s, err
	}
	switch {
	case f.rootfs != "" && f.noImage:
		return s, fmt.Errorf("--rootfs and --no-image cannot be used together: %w", api.ErrInvalid)
	case f.rootfs != "" || f.noImage:
		s.Command = args
	default:
		if len(args) == 0 {
			return s, fmt.Errorf("run needs an IMAGE, --rootfs DIR or --no-image (see caisson run --help): %w", api.ErrInvalid)
		}
		s.Image, s.Command = args[0], args[1:]
	}
	if f.entrypointGiven {
		// As Docker: an empty one clears the image's.
		s.Entrypoint = []string{}
		if f.entrypoint != "" {
			s.Entrypoint = []string{f.entrypoint}
		}
	}
	var err error
	if s.GPUs, err = api.ParseGPURequest(f.gpus); err != nil {
		return s, err
	}
	if s.Resources, err = f.resources.parse(); err != nil {
		return s, err
	}
	if s.Seccomp, err = parseSecurityOpts(f.securityOpts); err != nil {
		return s, err
	}
	if f.shmSize != "" {
		if s.ShmSizeBytes, err = api.ParseSize(f.shmSize); err != nil {
			return s, fmt.Errorf("--shm-size: %w", err)
		}
	}
	for _, e := range f.env {
		if !strings.Contains(e, "=") {
			v, ok := os.LookupEnv(e)
			if !ok {
				continue
			}
			e += "=" + v
		}
		s.Env = append(s.Env, e)
	}
	for _, l := range f.labels {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return s, fmt.Errorf("label %q has no key: %w", l, api.ErrInvalid)
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
	return s, nil
}

func runRun(cmd *cobra.Command, g *globals, f *runFlags, args []string) error {
	if err := f.check(cmd); err != nil {
		return err
	}
	spec, err := f.spec(g, args)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	cz, err := g.open(ctx, true)
	if err != nil {
		return err
	}
	if hooks, err := g.hooks(); err == nil {
		hooks.PrestartNRI() // NRI plugins start while the launch begins
	}
	// A signal while launching cancels the launch, which undoes what it
	// made: a launch waiting on a registry or a lock stays killable. One
	// that comes once the launch is done goes to the container.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	launchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	launched := make(chan struct{})
	cancelledBy := make(chan os.Signal, 1)
	go func() {
		select {
		case s := <-sigs:
			cancelledBy <- s
			cancel()
		case <-launched:
		}
	}()
	opts := containerizer.LaunchOptions{Attach: !f.detach, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
	if f.interactive {
		opts.Stdin = os.Stdin
	}
	l, err := cz.Launch(launchCtx, spec, opts)
	close(launched)
	if err != nil {
		select {
		case s := <-cancelledBy:
			fmt.Fprintf(cmd.ErrOrStderr(), "caisson: launch cancelled by %v: %v\n", s, err)
			return exitError{128 + int(s.(syscall.Signal))}
		default:
			return err
		}
	}
	if f.detach {
		l.Close()
		fmt.Fprintln(cmd.OutOrStdout(), l.Container.ID)
		return nil
	}
	id := l.Container.ID
	go func() {
		// A signal that raced the end of the launch comes first.
		select {
		case s := <-cancelledBy:
			_ = cz.Kill(context.Background(), id, s.(syscall.Signal))
		default:
		}
		for s := range sigs {
			_ = cz.Kill(context.Background(), id, s.(syscall.Signal))
		}
	}()
	term, err := l.Wait(ctx)
	if err != nil {
		return err
	}
	if term == nil {
		return fmt.Errorf("container %s was removed before its exit status was read: %w", containerizer.ShortID(id), api.ErrNotFound)
	}
	if term.Reason == api.ReasonOOM {
		fmt.Fprintf(cmd.ErrOrStderr(), "caisson: container %s was killed: %s\n", l.Container.Name, term.Message)
	} else if term.Reason == api.ReasonLost {
		fmt.Fprintf(cmd.ErrOrStderr(), "caisson: container %s: %s\n", l.Container.Name, term.Message)
		return exitError{exitCaissonError}
	}
	return exitError{term.ExitCode}
}
