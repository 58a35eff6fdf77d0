package main

import (
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/config"
)

func TestParsePublish(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want api.PortMapping
	}{
		{"8080:80", api.PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
		{"127.0.0.1:53:5353/udp", api.PortMapping{HostIP: "127.0.0.1", HostPort: 53, ContainerPort: 5353, Protocol: "udp"}},
		{"[::1]:8443:443/TCP", api.PortMapping{HostIP: "::1", HostPort: 8443, ContainerPort: 443, Protocol: "tcp"}},
	} {
		got, err := parsePublish(tc.in)
		if err != nil || !cmp.Equal(got, tc.want) {
			t.Errorf("parsePublish(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"80", "x:80", "8080:0", "70000:80", "8080:80/icmp", "nohost:8080:80", ""} {
		if _, err := parsePublish(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("parsePublish(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]uint64{"10mbit": 10e6, "500k": 500e3, "1g": 1e9, "1200": 1200, "2Mbit": 2e6} {
		if got, err := parseBits(in); err != nil || got != want {
			t.Errorf("parseBits(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1m", "10mb", "fast"} {
		if _, err := parseBits(bad); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("parseBits(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if r, b, err := parseRate("--ingress-rate", "8m", ""); err != nil || r != 8e6 || b != 8e6 {
		t.Errorf("default burst: %d %d %v", r, b, err)
	}
	if _, _, err := parseRate("--ingress-rate", "", "1m"); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("a burst without a rate: %v", err)
	}
}

func TestPublishUsesDefaultNetwork(t *testing.T) {
	f := &runFlags{publish: []string{"8080:80"}}
	s, err := f.spec(&globals{cfg: config.Default()}, []string{"img"})
	if err != nil || !cmp.Equal(s.Networks, []string{"caisson"}) {
		t.Errorf("networks = %v, %v; want the default network", s.Networks, err)
	}
}

// formatPublish writes a mapping in -p's syntax, an IPv6 address in
// brackets.
func formatPublish(pm api.PortMapping) string {
	s := strconv.Itoa(pm.HostPort) + ":" + strconv.Itoa(pm.ContainerPort) + "/" + pm.Protocol
	if pm.HostIP != "" {
		s = net.JoinHostPort(pm.HostIP, s)
	}
	return s
}

// FuzzParsePublish: what -p accepts has ports in 1-65535, a protocol of
// tcp, udp or sctp and an empty or valid host IP, and reads back the same
// when written in -p's syntax; what it refuses wraps api.ErrInvalid.
func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{"8080:80", "127.0.0.1:53:5353/udp", "[::1]:8443:443/TCP", "::1:80:80", "0.0.0.0:1:65535/sctp",
		"80", "x:80", "8080:0", "70000:80", "8080:80/icmp", "nohost:8080:80", "", "+80:080", "1:2:3:4/udp", "[]:80:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		pm, err := parsePublish(in)
		if err != nil {
			if !errors.Is(err, api.ErrInvalid) {
				t.Fatalf("parsePublish(%q): %v, not api.ErrInvalid", in, err)
			}
			return
		}
		if pm.HostPort < 1 || pm.HostPort > 65535 || pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
			t.Fatalf("parsePublish(%q) = %+v: a port out of 1-65535", in, pm)
		}
		switch pm.Protocol {
		case "tcp", "udp", "sctp":
		default:
			t.Fatalf("parsePublish(%q) = %+v: protocol %q", in, pm, pm.Protocol)
		}
		if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
			t.Fatalf("parsePublish(%q) = %+v: host IP %q is not an IP address", in, pm, pm.HostIP)
		}
		out := formatPublish(pm)
		again, err := parsePublish(out)
		if err != nil {
			t.Fatalf("parsePublish(%q) = %+v, written %q, which it refuses: %v", in, pm, out, err)
		}
		if diff := cmp.Diff(pm, again); diff != "" {
			t.Fatalf("parsePublish(%q), written %q, reads back otherwise (-first +again):\n%s", in, out, diff)
		}
	})
}
