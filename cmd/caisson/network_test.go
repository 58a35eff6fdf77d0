package main

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
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
	s, err := f.spec(&globals{defaultNetwork: "caisson"}, []string{"img"})
	if err != nil || !cmp.Equal(s.Networks, []string{"caisson"}) {
		t.Errorf("networks = %v, %v; want the default network", s.Networks, err)
	}
}
