package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/client"
	"github.com/caisson/caisson/internal/userfile"
)

// The commands of a cluster's users: tenants submit and follow sessions,
// admins set the consumer tree and make tokens. Each calls the master's
// API through package client; see docs/cluster.md.

// readUserFile reads a file the user names, "-" for standard input, up
// to limit bytes.
func readUserFile(cmd *cobra.Command, path string, limit int64) ([]byte, error) {
	if path != "-" {
		return userfile.ReadFileContext(cmd.Context(), path, limit)
	}
	b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), limit+1))
	if err != nil {
		return nil, fmt.Errorf("standard input: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("standard input: larger than %d bytes: %w", limit, api.ErrInvalid)
	}
	return b, nil
}

// withClient runs fn with the master's client, and names what the user
// can do about its error (masterError).
func (g *globals) withClient(cmd *cobra.Command, fields map[string]string, fn func(ctx context.Context, c *client.Client) error) error {
	c, err := g.masterClient(cmd)
	if err != nil {
		return err
	}
	return masterError(fn(cmd.Context(), c), fields)
}

func formatFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVar(format, "format", "table", "table or json")
}

// idsCmd is a command that calls op for each ID it is given and prints
// each ID op succeeded on (kill, revoke), going on after errors. op, as
// inspectCmd's get and lsCmd's list, is a method expression of the
// client's, (*client.Client).KillTask, whose receiver comes first.
func (g *globals) idsCmd(use, short string, op func(c *client.Client, ctx context.Context, id string) error) *cobra.Command {
	return g.clientFlags(&cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, nil, func(ctx context.Context, c *client.Client) error {
				return eachID(args, func(id string) error {
					if err := op(c, ctx, id); err != nil {
						return err
					}
					fmt.Fprintln(cmd.OutOrStdout(), id)
					return nil
				})
			})
		},
	})
}

// inspectCmd prints what get finds for each ID as JSON, then the errors
// of those not found.
func inspectCmd[T any](g *globals, short string, get func(c *client.Client, ctx context.Context, id string) (T, error)) *cobra.Command {
	return g.clientFlags(&cobra.Command{
		Use:   "inspect ID...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, nil, func(ctx context.Context, c *client.Client) error {
				found := []T{}
				err := eachID(args, func(id string) error {
					v, err := get(c, ctx, id)
					if err == nil {
						found = append(found, v)
					}
					return err
				})
				if len(found) > 0 {
					if perr := printJSON(cmd.OutOrStdout(), found); perr != nil {
						return perr
					}
				}
				return err
			})
		},
	})
}

// lsFlags are the flags of a list command: --format, and -q where the
// list has IDs.
type lsFlags struct {
	format string
	quiet  bool
}

func (f *lsFlags) register(cmd *cobra.Command, quiet bool) {
	formatFlag(cmd, &f.format)
	if quiet {
		cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only IDs")
	}
}

// lsCmd is a list command: it checks its flags, lists, and prints the
// list as a table, as JSON, or (-q) its IDs.
func lsCmd[T any](g *globals, cmd *cobra.Command, f *lsFlags, id func(T) string, header string, row func(T) []string,
	list func(c *client.Client, ctx context.Context) ([]T, error)) *cobra.Command {
	f.register(cmd, id != nil)
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkFormat(f.format); err != nil {
			return err
		}
		return g.withClient(cmd, nil, func(ctx context.Context, c *client.Client) error {
			l, err := list(c, ctx)
			if err != nil {
				return err
			}
			if f.quiet {
				for _, v := range l {
					fmt.Fprintln(cmd.OutOrStdout(), id(v))
				}
				return nil
			}
			return listOutput(cmd.OutOrStdout(), f.format, l, header, row)
		})
	}
	return g.clientFlags(cmd)
}

func newConsumerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consumer",
		Short: "Set and list the consumer tree: who owns what share of the cluster (admin)",
		Args:  cobra.NoArgs,
	}
	var file string
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Replace the consumer tree with the one a file describes (admin)",
		Long: `Replace the master's consumer tree with the one FILE describes (YAML or JSON,
"-" for standard input): each consumer with its path, owned resources, weight,
limit, lending and reclaim grace, nested or as a flat list (docs/cluster.md).
The whole tree is replaced at once, or nothing is: a consumer that holds
sessions must stay.`,
		Example: `  caisson consumer apply -f examples/cluster-tree.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f: name the tree's file: %w", api.ErrInvalid)
			}
			b, err := readUserFile(cmd, file, maxTreeFile)
			if err != nil {
				return err
			}
			tree, err := parseTreeFile(file, b)
			if err != nil {
				return err
			}
			return g.withClient(cmd, nil, func(ctx context.Context, c *client.Client) error {
				if err := c.ApplyConsumers(ctx, tree); err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "consumer tree applied: %d consumers\n", len(tree.Consumers))
				return nil
			})
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", `the tree's file, YAML or JSON ("-": standard input)`)

	ls := lsCmd(g, &cobra.Command{
		Use:   "ls [--format table|json]",
		Short: "List the consumers with what they own, hold and deserve (a tenant: its own subtree)",
	}, &lsFlags{}, nil, "PATH\tWEIGHT\tOWNED\tLIMIT\tHELD\tDESERVED\tPENDING\tSESSIONS\tLEND\tGRACE", consumerRow,
		(*client.Client).Consumers)
	cmd.AddCommand(g.clientFlags(apply), ls)
	return cmd
}

func consumerRow(s api.ConsumerStatus) []string {
	weight, lend, grace := s.Weight, "yes", "default"
	if weight == 0 {
		weight = 1
	}
	if s.NoLend {
		lend = "no"
	}
	if s.Grace != 0 {
		grace = s.Grace.String()
	}
	return []string{s.Path, fmt.Sprintf("%g", weight), formatResources(s.Owned), formatResources(s.Limit), formatResources(s.Held),
		formatResources(s.Deserved), formatResources(s.Pending), strconv.Itoa(s.Sessions), lend, grace}
}

// tokenFlags maps the fields of a token request to token create's flags.
var tokenFlags = map[string]string{"role": "--role", "consumer": "--consumer", "name": "--name", "ttl": "--ttl"}

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke the tokens that call the master's API (admin)",
		Args:  cobra.NoArgs,
	}
	var req api.TokenRequest
	var ttl time.Duration
	var format string
	create := &cobra.Command{
		Use:   "create [--consumer PATH] [--role tenant|admin|agent] [--name NAME] [--ttl DURATION]",
		Short: "Create a token and print its secret, shown this once (admin)",
		Long: `Create a token and print its secret on standard output, alone on its line: the
master keeps only its hash, so it is shown this once. A tenant token is bound
to a consumer: it sees and acts on the sessions of that consumer and its
subtree only. An admin token does everything; an agent token is an agent's.`,
		Example: `  caisson token create --consumer /eng/ml --name ml-team --ttl 720h > ml.token
  caisson token create --role admin --name ops > ops.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			switch req.Role {
			case api.RoleTenant, api.RoleAdmin, api.RoleAgent:
			default:
				return fmt.Errorf("--role %q: want tenant, admin or agent: %w", req.Role, api.ErrInvalid)
			}
			if ttl < 0 {
				return fmt.Errorf("--ttl %s: negative: %w", ttl, api.ErrInvalid)
			}
			req.TTL = api.Duration(ttl)
			return g.withClient(cmd, tokenFlags, func(ctx context.Context, c *client.Client) error {
				tok, err := c.CreateToken(ctx, req)
				if err != nil {
					return err
				}
				if format == "json" {
					return printJSON(cmd.OutOrStdout(), tok)
				}
				fmt.Fprintln(cmd.OutOrStdout(), tok.Secret)
				fmt.Fprintf(cmd.ErrOrStderr(), "token %s created (%s); its secret, above, is shown this once\n", tok.ID, tokenWhat(tok))
				return nil
			})
		},
	}
	create.Flags().StringVar(&req.Role, "role", api.RoleTenant, "tenant, admin or agent")
	create.Flags().StringVar(&req.Consumer, "consumer", "", "the consumer a tenant token is bound to, as /eng/ml")
	create.Flags().StringVar(&req.Name, "name", "", "whose the token is, for the admin's list")
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token is valid, as 720h (default: until revoked)")
	formatFlag(create, &format)

	ls := lsCmd(g, &cobra.Command{
		Use:   "ls [--format table|json]",
		Short: "List the tokens, without their secrets (admin)",
	}, &lsFlags{}, nil, "ID\tROLE\tCONSUMER\tNAME\tCREATED\tEXPIRES", func(t api.Token) []string {
		expires := "never"
		if !t.Expires.IsZero() {
			expires = t.Expires.UTC().Format(time.RFC3339)
		}
		return []string{t.ID, t.Role, orDash(t.Consumer), orDash(t.Name), t.Created.UTC().Format(time.RFC3339), expires}
	}, (*client.Client).Tokens)
	revoke := g.idsCmd("revoke ID...", "Revoke tokens: the master refuses them from now on (admin)", (*client.Client).RevokeToken)
	cmd.AddCommand(g.clientFlags(create), ls, revoke)
	return cmd
}

// tokenWhat says what a token may do, in a few words.
func tokenWhat(t api.Token) string {
	s := t.Role
	if t.Consumer != "" {
		s += " of " + t.Consumer
	}
	if !t.Expires.IsZero() {
		s += ", until " + t.Expires.UTC().Format(time.RFC3339)
	}
	return s
}

func newSubmitCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit a session from a file and print its ID",
		Long: `Submit the session FILE describes (YAML or JSON, "-" for standard input): its
name, consumer, priority, kind and policy, and its task groups, each with a
count, a gang minimum, the resources of one task, and the container each task
runs (an image in any form caisson run takes, a command, env, networks,
Docker volumes, published ports). docs/cluster.md lists every field.

The file is checked before anything is sent: a mistake is named with its line
and field. The session's ID is printed; --format json prints the session.`,
		Example: `  caisson submit examples/job.yaml
  caisson session ls`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			b, err := readUserFile(cmd, args[0], maxSessionFile)
			if err != nil {
				return err
			}
			spec, err := parseSessionFile(args[0], b)
			if err != nil {
				return err
			}
			return g.withClient(cmd, nil, func(ctx context.Context, c *client.Client) error {
				s, err := c.Submit(ctx, spec)
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				if format == "json" {
					return printJSON(cmd.OutOrStdout(), s)
				}
				fmt.Fprintln(cmd.OutOrStdout(), s.ID)
				return nil
			})
		},
	}
	formatFlag(cmd, &format)
	return g.clientFlags(cmd)
}

func newSessionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "session",
		Short: "List, inspect, scale and kill sessions",
		Args:  cobra.NoArgs,
	}
	var all bool
	ls := lsCmd(g, &cobra.Command{
		Use:   "ls [--all] [-q] [--format table|json]",
		Short: "List the sessions this token may see (running ones, or all with --all)",
	}, &lsFlags{}, func(s api.Session) string { return s.ID }, "ID\tNAME\tCONSUMER\tKIND\tPRIORITY\tSTATE\tTASKS\tPENDING\tSUBMITTED", sessionRow,
		func(c *client.Client, ctx context.Context) ([]api.Session, error) { return c.Sessions(ctx, all) })
	ls.Flags().BoolVarP(&all, "all", "a", false, "finished sessions too")

	scale := &cobra.Command{
		Use:     "scale ID GROUP COUNT",
		Short:   "Set how many tasks a group of a session wants",
		Example: `  caisson session scale s-1 worker 8`,
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			count, err := strconv.Atoi(args[2])
			if err != nil || count < 0 {
				return fmt.Errorf("COUNT %q: want a whole number, 0 or more: %w", args[2], api.ErrInvalid)
			}
			return g.withClient(cmd, map[string]string{"group": "GROUP", "count": "COUNT"}, func(ctx context.Context, c *client.Client) error {
				if err := c.Scale(ctx, args[0], api.ScaleRequest{Group: args[1], Count: count}); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %d\n", args[0], args[1], count)
				return nil
			})
		},
	}
	cmd.AddCommand(ls,
		inspectCmd(g, "Show sessions as JSON: their spec, state and groups' progress", (*client.Client).Session),
		g.clientFlags(scale),
		g.idsCmd("kill ID...", "Kill sessions: their tasks are killed, their offers rescinded", (*client.Client).KillSession))
	return cmd
}

// sessionRow is a session in session ls: its tasks running of those
// wanted, summed over its groups, and those pending.
func sessionRow(s api.Session) []string {
	var running, count, pending int
	for _, gs := range s.Groups {
		running += gs.Running
		count += gs.Count
		pending += gs.Pending
	}
	kind := s.Spec.Kind
	if kind == "" {
		kind = api.SessionBatch
	}
	return []string{s.ID, s.Spec.Name, orDash(s.Spec.Consumer), kind, strconv.Itoa(s.Spec.Priority), s.State,
		fmt.Sprintf("%d/%d", running, count), strconv.Itoa(pending), ago(s.Submitted)}
}

func newTaskCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "List, inspect and kill the tasks of sessions",
		Args:  cobra.NoArgs,
	}
	var session string
	ls := lsCmd(g, &cobra.Command{
		Use:   "ls [--session ID] [-q] [--format table|json]",
		Short: "List the tasks this token may see, of one session with --session",
	}, &lsFlags{}, func(t api.Task) string { return t.ID }, "ID\tSTATE\tAGENT\tRESOURCES\tCPU TIME\tMEM USED\tPORTS\tGPUS\tREASON", taskRow,
		func(c *client.Client, ctx context.Context) ([]api.Task, error) { return c.Tasks(ctx, session) })
	ls.Flags().StringVar(&session, "session", "", "only this session's tasks")
	cmd.AddCommand(ls,
		inspectCmd(g, "Show tasks as JSON: state, agent, grant, container, exit code, reason, usage", (*client.Client).Task),
		g.idsCmd("kill ID...", "Kill tasks (SIGTERM, then SIGKILL after their group's kill_grace); they are not started again", (*client.Client).KillTask))
	return cmd
}

// taskRow is a task in task ls: its state with its exit code, the CPU
// time and memory it used at its agent's last heartbeat, and whether it
// runs on borrowed resources (revocable).
func taskRow(t api.Task) []string {
	state := t.State
	if t.ExitCode != nil {
		state = fmt.Sprintf("%s (%d)", t.State, *t.ExitCode)
	}
	ports := make([]string, 0, len(t.Ports))
	for _, p := range t.Ports {
		ports = append(ports, strconv.Itoa(p))
	}
	reason := t.Reason
	if t.Revocable && !api.TaskTerminal(t.State) {
		reason = strings.TrimPrefix(reason+", revocable", ", ")
	}
	cpuTime, memUsed := "-", "-"
	if u := t.Usage; u != nil {
		cpuTime = time.Duration(u.CPUUsageNanos).Round(10 * time.Millisecond).String()
		memUsed = api.FormatSize(u.MemoryUsageBytes)
	}
	return []string{t.ID, state, orDash(t.Agent), formatResources(t.Resources), cpuTime, memUsed, orDash(strings.Join(ports, ",")),
		orDash(strings.Join(t.GPUs, ",")), orDash(reason)}
}

func newAgentsCmd(g *globals) *cobra.Command {
	return lsCmd(g, &cobra.Command{
		Use:   "agents [--format table|json]",
		Short: "List the cluster's agents: their state, resources and tasks (admin)",
	}, &lsFlags{}, nil, "ID\tHOSTNAME\tADDRESS\tSTATE\tCPUS\tMEMORY\tDISK\tGPUS\tTASKS\tLAST SEEN", func(a api.Agent) []string {
		r := a.Resources
		return []string{a.ID, a.Hostname, orDash(a.Address), a.State, fmt.Sprintf("%g", r.CPUs), api.FormatSize(uint64(r.MemoryBytes)),
			api.FormatSize(uint64(r.DiskBytes)), strconv.Itoa(len(r.GPUs)), strconv.Itoa(a.Tasks), ago(a.LastSeen)}
	}, (*client.Client).Agents)
}

// isTaskID reports whether a name given to logs is a task's: task IDs
// hold slashes ("SESSION/GROUP/N"), which no container name does.
func isTaskID(ref string) bool { return strings.Contains(ref, "/") }

// withTaskLogs makes the logs command print a task's output, from the
// master, when it is given a task ID; a container's otherwise, as before.
func (g *globals) withTaskLogs(cmd *cobra.Command) *cobra.Command {
	containerLogs := cmd.RunE
	cmd.Use = "logs [OPTIONS] (CONTAINER | TASK)"
	cmd.Short = "Print a container's output, or a cluster task's (SESSION/GROUP/N)"
	cmd.Long = `Print a container's output (stdout to stdout, stderr to stderr), or, given a
task ID (SESSION/GROUP/N, as caisson task ls shows it), the task's output
from the master, which fetches it from the task's agent. -f keeps printing
until the container or the task ends.`
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if !isTaskID(args[0]) {
			return containerLogs(cmd, args)
		}
		if fl := cmd.Flags().Lookup("timestamps"); fl != nil && fl.Changed {
			return fmt.Errorf("--timestamps applies to a container, not to a task: %w", api.ErrInvalid)
		}
		follow, _ := cmd.Flags().GetBool("follow")
		return g.withClient(cmd, nil, func(ctx context.Context, c *client.Client) error {
			return c.Logs(ctx, args[0], follow, cmd.OutOrStdout())
		})
	}
	return g.clientFlags(cmd)
}
