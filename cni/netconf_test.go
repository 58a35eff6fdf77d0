package cni

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func newConfIsolator(t *testing.T) *Isolator {
	t.Helper()
	dir := t.TempDir()
	iso, err := New(Config{ConfDir: filepath.Join(dir, "net.d"), StateDir: filepath.Join(dir, "state"), RunDir: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(iso.cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return iso
}

func writeConf(t *testing.T, iso *Isolator, name, content string) {
	t.Helper()
	p := filepath.Join(iso.cfg.ConfDir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadNetworks(t *testing.T) {
	iso := newConfIsolator(t)
	writeConf(t, iso, "10-a.conflist", `{"cniVersion":"1.0.0","name":"a","dns":{"nameservers":["10.0.0.53"]},
		"plugins":[{"type":"bridge","bridge":"br-a","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]}},
		{"type":"portmap","capabilities":{"portMappings":true}}]}`)
	writeConf(t, iso, "20-a-shadowed.conflist", `{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"ptp"}]}`)
	writeConf(t, iso, "30-single.conf", `{"cniVersion":"0.4.0","name":"single","type":"macvlan","ipam":{"type":"host-local","subnet":"10.2.0.0/24"}}`)
	// Spec 1.1: plugins aggregated from <confdir>/<name>/*.conf.
	writeConf(t, iso, "40-agg.conflist", `{"cniVersion":"1.1.0","name":"agg","plugins":[{"type":"bridge"}]}`)
	writeConf(t, iso, "agg/50-extra.conf", `{"type":"bandwidth","capabilities":{"bandwidth":true}}`)

	nets, bad, err := iso.Networks()
	if err != nil || len(bad) != 0 {
		t.Fatalf("Networks: %v, bad %v", err, bad)
	}
	var names []string
	for _, n := range nets {
		names = append(names, n.Name)
	}
	if diff := cmp.Diff([]string{"a", "single", "agg"}, names); diff != "" {
		t.Fatalf("names (-want +got):\n%s", diff)
	}
	a := nets[0]
	if a.Bridge != "br-a" || !cmp.Equal(a.Subnets, []string{"10.1.0.0/24"}) || !a.hasCapability("portMappings") ||
		a.DNS == nil || a.DNS.Nameservers[0] != "10.0.0.53" || !strings.HasSuffix(a.File, "10-a.conflist") {
		t.Errorf("network a = %+v", a)
	}
	if s := nets[1]; !cmp.Equal(s.Plugins, []string{"macvlan"}) || !cmp.Equal(s.Subnets, []string{"10.2.0.0/24"}) {
		t.Errorf("single-plugin network = %+v", s)
	}
	agg := nets[2]
	if !cmp.Equal(agg.Plugins, []string{"bridge", "bandwidth"}) || !agg.hasCapability("bandwidth") {
		t.Fatalf("aggregated network = %+v", agg)
	}
	// The kept configuration is whole: it loads without the directory.
	kept, err := networkFromBytes(agg.Config)
	if err != nil || !cmp.Equal(kept.Plugins, agg.Plugins) {
		t.Errorf("kept configuration = %+v, %v", kept, err)
	}
}

func TestNetworkErrors(t *testing.T) {
	iso := newConfIsolator(t)
	writeConf(t, iso, "10-garbage.conflist", `{"name":`)
	writeConf(t, iso, "20-notype.conflist", `{"cniVersion":"1.0.0","name":"notype","plugins":[{"bridge":"x"}]}`)
	// A list without a name would take its plugins from the config dir's
	// own *.conf files (libcni reads <dir>/<name>/ for more plugins).
	writeConf(t, iso, "30-noname.conflist", `{"cniVersion":"1.0.0","name":"","plugins":[{"type":"ptp"}]}`)
	_, err := iso.Network("nosuch")
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "10-garbage.conflist is not valid JSON") {
		t.Errorf("unknown network: %v", err)
	}
	_, err = iso.Network("notype")
	if !errors.Is(err, api.ErrInvalid) || !strings.Contains(err.Error(), "20-notype.conflist") {
		t.Errorf("plugin without a type: %v", err)
	}
	if _, err := iso.Network(""); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a network without a name: %v", err)
	}
	if _, bad, _ := iso.Networks(); len(bad) != 3 {
		t.Errorf("bad files = %v, want 3", bad)
	}
}

func TestConfList(t *testing.T) {
	iso := newConfIsolator(t)
	data, err := iso.confList(CreateOptions{Name: "n", Subnet: "10.9.0.0/24", DNS: []string{"10.9.0.53"}, MTU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	n, err := networkFromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(n.Plugins, []string{"bridge", "portmap", "firewall", "bandwidth", "loopback"}) || n.CNIVersion != "1.0.0" ||
		n.Bridge != "cs-n" || !cmp.Equal(n.Capabilities, []string{"bandwidth", "portMappings"}) || n.DNS.Nameservers[0] != "10.9.0.53" {
		t.Errorf("network = %+v", n)
	}
	for _, o := range []CreateOptions{
		{Name: "n", Subnet: "10.9.0.0"},
		{Name: "n", Subnet: "10.9.0.0/31"},
		{Name: "n", Subnet: "10.9.0.0/24", Gateway: "10.8.0.1"},
		{Name: "n", Subnet: "10.9.0.0/24", Bridge: "a-very-long-bridge-name"},
		{Name: "n", Subnet: "10.9.0.0/24", Bridge: "../../x"},
		{Name: "n", Subnet: "10.9.0.0/24", Bridge: "br:0"},
		{Name: "n", Subnet: "10.9.0.0/24", Bridge: "br 0"},
		{Name: "n", Subnet: "10.9.0.0/24", Bridge: ".."},
		{Name: "n", Subnet: "10.9.0.0/24", DNS: []string{"dns.example"}},
	} {
		if _, err := iso.confList(o); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("confList(%+v) = %v, want ErrInvalid", o, err)
		}
	}
	if _, err := iso.Create(CreateOptions{Name: "host", Subnet: "10.9.0.0/24"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a network named host: %v", err)
	}
}

// TestParseSubnet: a subnet must hold a gateway and containers and lie
// outside every range a bridge cannot serve; the gateway must be one of its
// host addresses.
func TestParseSubnet(t *testing.T) {
	for _, tc := range []struct{ subnet, gateway, wantSubnet, wantGateway string }{
		{"10.9.0.0/24", "", "10.9.0.0/24", "10.9.0.1"},
		{"10.9.0.77/24", "", "10.9.0.0/24", "10.9.0.1"},
		{"10.9.0.0/30", "", "10.9.0.0/30", "10.9.0.1"},
		{"10.9.0.0/24", "10.9.0.254", "10.9.0.0/24", "10.9.0.254"},
		{"100.64.0.0/10", "", "100.64.0.0/10", "100.64.0.1"},
		{"fd00:1::/64", "", "fd00:1::/64", "fd00:1::1"},
		{"fd00:1::/126", "", "fd00:1::/126", "fd00:1::1"},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff"},
	} {
		t.Run(tc.subnet+"_"+tc.gateway, func(t *testing.T) {
			p, gw, err := parseSubnet(tc.subnet, tc.gateway)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tc.wantSubnet, tc.wantGateway}, []string{p.String(), gw.String()}); diff != "" {
				t.Errorf("subnet, gateway (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCreateRefusesUnusableSubnets: Create refuses, with api.ErrInvalid and
// without writing anything, every subnet or gateway containers cannot use.
func TestCreateRefusesUnusableSubnets(t *testing.T) {
	iso := newConfIsolator(t)
	for _, tc := range []struct{ name, subnet, gateway string }{
		{"loopback", "127.0.0.0/8", ""},
		{"loopback part", "127.1.2.0/24", ""},
		{"multicast", "224.0.0.0/4", ""},
		{"multicast part", "239.1.0.0/16", ""},
		{"this network", "0.0.0.0/8", ""},
		{"this network part", "0.1.0.0/16", ""},
		{"everything", "0.0.0.0/0", ""},
		{"upper half", "128.0.0.0/1", ""},
		{"class E", "240.0.0.0/4", ""},
		{"class E part", "250.0.0.0/8", ""},
		{"limited broadcast", "255.255.255.255/32", ""},
		{"broadcast /24", "255.255.255.0/24", ""},
		{"IPv4 link-local", "169.254.0.0/16", ""},
		{"IPv4 link-local part", "169.254.3.0/24", ""},
		{"IPv6 unspecified", "::/128", ""},
		{"IPv6 everything", "::/0", ""},
		{"IPv6 loopback", "::1/128", ""},
		{"IPv6 around loopback", "::/64", ""},
		{"IPv6 multicast", "ff00::/8", ""},
		{"IPv6 multicast part", "ff02::/16", ""},
		{"IPv6 link-local", "fe80::/64", ""},
		{"IPv4-mapped", "::ffff:10.0.0.0/104", ""},
		{"IPv4-mapped block", "::ffff:0:0/96", ""},
		{"IPv4-compatible", "::10.0.0.0/104", ""},
		{"/31", "10.9.0.0/31", ""},
		{"/32", "10.9.0.1/32", ""},
		{"/31 with a gateway", "10.9.0.0/31", "10.9.0.1"},
		{"/127", "fd00::/127", ""},
		{"/128", "fd00::1/128", ""},
		{"no prefix length", "10.9.0.0", ""},
		{"prefix too long", "10.9.0.0/33", ""},
		{"empty", "", ""},
		{"gateway outside", "10.9.0.0/24", "10.8.0.1"},
		{"gateway is the network address", "10.9.0.0/24", "10.9.0.0"},
		{"gateway is the broadcast address", "10.9.0.0/24", "10.9.0.255"},
		{"gateway is the broadcast address of a /30", "10.9.0.0/30", "10.9.0.3"},
		{"gateway not an address", "10.9.0.0/24", "gw.example"},
		{"gateway IPv4-mapped", "10.9.0.0/24", "::ffff:10.9.0.1"},
		{"IPv4 gateway on IPv6", "fd00::/64", "10.9.0.1"},
		{"gateway with a zone", "fd00::/64", "fd00::1%eth0"},
		{"IPv6 gateway is the network address", "fd00::/64", "fd00::"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := iso.Create(CreateOptions{Name: "n", Subnet: tc.subnet, Gateway: tc.gateway, Bridge: "cx-never-made"})
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("Create(subnet %q, gateway %q) = %v, want api.ErrInvalid", tc.subnet, tc.gateway, err)
			}
			if entries, _ := os.ReadDir(iso.cfg.ConfDir); len(entries) > 0 {
				t.Errorf("a refused network left %s", entries[0].Name())
			}
			if _, err := os.Stat(iso.bridgeRecordPath("cx-never-made")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused network left a bridge record: %v", err)
			}
		})
	}
}
