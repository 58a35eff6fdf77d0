package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/caisson/caisson/api"
)

// confExts are the file name extensions read from the config dir, in the
// order libcni reads them.
var confExts = []string{".conflist", ".conf", ".json"}

// Network is one network configuration list from the config dir.
type Network struct {
	Name       string `json:"name"`
	File       string `json:"file"`
	CNIVersion string `json:"cni_version"`
	// Plugins are the plugin types, in chain order.
	Plugins []string `json:"plugins"`
	// Capabilities are the runtime capabilities some plugin declares
	// (portMappings, bandwidth, ...).
	Capabilities []string `json:"capabilities,omitempty"`
	// Subnets are the host-local IPAM ranges; Bridge the bridge plugin's
	// device.
	Subnets []string `json:"subnets,omitempty"`
	Bridge  string   `json:"bridge,omitempty"`
	// DNS is the network's default DNS for containers whose plugins return
	// none: the conflist's top-level "dns" object (a Caisson extension).
	DNS *types.DNS `json:"dns,omitempty"`
	// Config is the whole configuration list with every plugin inlined:
	// exactly what an attachment uses and keeps for its DEL.
	Config json.RawMessage `json:"config"`

	list *libcni.NetworkConfigList
}

// hasCapability reports whether a plugin of the network declares c.
func (n *Network) hasCapability(c string) bool {
	for _, x := range n.Capabilities {
		if x == c {
			return true
		}
	}
	return false
}

// parseNetwork makes a Network out of a loaded list, inlining plugins that
// came from the network's sub-directory so the configuration is whole.
func parseNetwork(list *libcni.NetworkConfigList, file string) (*Network, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(list.Bytes, &top); err != nil {
		return nil, err
	}
	var inline []json.RawMessage
	if raw, ok := top["plugins"]; ok {
		if err := json.Unmarshal(raw, &inline); err != nil {
			return nil, fmt.Errorf("plugins: %w", err)
		}
	}
	if len(inline) != len(list.Plugins) {
		plugins := make([]json.RawMessage, len(list.Plugins))
		for i, p := range list.Plugins {
			plugins[i] = p.Bytes
		}
		top["plugins"], _ = json.Marshal(plugins)
		top["loadOnlyInlinedPlugins"] = json.RawMessage("true")
		data, err := json.Marshal(top)
		if err != nil {
			return nil, err
		}
		if list, err = libcni.NetworkConfFromBytes(data); err != nil {
			return nil, err
		}
	}
	n := &Network{Name: list.Name, File: file, CNIVersion: list.CNIVersion, Config: list.Bytes, list: list}
	if raw, ok := top["dns"]; ok {
		var dns types.DNS
		if err := json.Unmarshal(raw, &dns); err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
		n.DNS = &dns
	}
	caps := map[string]bool{}
	for i, p := range list.Plugins {
		if p.Network == nil || p.Network.Type == "" {
			return nil, fmt.Errorf("plugin %d has no type", i)
		}
		n.Plugins = append(n.Plugins, p.Network.Type)
		for c, on := range p.Network.Capabilities {
			if on {
				caps[c] = true
			}
		}
		var extra struct {
			Bridge string `json:"bridge"`
			IPAM   struct {
				Type   string `json:"type"`
				Subnet string `json:"subnet"`
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		}
		if json.Unmarshal(p.Bytes, &extra) == nil {
			if p.Network.Type == "bridge" && n.Bridge == "" {
				n.Bridge = extra.Bridge
				if n.Bridge == "" {
					n.Bridge = "cni0" // the bridge plugin's default
				}
			}
			if extra.IPAM.Subnet != "" {
				n.Subnets = append(n.Subnets, extra.IPAM.Subnet)
			}
			for _, set := range extra.IPAM.Ranges {
				for _, r := range set {
					if r.Subnet != "" {
						n.Subnets = append(n.Subnets, r.Subnet)
					}
				}
			}
		}
	}
	for c := range caps {
		n.Capabilities = append(n.Capabilities, c)
	}
	sort.Strings(n.Capabilities)
	return n, nil
}

// networkFromBytes parses a kept configuration (a checkpoint's, or the
// libcni cache's).
func networkFromBytes(data []byte) (*Network, error) {
	list, err := libcni.NetworkConfFromBytes(data)
	if err != nil {
		return nil, err
	}
	return parseNetwork(list, "")
}

// loadFile reads one config file: a list, or a single plugin configuration
// (the deprecated .conf form) made into a list of one.
func loadFile(path string) (*Network, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Plugins json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	var list *libcni.NetworkConfigList
	if probe.Plugins == nil && filepath.Ext(path) != ".conflist" {
		conf, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return nil, err
		}
		wrapped, err := json.Marshal(map[string]any{
			"cniVersion": conf.Network.CNIVersion, "name": conf.Network.Name,
			"plugins": []json.RawMessage{conf.Bytes},
		})
		if err != nil {
			return nil, err
		}
		if list, err = libcni.NetworkConfFromBytes(wrapped); err != nil {
			return nil, err
		}
	} else if list, err = libcni.NetworkConfFromFile(path); err != nil {
		return nil, err
	}
	if list.Name == "" {
		return nil, errors.New("no network name")
	}
	return parseNetwork(list, path)
}

// configFiles lists the config dir's files in the order libcni reads them.
func configFiles(dir string) ([]string, error) {
	files, err := libcni.ConfFiles(dir, confExts)
	if err != nil {
		return nil, fmt.Errorf("read network config dir %s: %w", dir, err)
	}
	sort.Strings(files)
	return files, nil
}

// BadFile is a config file that could not be read.
type BadFile struct {
	File string
	Err  error
}

// Networks reads every network in the config dir. The first file (in name
// order) that defines a name wins, as in libcni; files that cannot be read
// are returned apart.
func (iso *Isolator) Networks() ([]*Network, []BadFile, error) {
	files, err := configFiles(iso.cfg.ConfDir)
	if err != nil {
		return nil, nil, err
	}
	var nets []*Network
	var bad []BadFile
	seen := map[string]bool{}
	for _, f := range files {
		n, err := loadFile(f)
		if err != nil {
			bad = append(bad, BadFile{File: f, Err: err})
			continue
		}
		if seen[n.Name] {
			continue
		}
		seen[n.Name] = true
		nets = append(nets, n)
	}
	return nets, bad, nil
}

// Network finds one network by name. A file that defines it but cannot be
// parsed is an error naming the file; a name no file defines is
// api.ErrNotFound (listing the unreadable files, which may be the cause).
func (iso *Isolator) Network(name string) (*Network, error) {
	files, err := configFiles(iso.cfg.ConfDir)
	if err != nil {
		return nil, err
	}
	var unreadable []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			unreadable = append(unreadable, fmt.Sprintf("%s: %v", filepath.Base(f), err))
			continue
		}
		var probe struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(data, &probe); err != nil {
			unreadable = append(unreadable, fmt.Sprintf("%s is not valid JSON: %v", filepath.Base(f), err))
			continue
		}
		if probe.Name != name {
			continue
		}
		n, err := loadFile(f)
		if err != nil {
			return nil, fmt.Errorf("network %q: config %s: %v: %w", name, f, err, api.ErrInvalid)
		}
		return n, nil
	}
	msg := fmt.Sprintf("network %q not found in %s", name, iso.cfg.ConfDir)
	if len(unreadable) > 0 {
		msg += " (unreadable: " + strings.Join(unreadable, "; ") + ")"
	}
	return nil, fmt.Errorf("%s: %w", msg, api.ErrNotFound)
}

// CreateOptions describe a bridge network for Create.
type CreateOptions struct {
	Name string
	// Subnet is the IPv4 or IPv6 range containers get addresses from.
	Subnet string
	// Gateway defaults to the subnet's first address.
	Gateway string
	// Bridge defaults to a name derived from the network's.
	Bridge string
	// CNIVersion defaults to 1.0.0, which Debian's plugins (1.1.1) speak;
	// 1.1.0 needs plugins v1.6 or later and brings GC and STATUS.
	CNIVersion string
	// DNS servers, search domains and options written to containers'
	// resolv.conf when the plugins return none.
	DNS, DNSSearch, DNSOptions []string
	MTU                        int
	// NoMasquerade leaves traffic leaving the subnet un-NATed.
	NoMasquerade bool
	// NoBandwidth leaves the bandwidth plugin out of the chain.
	NoBandwidth bool
}

// validIfName reports whether s can name a network interface (the kernel's
// dev_valid_name).
func validIfName(s string) bool {
	return s != "" && len(s) < 16 && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n\r\v\f")
}

// bridgeName derives a bridge device name (at most 15 bytes).
func bridgeName(network string) string {
	b := "cs-" + network
	if len(b) > 15 {
		b = b[:15]
	}
	return b
}

// unusable are the address ranges a container subnet may not overlap:
// addresses a bridge cannot route to containers, and IPv4 written inside
// IPv6.
var unusable = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" (0.0.0.0/8, with the unspecified address)`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (127.0.0.0/8)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (169.254.0.0/16)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (224.0.0.0/4)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4, with the limited broadcast address)"},
	{netip.MustParsePrefix("::/128"), "the unspecified address (::)"},
	{netip.MustParsePrefix("::1/128"), "loopback (::1)"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped (::ffff:0:0/96)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (::/96, deprecated)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
}

// parseSubnet checks a container subnet and its gateway (the subnet's
// first address when empty): a range that can hold a gateway and at least
// one container, outside every unusable range, and a gateway inside it
// that is neither its network nor its broadcast address.
func parseSubnet(subnet, gateway string) (netip.Prefix, netip.Addr, error) {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return p, netip.Addr{}, fmt.Errorf("subnet %q: %v: %w", subnet, err, api.ErrInvalid)
	}
	p = p.Masked()
	for _, u := range unusable {
		if p.Overlaps(u.prefix) {
			return p, netip.Addr{}, fmt.Errorf("subnet %s overlaps %s: containers cannot use it: %w", p, u.what, api.ErrInvalid)
		}
	}
	if p.Addr().BitLen()-p.Bits() < 2 {
		return p, netip.Addr{}, fmt.Errorf("subnet %s has no room for a gateway and containers (/%d at most): %w", p, p.Addr().BitLen()-2, api.ErrInvalid)
	}
	last := lastAddr(p)
	if gateway == "" {
		return p, p.Addr().Next(), nil
	}
	gw, err := netip.ParseAddr(gateway)
	switch {
	case err != nil || gw.Zone() != "":
		return p, gw, fmt.Errorf("gateway %q is not an IP address: %w", gateway, api.ErrInvalid)
	case gw.Is4In6():
		return p, gw, fmt.Errorf("gateway %s is an IPv4-mapped address: write it as IPv4: %w", gw, api.ErrInvalid)
	case !p.Contains(gw):
		return p, gw, fmt.Errorf("gateway %s is not an address in %s: %w", gw, p, api.ErrInvalid)
	case gw == p.Addr():
		return p, gw, fmt.Errorf("gateway %s is the network address of %s: %w", gw, p, api.ErrInvalid)
	case gw.Is4() && gw == last:
		return p, gw, fmt.Errorf("gateway %s is the broadcast address of %s: %w", gw, p, api.ErrInvalid)
	}
	return p, gw, nil
}

// lastAddr is the last address of a prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		switch bit := i * 8; {
		case bit >= p.Bits():
			b[i] = 0xff
		case bit+8 > p.Bits():
			b[i] |= 0xff >> (p.Bits() - bit)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// confList builds the configuration list of a bridge network: bridge with
// host-local IPAM, portmap, firewall, bandwidth and loopback.
func (iso *Isolator) confList(o CreateOptions) ([]byte, error) {
	if o.CNIVersion == "" {
		o.CNIVersion = "1.0.0"
	}
	if o.Bridge == "" {
		o.Bridge = bridgeName(o.Name)
	}
	if !validIfName(o.Bridge) {
		return nil, fmt.Errorf("bridge name %q is not an interface name (1 to 15 bytes, no '/', ':' or space): %w", o.Bridge, api.ErrInvalid)
	}
	subnet, gw, err := parseSubnet(o.Subnet, o.Gateway)
	if err != nil {
		return nil, err
	}
	rng := map[string]any{"subnet": subnet.String()}
	if o.Gateway != "" {
		rng["gateway"] = gw.String()
	}
	defaultRoute := "0.0.0.0/0"
	if subnet.Addr().Is6() {
		defaultRoute = "::/0"
	}
	bridge := map[string]any{
		"type": "bridge", "bridge": o.Bridge, "isGateway": true, "ipMasq": !o.NoMasquerade, "hairpinMode": true,
		"ipam": map[string]any{
			"type": "host-local", "ranges": [][]any{{rng}},
			"routes":  []any{map[string]string{"dst": defaultRoute}},
			"dataDir": filepath.Join(iso.cfg.StateDir, "networks"),
		},
	}
	if o.MTU > 0 {
		bridge["mtu"] = o.MTU
	}
	plugins := []any{
		bridge,
		map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		map[string]any{"type": "firewall"},
	}
	if !o.NoBandwidth {
		plugins = append(plugins, map[string]any{"type": "bandwidth", "capabilities": map[string]bool{"bandwidth": true}})
	}
	plugins = append(plugins, map[string]any{"type": "loopback"})
	conf := map[string]any{"cniVersion": o.CNIVersion, "name": o.Name, "plugins": plugins}
	if len(o.DNS)+len(o.DNSSearch)+len(o.DNSOptions) > 0 {
		for _, s := range o.DNS {
			if net.ParseIP(s) == nil {
				return nil, fmt.Errorf("DNS server %q is not an IP address: %w", s, api.ErrInvalid)
			}
		}
		conf["dns"] = types.DNS{Nameservers: o.DNS, Search: o.DNSSearch, Options: o.DNSOptions}
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	// What we write must load.
	if _, err := networkFromBytes(data); err != nil {
		return nil, fmt.Errorf("network %q: %v: %w", o.Name, err, api.ErrInvalid)
	}
	return append(data, '\n'), nil
}
