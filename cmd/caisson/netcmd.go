package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/caisson/caisson/cni"
	"github.com/caisson/caisson/containerizer"
)

func newNetworkCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage CNI networks (ls, inspect, create, rm, check)",
		Long: `Networks are CNI configuration lists in --cni-config-dir. A container joins
them with --network NAME (repeatable: eth0, eth1, ...). The default network
(--default-network, "caisson") is written as a bridge network on first use
when no file defines it.`,
	}
	cmd.AddCommand(newNetworkLsCmd(g), newNetworkInspectCmd(g), newNetworkCreateCmd(g), newNetworkRmCmd(g), newNetworkCheckCmd(g))
	return cmd
}

// openNetwork opens the containerizer (which recovers first, so attachments
// of containers that are gone are released) and the network isolator.
func (g *globals) openNetwork(ctx context.Context) (*containerizer.Containerizer, *cni.Isolator, error) {
	cz, err := g.open(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	iso, err := g.network(g.logger())
	return cz, iso, err
}

func newNetworkLsCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ls [OPTIONS]",
		Short: "List the networks of the config dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			_, iso, err := g.openNetwork(cmd.Context())
			if err != nil {
				return err
			}
			nets, bad, err := iso.Networks()
			if err != nil {
				return err
			}
			atts, err := iso.Attachments("")
			if err != nil {
				return err
			}
			count := map[string]int{}
			for _, a := range atts {
				count[a.Network.Name]++
			}
			for _, b := range bad {
				g.logger().Warn("unreadable network config", "file", b.File, "err", b.Err)
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				if nets == nil {
					nets = []*cni.Network{}
				}
				return printJSON(out, nets)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCNI VERSION\tPLUGINS\tSUBNETS\tBRIDGE\tCONTAINERS\tFILE")
			for _, n := range nets {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.Name, n.CNIVersion, strings.Join(n.Plugins, ","),
					orDash(strings.Join(n.Subnets, ",")), orDash(n.Bridge), count[n.Name], n.File)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newNetworkInspectCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Show networks as JSON: configuration and attached containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, iso, err := g.openNetwork(cmd.Context())
			if err != nil {
				return err
			}
			type view struct {
				*cni.Network
				Attachments []cni.Attachment `json:"attachments"`
			}
			var out []view
			for _, name := range args {
				n, err := iso.Network(name)
				if err != nil {
					return err
				}
				atts, err := iso.Attachments(name)
				if err != nil {
					return err
				}
				if atts == nil {
					atts = []cni.Attachment{}
				}
				out = append(out, view{Network: n, Attachments: atts})
			}
			return printJSON(cmd.OutOrStdout(), out)
		},
	}
}

func newNetworkCreateCmd(g *globals) *cobra.Command {
	var o cni.CreateOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] --subnet CIDR NETWORK",
		Short: "Write a bridge network (bridge, host-local, portmap, firewall, bandwidth, loopback)",
		Long: `Write a bridge network's configuration list to --cni-config-dir.

The subnet must leave room for a gateway and containers (/30 or larger in
IPv4, /126 in IPv6) and stay clear of loopback, link-local, multicast,
0.0.0.0/8, 240.0.0.0/4 (with the broadcast address), IPv4-mapped and
IPv4-compatible IPv6, another network's subnet and this host's addresses.
The gateway, the subnet's first address by default, must be one of its host
addresses (not the network or broadcast address).

When no interface has the bridge's name, caisson creates the bridge before the
network's first container and deletes it at "network rm". An existing
interface of that name is used only if it is a bridge nobody uses (not a port
of another device, without ports, without addresses but the gateway and the
IPv6 link-local ones the kernel adds); caisson never deletes it. Nor does it
delete a bridge that appears before the network's first container (another
work dir's containers on the network may have made it): that one is used
unless it is not a bridge or is a port of another device.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			iso, err := g.network(g.logger())
			if err != nil {
				return err
			}
			n, err := iso.Create(o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), n.Name)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Subnet, "subnet", "", "address range of the containers, e.g. 10.42.0.0/24 (required; see above for what is refused)")
	fl.StringVar(&o.Gateway, "gateway", "", "the bridge's address (default: the subnet's first)")
	fl.StringVar(&o.Bridge, "bridge", "", "bridge device (default: cs-NETWORK, cut to 15 bytes); an existing one must be an unused bridge")
	fl.StringVar(&o.CNIVersion, "cni-version", "1.0.0", "1.0.0 (Debian's plugins) or 1.1.0 (plugins v1.6 and later: GC, STATUS)")
	fl.StringArrayVar(&o.DNS, "dns", nil, "DNS server for containers whose plugins name none (repeatable)")
	fl.StringArrayVar(&o.DNSSearch, "dns-search", nil, "DNS search domain (repeatable)")
	fl.StringArrayVar(&o.DNSOptions, "dns-option", nil, "resolv.conf option (repeatable)")
	fl.IntVar(&o.MTU, "mtu", 0, "MTU of the bridge and veths (default: the plugin's)")
	fl.BoolVar(&o.NoMasquerade, "no-masquerade", false, "do not NAT traffic leaving the subnet")
	fl.BoolVar(&o.NoBandwidth, "no-bandwidth", false, "leave the bandwidth plugin out (no --ingress-rate/--egress-rate)")
	_ = cmd.MarkFlagRequired("subnet")
	return cmd
}

func newNetworkRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NETWORK...",
		Short: "Remove networks: their file, leases and the bridge caisson created (refused while containers are attached)",
		Long: `Remove networks: their configuration file and leases, and their bridge when
caisson created it and no other network or device uses it. A bridge that
existed before the network, or that someone else made before its first
container, is left in place. Refused while containers are attached: this work
dir's, and those of other work dirs or runtimes that hold a lease of the
network (they share it when they share --cni-config-dir).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, iso, err := g.openNetwork(cmd.Context())
			if err != nil {
				return err
			}
			var first error
			for _, name := range args {
				if err := iso.Remove(name); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "caisson: %v\n", err)
					if first == nil {
						first = err
					}
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			if first != nil {
				return exitError{exitCaissonError}
			}
			return nil
		},
	}
}

func newNetworkCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check CONTAINER...",
		Short: "Run CNI CHECK on each network of running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cz, iso, err := g.openNetwork(cmd.Context())
			if err != nil {
				return err
			}
			return forEach(cz, args, func(id string) error {
				if err := iso.Check(cmd.Context(), id); err != nil {
					return fmt.Errorf("container %s: %w", containerizer.ShortID(id), err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", containerizer.ShortID(id))
				return nil
			})
		},
	}
}
