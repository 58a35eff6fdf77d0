package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
)

// networkSpec fills the networks, published ports and bandwidth limits.
func (f *runFlags) networkSpec(g *globals, s *api.ContainerSpec) error {
	for _, p := range f.publish {
		pm, err := parsePublish(p)
		if err != nil {
			return err
		}
		s.Ports = append(s.Ports, pm)
	}
	if len(s.Networks) == 0 && len(s.Ports) > 0 {
		s.Networks = []string{g.cfg.CNI.DefaultNetwork}
	}
	var b api.Bandwidth
	var err error
	if b.IngressRate, b.IngressBurst, err = parseRate("--ingress-rate", f.ingressRate, f.ingressBurst); err != nil {
		return err
	}
	if b.EgressRate, b.EgressBurst, err = parseRate("--egress-rate", f.egressRate, f.egressBurst); err != nil {
		return err
	}
	if b != (api.Bandwidth{}) {
		s.Bandwidth = &b
	}
	return nil
}

// parsePublish parses [IP:]HOST:CONTAINER[/PROTO]; an IPv6 address goes in
// brackets.
func parsePublish(v string) (api.PortMapping, error) {
	pm := api.PortMapping{Protocol: "tcp"}
	bad := func(why string) (api.PortMapping, error) {
		return pm, fmt.Errorf("--publish %q: %s (want [IP:]HOST:CONTAINER[/tcp|udp|sctp]): %w", v, why, api.ErrInvalid)
	}
	rest := v
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		pm.Protocol = strings.ToLower(rest[i+1:])
		rest = rest[:i]
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return bad("a host port is required")
	}
	cport := rest[i+1:]
	rest = rest[:i]
	hport := rest
	if j := strings.LastIndex(rest, ":"); j >= 0 {
		hport = rest[j+1:]
		ip := strings.TrimSuffix(strings.TrimPrefix(rest[:j], "["), "]")
		if net.ParseIP(ip) == nil {
			return bad(fmt.Sprintf("%q is not an IP address", ip))
		}
		pm.HostIP = ip
	}
	var err error
	if pm.HostPort, err = strconv.Atoi(hport); err != nil || pm.HostPort < 1 || pm.HostPort > 65535 {
		return bad(fmt.Sprintf("host port %q is not 1-65535", hport))
	}
	if pm.ContainerPort, err = strconv.Atoi(cport); err != nil || pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
		return bad(fmt.Sprintf("container port %q is not 1-65535", cport))
	}
	switch pm.Protocol {
	case "tcp", "udp", "sctp":
	default:
		return bad(fmt.Sprintf("protocol %q is not tcp, udp or sctp", pm.Protocol))
	}
	return pm, nil
}

// parseBits parses a count of bits: a number with an optional k, m or g
// (powers of 1000) and an optional "bit" ("10mbit", "500k").
func parseBits(s string) (uint64, error) {
	t := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "bit")
	mult := uint64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1000
		case 'm':
			mult = 1000 * 1000
		case 'g':
			mult = 1000 * 1000 * 1000
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a positive number of bits (e.g. 10mbit): %w", s, api.ErrInvalid)
	}
	return n * mult, nil
}

// parseRate parses a rate and its optional burst (default: one second's
// worth).
func parseRate(flag, rate, burst string) (uint64, uint64, error) {
	if rate == "" {
		if burst != "" {
			return 0, 0, fmt.Errorf("a burst needs %s too: %w", flag, api.ErrInvalid)
		}
		return 0, 0, nil
	}
	r, err := parseBits(rate)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", flag, err)
	}
	b := r
	if burst != "" {
		if b, err = parseBits(burst); err != nil {
			return 0, 0, fmt.Errorf("%s burst: %w", flag, err)
		}
	}
	return r, b, nil
}
