package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func checkFormat(format string) error {
	if format != "table" && format != "json" {
		return fmt.Errorf("--format %q: use table or json: %w", format, api.ErrInvalid)
	}
	return nil
}

func newPsCmd(g *globals) *cobra.Command {
	var all, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers (running ones, or all with -a)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			cz, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			list, err := cz.List(cmd.Context())
			if err != nil {
				return err
			}
			shown := []api.Container{}
			for _, c := range list {
				if all || c.State == api.StateRunning || c.State == api.StateCreating {
					shown = append(shown, c)
				}
			}
			out := cmd.OutOrStdout()
			switch {
			case quiet:
				for _, c := range shown {
					fmt.Fprintln(out, containerizer.ShortID(c.ID))
				}
				return nil
			case format == "json":
				return printJSON(out, shown)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tNAME")
			for _, c := range shown {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", containerizer.ShortID(c.ID), imageName(c), quoteCommand(c.Command),
					ago(c.CreatedAt), status(c), c.Name)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers, not only running ones")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only IDs")
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

func imageName(c api.Container) string {
	switch {
	case c.State == api.StateUnreadable:
		return "-"
	case c.Image != "":
		return c.Image
	case c.Spec.Rootfs != "":
		return "rootfs:" + c.Spec.Rootfs
	default:
		return "(host)"
	}
}

func quoteCommand(args []string) string {
	s := strconv.Quote(strings.Join(args, " "))
	if len(s) > 30 {
		s = s[:26] + "…\""
	}
	return s
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d seconds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

func status(c api.Container) string {
	switch c.State {
	case api.StateRunning:
		if c.StartedAt != nil {
			return "Up " + strings.TrimSuffix(ago(*c.StartedAt), " ago")
		}
		return "Up"
	case api.StateExited:
		if t := c.Termination; t != nil {
			s := fmt.Sprintf("Exited (%d) %s", t.ExitCode, ago(t.FinishedAt))
			if t.Reason != api.ReasonExited {
				s += ", " + string(t.Reason)
			}
			return s
		}
		return "Exited"
	default:
		return strings.ToUpper(string(c.State[:1])) + string(c.State[1:])
	}
}

// forEach resolves each reference and calls fn, going on after errors and
// returning them all, as Docker does for rm and kill.
func forEach(cz *containerizer.Containerizer, refs []string, fn func(id string) error) error {
	var errs []error
	for _, ref := range refs {
		id, err := cz.Resolve(ref)
		if err == nil {
			err = fn(id)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ref, err))
		}
	}
	return errors.Join(errs...)
}

// onEach opens the containerizer, applies op to every container the
// arguments name, prints the short ID of each one it succeeded on, and
// returns every error.
func onEach(cmd *cobra.Command, g *globals, refs []string, op func(cz *containerizer.Containerizer, id string) error) error {
	cz, err := g.open(cmd.Context(), true)
	if err != nil {
		return err
	}
	return forEach(cz, refs, func(id string) error {
		if err := op(cz, id); err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), containerizer.ShortID(id))
		return nil
	})
}

func newInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers as JSON: state, pid, exit code, termination reason, cgroup, resources",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cz, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			out := []*api.Container{}
			err = forEach(cz, args, func(id string) error {
				c, err := cz.Inspect(cmd.Context(), id)
				if err == nil {
					out = append(out, c)
				}
				return err
			})
			if len(out) > 0 {
				if perr := printJSON(cmd.OutOrStdout(), out); perr != nil {
					return perr
				}
			}
			return err
		},
	}
}

func newStatsCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] CONTAINER...",
		Short: "Print resource usage of running containers, once",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			cz, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			var rows []statsRow
			err = forEach(cz, args, func(id string) error {
				c, err := cz.Inspect(cmd.Context(), id)
				if err != nil {
					return err
				}
				u, err := cz.Usage(cmd.Context(), id)
				if u != nil {
					rows = append(rows, statsRow{ID: id, Name: c.Name, Usage: u})
				}
				return err
			})
			if len(rows) == 0 && err != nil {
				return err // no table of nothing before the error
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				if perr := printJSON(out, rows); perr != nil {
					return perr
				}
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tNAME\tCPU TIME\tUSER\tSYSTEM\tTHROTTLED\tMEM USAGE / LIMIT\tRSS\tCACHE\tPIDS\tOOM KILLS\tNET RX / TX\tNET ERR / DROP")
			for _, r := range rows {
				u := r.Usage
				limit := "-"
				if u.MemoryLimitBytes > 0 {
					limit = api.FormatSize(u.MemoryLimitBytes)
				}
				pids := strconv.FormatUint(u.Pids, 10)
				if u.PidsLimit > 0 {
					pids += " / " + strconv.FormatUint(u.PidsLimit, 10)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s / %s\t%s\t%s\t%s\t%d\t%s / %s\t%d / %d\n", containerizer.ShortID(r.ID), r.Name,
					time.Duration(u.CPUUsageNanos).Round(time.Millisecond), time.Duration(u.CPUUserNanos).Round(time.Millisecond),
					time.Duration(u.CPUSystemNanos).Round(time.Millisecond), u.CPUThrottled, u.CPUPeriods,
					api.FormatSize(u.MemoryUsageBytes), limit, api.FormatSize(u.MemoryRSSBytes), api.FormatSize(u.MemoryCacheBytes), pids, u.OOMKills,
					api.FormatSize(u.NetRxBytes), api.FormatSize(u.NetTxBytes), u.NetRxErrors+u.NetTxErrors, u.NetRxDropped+u.NetTxDropped)
			}
			if ferr := tw.Flush(); ferr != nil {
				return ferr
			}
			if ferr := printGPUUsage(out, rows); ferr != nil {
				return ferr
			}
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

func newLogsCmd(g *globals) *cobra.Command {
	var follow, timestamps bool
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Print a container's output (stdout to stdout, stderr to stderr)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cz, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			id, err := cz.Resolve(args[0])
			if err != nil {
				return err
			}
			return cz.Logs(cmd.Context(), id, containerizer.LogOptions{
				Follow: follow, Timestamps: timestamps, Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr(),
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the container exits")
	cmd.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with its time")
	return cmd
}

func newUpdateCmd(g *globals) *cobra.Command {
	var rf resourceFlags
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER...",
		Short: "Change the limits of running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := rf.parse()
			if err != nil {
				return err
			}
			if res == (api.Resources{}) {
				return fmt.Errorf("nothing to update: give --cpus, --memory, --memory-reservation or --pids-limit: %w", api.ErrInvalid)
			}
			return onEach(cmd, g, args, func(cz *containerizer.Containerizer, id string) error {
				return cz.Update(cmd.Context(), id, res)
			})
		},
	}
	rf.register(cmd.Flags())
	return cmd
}

func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q: %w", s, api.ErrInvalid)
}

func newKillCmd(g *globals) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER...",
		Short: "Send a signal (SIGKILL by default) to running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sig, err := parseSignal(signal)
			if err != nil {
				return err
			}
			return onEach(cmd, g, args, func(cz *containerizer.Containerizer, id string) error {
				return cz.Kill(cmd.Context(), id, sig)
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "KILL", "signal name or number")
	return cmd
}

func newRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [OPTIONS] CONTAINER...",
		Short: "Remove containers and everything they left",
		Long: `Remove containers and everything they left, printing the ID of each one
removed. Of several rm of one container at once, exactly one removes it and
prints its ID; the others find it gone. A container that is gone (or never
was) is an error without -f; with -f, as with Docker's, it is only a notice
on standard error, and rm succeeds: what was asked, that the container be
gone, holds.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cz, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				id, err := cz.Resolve(ref)
				if err == nil {
					err = cz.Remove(cmd.Context(), id, force)
				}
				switch {
				case err == nil:
					fmt.Fprintln(cmd.OutOrStdout(), containerizer.ShortID(id))
				case force && errors.Is(err, api.ErrNotFound):
					fmt.Fprintf(cmd.ErrOrStderr(), "caisson: %s: %s\n", ref, err)
				default:
					errs = append(errs, fmt.Errorf("%s: %w", ref, err))
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first; a container that is gone is no error")
	return cmd
}

func newWaitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER",
		Short: "Wait for a container to exit and print its exit code",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cz, err := g.open(cmd.Context(), true)
			if err != nil {
				return err
			}
			id, err := cz.Resolve(args[0])
			if err != nil {
				return err
			}
			t, err := cz.Wait(cmd.Context(), id)
			if err != nil {
				return err
			}
			if t == nil {
				return fmt.Errorf("container %s was removed: %w", args[0], api.ErrNotFound)
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.ExitCode)
			return nil
		},
	}
}

func newMonitorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:    "monitor CONTAINER-ID",
		Short:  "Hold a container's exit status (started by caisson itself)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		// Its configuration is the file its container's command wrote
		// (--config), whatever its environment says.
		Annotations: map[string]string{configAnnotation: monitorConfig},
		RunE: func(cmd *cobra.Command, args []string) error {
			fd, err := strconv.Atoi(os.Getenv("CAISSON_MONITOR_SYNC_FD"))
			if err != nil {
				return fmt.Errorf("the monitor is started by caisson run, not by hand: %w", api.ErrInvalid)
			}
			cfd, err := strconv.Atoi(os.Getenv("CAISSON_MONITOR_CONTROL_FD"))
			if err != nil {
				return fmt.Errorf("the monitor is started by caisson run, not by hand: %w", api.ErrInvalid)
			}
			sync := os.NewFile(uintptr(fd), "monitor-sync")
			defer sync.Close()
			control := os.NewFile(uintptr(cfd), "monitor-control")
			defer control.Close()
			cz, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			return cz.Monitor(cmd.Context(), args[0], sync, control)
		},
	}
}

func newRecoverCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "recover",
		Short: "Clean up after crashes: interrupted launches, lost monitors, orphan cgroups and runtime state",
		Long: `Every caisson command already recovers what a crash left in its own
containers (see below for those whose checkpoints cannot be read); recover
also destroys orphans: what the runtime, the cgroups and the networks still
hold for containers this work dir (--root) made whose directories are gone.
It touches only what this work dir's ownership ledger names: containers of
other work dirs that share the cgroup parent or the run root, and cgroups or
runtime containers no work dir made, are left alone.

` + quarantineHelp + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cz, err := g.open(cmd.Context(), false)
			if err != nil {
				return err
			}
			err = cz.Recover(cmd.Context(), true)
			if errors.Is(err, api.ErrUnreadable) {
				return fmt.Errorf("%w\n%s", err, quarantineHelp)
			}
			return err
		},
	}
}

// quarantineHelp says what to do about containers whose checkpoints cannot
// be read.
const quarantineHelp = `A container whose checkpoint (container.json in its directory under the work
dir) cannot be read is quarantined: caisson leaves it alone, its process (if
any) runs on, its files stay, and ps -a lists it as Unreadable. Either restore
the checkpoint from a backup, or copy what you need (its writes are under
fs/upper in its directory) and destroy it with: caisson rm -f ID`

// statsRow is one container in caisson stats.
type statsRow struct {
	ID    string     `json:"id"`
	Name  string     `json:"name"`
	Usage *api.Usage `json:"usage"`
}

// printGPUUsage writes a second table with the GPUs the containers hold,
// when any does.
func printGPUUsage(out io.Writer, rows []statsRow) error {
	if !slices.ContainsFunc(rows, func(r statsRow) bool { return len(r.Usage.GPUs) > 0 }) {
		return nil
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER ID\tGPU\tUUID\tUTIL\tMEM UTIL\tMEMORY USED / TOTAL\tPOWER\tTEMP\tECC CORRECTED / UNCORRECTED")
	opt := func(v *uint32, unit string) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatUint(uint64(*v), 10) + unit
	}
	opt64 := func(v *uint64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatUint(*v, 10)
	}
	size := func(v *uint64) string {
		if v == nil {
			return "-"
		}
		return api.FormatSize(*v)
	}
	for _, r := range rows {
		for _, g := range r.Usage.GPUs {
			power := "-"
			if g.PowerMilliwatts != nil {
				power = fmt.Sprintf("%.1fW", float64(*g.PowerMilliwatts)/1000)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s / %s\t%s\t%s\t%s / %s\n", containerizer.ShortID(r.ID), g.Index, g.UUID,
				opt(g.UtilizationPercent, "%"), opt(g.MemoryUtilizationPercent, "%"), size(g.MemoryUsedBytes), size(g.MemoryTotalBytes),
				power, opt(g.TemperatureCelsius, "C"), opt64(g.ECCCorrected), opt64(g.ECCUncorrected))
		}
	}
	return tw.Flush()
}
