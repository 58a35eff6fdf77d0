package cni

import (
	"errors"
	"net"
	"testing"

	"github.com/caisson/caisson/api"
)

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
}

// TestCheckUnused: an existing bridge is nobody's only without ports, not a
// port itself, and with no address but the gateway and the IPv6 link-local
// ones the kernel adds; an IPv4 link-local address is someone's.
func TestCheckUnused(t *testing.T) {
	gw := net.ParseIP("10.88.0.1")
	for _, tc := range []struct {
		name  string
		link  link
		inUse bool
	}{
		{"bare bridge", link{bridge: true}, false},
		{"the gateway", link{bridge: true, addrs: []*net.IPNet{mustCIDR(t, "10.88.0.1/24")}}, false},
		{"IPv6 link-local", link{bridge: true, addrs: []*net.IPNet{mustCIDR(t, "fe80::1/64")}}, false},
		{"the gateway and IPv6 link-local", link{bridge: true, addrs: []*net.IPNet{mustCIDR(t, "10.88.0.1/24"), mustCIDR(t, "fe80::42/64")}}, false},
		{"IPv4 link-local", link{bridge: true, addrs: []*net.IPNet{mustCIDR(t, "169.254.7.7/16")}}, true},
		{"IPv4 link-local at the start of the range", link{bridge: true, addrs: []*net.IPNet{mustCIDR(t, "169.254.0.1/16")}}, true},
		{"the gateway and IPv4 link-local", link{bridge: true, addrs: []*net.IPNet{mustCIDR(t, "10.88.0.1/24"), mustCIDR(t, "169.254.1.2/16")}}, true},
		{"another IPv4 address", link{bridge: true, addrs: []*net.IPNet{mustCIDR(t, "192.0.2.1/24")}}, true},
		{"a global IPv6 address", link{bridge: true, addrs: []*net.IPNet{mustCIDR(t, "2001:db8::1/64")}}, true},
		{"IPv4-mapped link-local", link{bridge: true, addrs: []*net.IPNet{{IP: net.ParseIP("::ffff:169.254.3.3"), Mask: net.CIDRMask(112, 128)}}}, true},
		{"ports", link{bridge: true, ports: []string{"veth1"}}, true},
		{"a port", link{bridge: true, master: "bond0"}, true},
		{"not a bridge", link{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.link.name = "br-test"
			err := tc.link.checkUnused(gw)
			if tc.inUse && !errors.Is(err, api.ErrConflict) {
				t.Errorf("checkUnused = %v, want api.ErrConflict", err)
			}
			if !tc.inUse && err != nil {
				t.Errorf("checkUnused = %v, want no error", err)
			}
		})
	}
}
