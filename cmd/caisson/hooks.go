package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/agenthook"
	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

// hooks readies the admin's hooks of the config file's [hooks] section,
// once per process: each exec hook run gets a cgroup of its own below the
// containers' cgroup parent, where the host has a cgroup v2 hierarchy;
// only the agent (g.nriListen) listens on the NRI socket.
func (g *globals) hooks() (*agenthook.Hooks, error) {
	g.hooksOnce.Do(func() {
		cfg := g.cfg.Hooks.Agenthook()
		cfg.CgroupDir = agenthook.CgroupDir(g.cfg.Cgroups.Parent)
		cfg.Logger = g.logger().With("component", "hooks")
		if !g.nriListen {
			cfg.NRI.SocketPath = ""
		}
		g.hooksVal, g.hooksErr = agenthook.New(cfg)
	})
	return g.hooksVal, g.hooksErr
}

// closeHooks stops what the hooks started (NRI plugins).
func (g *globals) closeHooks() {
	if g.hooksVal != nil {
		g.hooksVal.Close()
	}
}

// nriRuntime is the containerizer as NRI plugins act on it.
type nriRuntime struct{ cz *containerizer.Containerizer }

func (r nriRuntime) HookedContainers(ctx context.Context) ([]containerizer.HookedContainer, error) {
	return r.cz.HookedContainers(ctx)
}

func (r nriRuntime) Update(ctx context.Context, id string, res api.Resources) error {
	return r.cz.Update(ctx, id, res)
}

func (r nriRuntime) Evict(ctx context.Context, id, reason string) error {
	return r.cz.Kill(ctx, id, syscall.SIGKILL)
}

func newHooksCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hooks",
		Short: "Show the admin's hooks",
		Long: `The admin's hooks, from the [hooks] section of the config file: exec hooks at the
points of a container's life and the agent's (agent-start, agent-register,
pre-launch, post-launch, post-stop), and OCI hooks added to every container's
runtime spec. caisson run and the agent's launches run the same hooks.
docs/hooks.md explains them.`,
		Args: cobra.NoArgs,
	}
	var format string
	ls := &cobra.Command{
		Use:   "ls [--format table|json]",
		Short: "List the configured hooks, in the order they run",
		Example: `  caisson hooks ls
  caisson --config /etc/caisson/config.toml hooks ls --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			cfg := g.cfg.Hooks.Agenthook()
			list := cfg.List()
			if list == nil {
				list = []agenthook.Info{}
			}
			if format == "json" {
				return printJSON(cmd.OutOrStdout(), list)
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no hooks are configured (the [hooks] section of the config file)")
				return nil
			}
			rows := make([][]string, 0, len(list))
			for _, h := range list {
				timeout := "-"
				if h.Timeout > 0 {
					timeout = h.Timeout.String()
				}
				policy := h.OnFailure
				if policy == "" {
					policy = "-"
				}
				rows = append(rows, []string{h.Kind, h.Point, h.Name, strings.Join(append([]string{h.Path}, h.Args...), " "), timeout, policy})
			}
			return table(cmd.OutOrStdout(), "KIND\tPOINT\tNAME\tCOMMAND\tTIMEOUT\tON FAILURE", rows)
		},
	}
	ls.Flags().StringVar(&format, "format", "table", "table or json")
	cmd.AddCommand(ls)
	return cmd
}
