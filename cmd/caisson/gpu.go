package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/gpu"
	"github.com/caisson/caisson/gpu/manager"
)

// gpus builds the GPU manager.
func (g *globals) gpus() (*manager.Manager, error) {
	c := &g.cfg
	return manager.New(manager.Config{
		Backend: c.GPU.Backend, Dir: filepath.Join(c.State.Root, "gpu"), Helper: c.GPU.NVMLHelper,
		ProcFS: c.Host.ProcFS, SysFS: c.Host.SysFS, CDIBase: c.GPU.CDISpec,
		Logger: g.logger().With("component", "gpu"),
	})
}

// gpuSource lists the GPUs for node resources, with their health.
type gpuSource struct{ g *globals }

func (s gpuSource) GPUs(ctx context.Context) ([]api.GPU, error) {
	m, err := s.g.gpus()
	if err != nil {
		return nil, err
	}
	inv, list, err := m.List(ctx, false)
	if err != nil {
		return nil, err
	}
	// NVLink islands, numbered in the order the topology lists them.
	island := map[string]int{}
	if inv.Topology != nil {
		for n, members := range inv.Topology.Islands() {
			for _, i := range members {
				if i < len(inv.Devices) {
					island[inv.Devices[i].UUID] = n
				}
			}
		}
	}
	out := []api.GPU{}
	for _, st := range list {
		g := st.GPU
		g.Simulated = inv.Simulated
		g.Island = island[g.UUID]
		if st.Unhealthy != nil {
			g.Unhealthy = st.Unhealthy.Reason
		}
		g.MIGDevices = nil
		for _, ms := range st.MIGDevices {
			mig := ms.MIGDevice
			if ms.Unhealthy != nil {
				mig.Unhealthy = ms.Unhealthy.Reason
			}
			g.MIGDevices = append(g.MIGDevices, mig)
		}
		out = append(out, g)
	}
	return out, nil
}

func newGPUCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gpu",
		Short: "List, watch and simulate NVIDIA GPUs",
		Long: `Caisson gives a container the GPUs it asks for (caisson run --gpus) and nothing
else. The GPUs come from --gpu-backend: nvml asks the driver through
caisson-nvml, a small helper that caisson runs (NVML needs cgo, caisson is a
static binary); without the driver's library it reads /proc/driver/nvidia.
The mock:dgxa100, mock:dgxh100 and mock:dgxb200 backends simulate a DGX
with eight GPUs, their NVLinks and fake device nodes, so that allocation and
isolation can be shown and tested on a machine without a GPU; everything
they print says SIMULATED.

A container with GPUs runs on the CPUs and memory nodes nearest them that
this host can give (--gpu-numa-affinity best-effort, the default; none
turns it off); where there are none it starts without a cpuset of its own,
and its runtime spec's annotation caisson.gpu/cpuset says why.

A GPU in MIG mode is never given whole: its MIG devices are, by UUID
(--gpus MIG-…) or by profile (--gpus mig-1g.5gb, mig-1g.5gb:2), each with
its GPU's node and its own GPU and compute instance capabilities
(/dev/nvidia-caps). gpu ls lists them under their GPU; on a simulated
machine, gpu simulate GPU --mig PROFILE,... sets a GPU's MIG layout.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newGPULsCmd(g), newGPUWatchCmd(g), newGPUSimulateCmd(g))
	return cmd
}

func newGPULsCmd(g *globals) *cobra.Command {
	var format string
	var refresh bool
	cmd := &cobra.Command{
		Use:   "ls [--format table|json] [--refresh]",
		Short: "List the GPUs, their links, health and holders",
		Long: `List this host's GPUs: index, UUID, model, memory, PCI bus id, NUMA node,
compute capability, health and the container that holds each, then the link
matrix (NV<n>: n NVLinks; PIX, PXB, PHB, NODE, SYS: the closest common PCIe
ancestor, as nvidia-smi topo -m names it). Under a GPU in MIG mode, one row
per MIG device: GPU:MIG index, MIG UUID, profile with its GPU and compute
instance IDs, memory, health and holder; --gpus takes the UUID, or
mig-PROFILE for any free one.

The inventory is cached under the work dir until the next boot; --refresh
discovers again (after a driver upgrade, a GPU replaced, a device node
removed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			m, err := g.gpus()
			if err != nil {
				return err
			}
			inv, list, err := m.List(cmd.Context(), refresh)
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(cmd.OutOrStdout(), struct {
					*gpu.Inventory
					Devices []manager.Status `json:"devices"`
				}{inv, list})
			}
			return printGPUs(cmd.OutOrStdout(), inv, list)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "discover the GPUs again instead of using the cached inventory")
	return cmd
}

func printGPUs(out io.Writer, inv *gpu.Inventory, list []manager.Status) error {
	if inv.Simulated {
		fmt.Fprintf(out, "SIMULATED GPUs (%s): no real GPU is behind them\n", inv.Backend)
	}
	if len(list) == 0 {
		fmt.Fprintf(out, "no GPUs: %s\n", inv.Reason)
		return nil
	}
	if inv.Source == "procfs" {
		fmt.Fprintf(out, "%s\n", inv.Reason)
	}
	if inv.DriverVersion != "" {
		fmt.Fprintf(out, "driver %s", inv.DriverVersion)
		if inv.CUDAVersion != "" {
			fmt.Fprintf(out, ", CUDA %s", inv.CUDAVersion)
		}
		fmt.Fprintln(out)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "GPU\tUUID\tMODEL\tMEMORY\tPCI BUS ID\tNUMA\tCC\tHEALTH\tCONTAINER")
	health := func(mk *manager.Mark) string {
		if mk != nil {
			return "UNHEALTHY: " + mk.Reason
		}
		return "healthy"
	}
	holder := func(id string) string {
		if id == "" {
			return "-"
		}
		return id[:min(12, len(id))]
	}
	for _, s := range list {
		numa := "-"
		if s.NUMANode >= 0 {
			numa = strconv.Itoa(s.NUMANode)
		}
		cc := s.ComputeCapability
		if cc == "" {
			cc = "-"
		}
		model := s.Model
		if s.MIG {
			model += " (MIG mode)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Index, s.UUID, model, api.FormatSize(uint64(s.MemoryBytes)),
			s.PCIBusID, numa, cc, health(s.Unhealthy), holder(s.Container))
		for _, m := range s.MIGDevices {
			fmt.Fprintf(tw, "%d:%d\t%s\t  MIG %s (GI %d, CI %d)\t%s\t-\t%s\t-\t%s\t%s\n", s.Index, m.Index, m.UUID, m.Profile,
				m.GPUInstance, m.ComputeInstance, api.FormatSize(uint64(m.MemoryBytes)), numa, health(m.Unhealthy), holder(m.Container))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t := inv.Topology
	if t == nil || len(t.Devices) < 2 {
		return nil
	}
	fmt.Fprintln(out)
	for i := range t.Devices {
		fmt.Fprintf(tw, "\tGPU%d", i)
	}
	fmt.Fprintln(tw, "\tNUMA")
	for i := range t.Devices {
		fmt.Fprintf(tw, "GPU%d", i)
		for j := range t.Devices {
			switch {
			case i == j:
				fmt.Fprint(tw, "\tX")
			case t.NVLinks[i][j] > 0:
				fmt.Fprintf(tw, "\tNV%d", t.NVLinks[i][j])
			default:
				fmt.Fprintf(tw, "\t%s", t.PCIe[i][j])
			}
		}
		numa := "-"
		if n := t.Devices[i].NUMANode; n >= 0 {
			numa = strconv.Itoa(n)
		}
		fmt.Fprintf(tw, "\t%s\n", numa)
	}
	return tw.Flush()
}

func newGPUWatchCmd(g *globals) *cobra.Command {
	var reprobe time.Duration
	cmd := &cobra.Command{
		Use:   "watch [--reprobe-interval D]",
		Short: "Follow GPU health: take failing GPUs out of service, put them back when they recover",
		Long: `Follow the GPUs' NVML events until interrupted. An XID error (except those a
program's own fault causes: 13, 31, 43, 45, 68 and 109) or a double-bit ECC
error marks its GPU unhealthy: no container is given it until it recovers.
Every --reprobe-interval, each unhealthy GPU is probed (it must answer NVML,
with no retired pages pending and no failed row remapping) and put back in
service when it passes. Changes are printed one per line, and shown by
caisson gpu ls and caisson node resources.

Run it beside the agent (for instance as a systemd service). NVML reports
only events that happen while someone listens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reprobe <= 0 {
				return fmt.Errorf("--reprobe-interval %s: must be positive: %w", reprobe, api.ErrInvalid)
			}
			m, err := g.gpus()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			inv, err := m.Inventory(ctx, false)
			if err != nil {
				return err
			}
			sim := ""
			if inv.Simulated {
				sim = "SIMULATED "
			}
			ready := func() { fmt.Fprintf(out, "watching %d %sGPUs (%s)\n", len(inv.Devices), sim, inv.Backend) }
			return m.Watch(ctx, reprobe, ready, func(c manager.Change) {
				switch {
				case c.Healthy:
					fmt.Fprintf(out, "gpu %d %s healthy again: %s\n", c.Index, c.UUID, c.Reason)
				case c.Event != nil && c.Changed:
					fmt.Fprintf(out, "gpu %d %s unhealthy: %s\n", c.Index, c.UUID, c.Reason)
				case c.Event != nil:
					fmt.Fprintf(out, "gpu %d %s still unhealthy: another %s\n", c.Index, c.UUID, c.Reason)
				default:
					fmt.Fprintf(out, "gpu %d %s still unhealthy: probe failed: %s\n", c.Index, c.UUID, c.Reason)
				}
			})
		},
	}
	cmd.Flags().DurationVar(&reprobe, "reprobe-interval", time.Minute, "how often unhealthy GPUs are probed")
	return cmd
}

func newGPUSimulateCmd(g *globals) *cobra.Command {
	var xid uint64
	var dbe, recover bool
	var fault, mig string
	cmd := &cobra.Command{
		Use:   "simulate GPU (--xid N | --dbe) [--fault REASON] | GPU --recover | GPU --mig PROFILE[,PROFILE...]|off",
		Short: "Make a simulated GPU report an error, fail and recover, or change its MIG layout (mock backends only)",
		Long: `Inject an NVML event on a GPU of a simulated machine, as a real one reports a
hardware fault: --xid N an XID error, --dbe a double-bit ECC error (it also
counts in caisson stats). caisson gpu watch receives it through NVML's event
API like a real one. With --fault, the GPU also fails every probe until
--recover, so it stays unhealthy; without, the next probe passes and it
returns to service. GPU is an index or a UUID, or the UUID of a MIG device:
its event then names the MIG device's GPU and compute instances, and takes
only that MIG device out of service.

--mig sets the MIG layout of a GPU: MIG mode on, with one GPU instance of
each profile in the list (a compute instance profile such as 1c.3g.20gb
fills its GPU instance with compute instances of that size), or --mig off.
The profiles and placements are the simulated GPU's: an A100-40GB has
1g.5gb (seven fit), 1g.5gb+me, 1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb and
7g.40gb; an H100 1g.10gb, 1g.10gb+me, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb and
7g.80gb; a B200 1g.45gb, 1g.45gb+me, 2g.45gb, 3g.90gb, 4g.90gb and 7g.180gb.
A layout that does not fit is refused with the reason, a profile the GPU
does not have with the list of those it has. The layout of a GPU
that a container holds, whole or any of its MIG devices, cannot change.
Every caisson-nvml run makes the layout again (the work dir's
gpu/sim/mig.json); the inventory, the CDI spec and the fake nodes are
renewed at once.`,
		Example: `  caisson --gpu-backend mock:dgxa100 gpu simulate 3 --xid 79 --fault "fallen off the bus"
  caisson --gpu-backend mock:dgxa100 gpu simulate 3 --recover
  caisson --gpu-backend mock:dgxa100 gpu simulate GPU-… --dbe
  caisson --gpu-backend mock:dgxa100 gpu simulate 0 --mig 1g.5gb,1g.5gb,2g.10gb,3g.20gb
  caisson --gpu-backend mock:dgxa100 gpu simulate MIG-… --xid 94
  caisson --gpu-backend mock:dgxa100 gpu simulate 0 --mig off`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !gpu.Simulated(g.cfg.GPU.Backend) {
				return fmt.Errorf("gpu simulate works on simulated GPUs only (--gpu-backend %s): %w", strings.Join(gpu.Backends[1:], ", "), api.ErrInvalid)
			}
			setMIG := cmd.Flags().Changed("mig")
			set := 0
			for _, b := range []bool{xid != 0, dbe, recover, setMIG} {
				if b {
					set++
				}
			}
			if set != 1 || fault != "" && (recover || setMIG) {
				return fmt.Errorf("give one of --xid N, --dbe, --recover and --mig (--fault goes with --xid or --dbe): %w", api.ErrInvalid)
			}
			var profiles []string
			if setMIG {
				var err error
				if profiles, err = api.ParseMIGLayout(mig); err != nil {
					return fmt.Errorf("--mig: %w", err)
				}
			}
			m, err := g.gpus()
			if err != nil {
				return err
			}
			inv, err := m.Inventory(cmd.Context(), false)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			i := slices.IndexFunc(inv.Devices, func(d gpu.Device) bool { return d.UUID == args[0] || strconv.Itoa(d.Index) == args[0] })
			j := -1
			if i < 0 {
				var ok bool
				if i, j, ok = inv.FindMIG(args[0]); !ok {
					return fmt.Errorf("no GPU or MIG device %q on this simulated machine (caisson gpu ls lists them): %w", args[0], api.ErrNotFound)
				}
			}
			d := inv.Devices[i]
			// name is how the output names the target: "gpu 3 GPU-…" or
			// "gpu 0:1 MIG-…".
			uuid, name := d.UUID, fmt.Sprintf("gpu %d %s", d.Index, d.UUID)
			if j >= 0 {
				uuid, name = d.MIGDevices[j].UUID, fmt.Sprintf("gpu %d:%d %s", d.Index, d.MIGDevices[j].Index, d.MIGDevices[j].UUID)
			}
			switch {
			case setMIG && j >= 0:
				return fmt.Errorf("%s is a MIG device: --mig sets the layout of its GPU, %d: %w", uuid, d.Index, api.ErrInvalid)
			case setMIG:
				now, err := m.SetMIG(cmd.Context(), d.UUID, profiles)
				if err != nil {
					return err
				}
				if !now.MIG {
					fmt.Fprintf(out, "%s: SIMULATED MIG mode off\n", name)
					return nil
				}
				fmt.Fprintf(out, "%s: SIMULATED MIG mode on, %s\n", name, plural(len(now.MIGDevices), "MIG device"))
				for _, mig := range now.MIGDevices {
					fmt.Fprintf(out, "  %d:%d %s %s (GPU instance %d, compute instance %d, %s)\n", now.Index, mig.Index, mig.UUID, mig.Profile,
						mig.GPUInstance, mig.ComputeInstance, api.FormatSize(uint64(mig.MemoryBytes)))
				}
				return nil
			case recover:
				if err := m.SetFault(uuid, ""); err != nil {
					return err
				}
				fmt.Fprintf(out, "%s: fault cleared; its next probe passes\n", name)
				return nil
			}
			if fault != "" {
				if err := m.SetFault(uuid, fault); err != nil {
					return err
				}
			}
			ev := gpu.Event{UUID: d.UUID, Type: gpu.EventXID, XID: xid, Time: time.Now().UTC()}
			if dbe {
				ev.Type, ev.XID = gpu.EventDBE, 0
			}
			if j >= 0 {
				gi, ci := uint32(d.MIGDevices[j].GPUInstance), uint32(d.MIGDevices[j].ComputeInstance)
				ev.GPUInstance, ev.ComputeInstance = &gi, &ci
			}
			if err := m.Inject(ev); err != nil {
				return err
			}
			what := fmt.Sprintf("XID %d", xid)
			if dbe {
				what = "a double-bit ECC error"
			}
			fmt.Fprintf(out, "%s: SIMULATED %s sent\n", name, what)
			return nil
		},
	}
	cmd.Flags().Uint64Var(&xid, "xid", 0, "send XID error N")
	cmd.Flags().BoolVar(&dbe, "dbe", false, "send a double-bit ECC error")
	cmd.Flags().StringVar(&fault, "fault", "", "also make the GPU fail its probes, for REASON, until --recover")
	cmd.Flags().BoolVar(&recover, "recover", false, "let the GPU pass its probes again")
	cmd.Flags().StringVar(&mig, "mig", "", "set the GPU's MIG layout: MIG profiles separated by commas (1g.5gb,3g.20gb), or off")
	return cmd
}
