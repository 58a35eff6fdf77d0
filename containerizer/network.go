package containerizer

import (
	"fmt"
	"net"

	"github.com/caisson/caisson/api"
)

// validateNetworks checks the network part of a spec and fills the default
// (none). Whether a named network exists is the network isolator's business.
func validateNetworks(s *api.ContainerSpec) error {
	if len(s.Networks) == 0 {
		s.Networks = []string{api.NetworkNone}
	}
	seen := map[string]bool{}
	for _, n := range s.Networks {
		if (n == api.NetworkNone || n == api.NetworkHost) && len(s.Networks) > 1 {
			return &api.FieldError{Field: "networks", Err: fmt.Errorf("network %q cannot be combined with other networks: %w", n, api.ErrInvalid)}
		}
		if !api.ValidName(n) {
			return &api.FieldError{Field: "networks", Err: fmt.Errorf("network name %q is not valid: %w", n, api.ErrInvalid)}
		}
		if seen[n] {
			return &api.FieldError{Field: "networks", Err: fmt.Errorf("network %q is given twice: %w", n, api.ErrInvalid)}
		}
		seen[n] = true
	}
	if len(s.CNINetworks()) == 0 {
		if len(s.Ports) > 0 {
			return &api.FieldError{Field: "ports", Err: fmt.Errorf("publishing ports needs a CNI network, not %q: %w", s.Networks[0], api.ErrInvalid)}
		}
		if s.Bandwidth != nil {
			return &api.FieldError{Field: "bandwidth", Err: fmt.Errorf("bandwidth limits need a CNI network, not %q: %w", s.Networks[0], api.ErrInvalid)}
		}
	}
	published := map[string]bool{}
	for _, p := range s.Ports {
		switch p.Protocol {
		case "":
			return &api.FieldError{Field: "ports", Err: fmt.Errorf("port mapping %d:%d has no protocol: %w", p.HostPort, p.ContainerPort, api.ErrInvalid)}
		case "tcp", "udp", "sctp":
		default:
			return &api.FieldError{Field: "ports", Err: fmt.Errorf("port mapping %d:%d: protocol %q is not tcp, udp or sctp: %w", p.HostPort, p.ContainerPort, p.Protocol, api.ErrInvalid)}
		}
		if p.HostPort < 1 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return &api.FieldError{Field: "ports", Err: fmt.Errorf("port mapping %d:%d/%s: ports must be 1-65535: %w", p.HostPort, p.ContainerPort, p.Protocol, api.ErrInvalid)}
		}
		if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
			return &api.FieldError{Field: "ports", Err: fmt.Errorf("port mapping %d:%d/%s: host address %q is not an IP address: %w", p.HostPort, p.ContainerPort, p.Protocol, p.HostIP, api.ErrInvalid)}
		}
		key := fmt.Sprintf("%s/%d/%s", p.HostIP, p.HostPort, p.Protocol)
		if published[key] {
			return &api.FieldError{Field: "ports", Err: fmt.Errorf("host port %d/%s is published twice: %w", p.HostPort, p.Protocol, api.ErrInvalid)}
		}
		published[key] = true
	}
	if b := s.Bandwidth; b != nil {
		if (b.IngressRate == 0) != (b.IngressBurst == 0) || (b.EgressRate == 0) != (b.EgressBurst == 0) {
			return &api.FieldError{Field: "bandwidth", Err: fmt.Errorf("a bandwidth limit needs both a rate and a burst: %w", api.ErrInvalid)}
		}
	}
	return nil
}
