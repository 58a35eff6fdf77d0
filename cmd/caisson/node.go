package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/resources"
)

// nodeResources detects what this host offers.
func (g *globals) nodeResources(ctx context.Context) (*api.NodeResources, error) {
	c := &g.cfg
	return resources.Detect(ctx, resources.Config{
		ProcFS: c.Host.ProcFS, SysFS: c.Host.SysFS, WorkDir: c.State.Root,
		Overrides: c.Host.Resources, Reserve: c.Host.Reserve,
		GPUs:   gpuSource{g},
		Logger: g.logger().With("component", "resources"),
	})
}

func newNodeCmd(g *globals) *cobra.Command {
	node := &cobra.Command{
		Use:   "node",
		Short: "Show what this host offers",
		Args:  cobra.NoArgs,
	}
	var format string
	res := &cobra.Command{
		Use:   "resources [--format table|json]",
		Short: "Show the cpus, memory, disk, ports, GPUs and attributes this host offers",
		Long: `Show what this host offers to containers: online CPUs within caisson's own
cpuset and CPU quota (fractional under a quota), memory within its cgroup
limit (memory of CPU-less NUMA nodes, such as GPU memory on an AC922, is not
counted), the size of the work dir's filesystem (--root), the port range,
the GPUs (with the MIG devices of those in MIG mode), and the attributes a placement may match: arch, os, kernel, CPU
model (and POWER's platform, machine model and MMU), SMT threads per core,
page size, huge page sizes and NUMA nodes.

--resources replaces detected values and --reserve is then subtracted;
reserving more than there is is an error. --path.procfs and --path.sysfs
read another root's /proc and /sys.`,
		Example: `  caisson node resources
  caisson node resources --format json
  caisson --resources "cpus:8;mem:16g" --reserve "cpus:1;mem:2g;ports:[31000-31099]" node resources
  caisson --path.procfs /host/proc --path.sysfs /host/sys node resources`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			r, err := g.nodeResources(cmd.Context())
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd.OutOrStdout(), r)
			}
			return printNodeResources(cmd.OutOrStdout(), r)
		},
	}
	res.Flags().StringVar(&format, "format", "table", "table or json")
	node.AddCommand(res)
	return node
}

// printNodeResources writes aligned tables: the amounts and attributes,
// then the NUMA nodes, then the GPUs.
func printNodeResources(out io.Writer, r *api.NodeResources) error {
	a := r.Attributes
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("CPUS", fmt.Sprintf("%g", r.CPUs))
	row("MEMORY", api.FormatSize(uint64(r.MemoryBytes)))
	row("DISK", api.FormatSize(uint64(r.DiskBytes)))
	row("PORTS", strings.Trim(resources.FormatPorts(r.Ports), "[]"))
	row("GPUS", fmt.Sprint(len(r.GPUs)))
	row("ARCH", a.Arch)
	row("OS", a.OS)
	row("KERNEL", a.Kernel)
	row("CPU MODEL", a.CPUModel)
	row("CPU PLATFORM", a.CPUPlatform)
	row("MACHINE MODEL", a.MachineModel)
	row("MMU", a.MMU)
	row("SMT", fmt.Sprintf("%s per core (%d online), %s", plural(a.SMT.ThreadsPerCore, "thread"), a.SMT.OnlineThreadsPerCore, plural(a.SMT.Cores, "core")))
	row("PAGE SIZE", api.FormatSize(uint64(a.PageSize)))
	huge := make([]string, 0, len(a.HugePageSizes))
	for _, s := range a.HugePageSizes {
		huge = append(huge, api.FormatSize(uint64(s)))
	}
	row("HUGE PAGES", strings.Join(huge, ", "))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(out)
	fmt.Fprintln(tw, "NUMA NODE\tCPUS\tMEMORY")
	for _, n := range a.NUMANodes {
		if len(n.CPUs) == 0 {
			fmt.Fprintf(tw, "%d\t-\t%s\tno CPUs: kept out of cpusets\n", n.ID, api.FormatSize(uint64(n.MemoryBytes)))
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", n.ID, resources.FormatList(n.CPUs), api.FormatSize(uint64(n.MemoryBytes)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(r.GPUs) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	if r.GPUs[0].Simulated {
		fmt.Fprintln(out, "SIMULATED GPUs: no real GPU is behind them")
	}
	fmt.Fprintln(tw, "GPU\tUUID\tMODEL\tMEMORY\tPCI BUS ID\tNUMA NODE\tHEALTH")
	for _, gpu := range r.GPUs {
		numa, health := "-", "healthy"
		if gpu.NUMANode >= 0 {
			numa = fmt.Sprint(gpu.NUMANode)
		}
		if gpu.Unhealthy != "" {
			health = "UNHEALTHY: " + gpu.Unhealthy
		}
		model := gpu.Model
		if gpu.MIG {
			model += " (MIG mode)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", gpu.Index, gpu.UUID, model, api.FormatSize(uint64(gpu.MemoryBytes)), gpu.PCIBusID, numa, health)
		for _, m := range gpu.MIGDevices {
			health := "healthy"
			if m.Unhealthy != "" {
				health = "UNHEALTHY: " + m.Unhealthy
			}
			fmt.Fprintf(tw, "%d:%d\t%s\t  MIG %s\t%s\t-\t%s\t%s\n", gpu.Index, m.Index, m.UUID, m.Profile, api.FormatSize(uint64(m.MemoryBytes)), numa, health)
		}
	}
	return tw.Flush()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
