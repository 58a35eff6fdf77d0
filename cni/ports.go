package cni

import (
	"fmt"
	"net"
	"strconv"

	"github.com/caisson/caisson/api"
)

// checkPorts refuses host ports the container names twice, another
// container publishes or a host process listens on. The caller holds the
// cross-container lock.
func (iso *Isolator) checkPorts(id string, ports []api.PortMapping) error {
	for i, p := range ports {
		for _, q := range ports[:i] {
			if samePort(p, q) {
				return portsError(fmt.Errorf("host port %d/%s is published twice: %w", p.HostPort, p.Protocol, api.ErrInvalid))
			}
		}
	}
	sts, err := iso.states()
	if err != nil {
		return err
	}
	for _, st := range sts {
		if st.ID == id {
			continue
		}
		for _, theirs := range st.Ports {
			for _, p := range ports {
				if samePort(p, theirs) {
					return portsError(fmt.Errorf("host port %d/%s is already published by container %s: %w", p.HostPort, p.Protocol, short(st.ID), api.ErrConflict))
				}
			}
		}
	}
	for _, p := range ports {
		if err := probePort(p); err != nil {
			return portsError(fmt.Errorf("host port %d/%s is already in use on the host: %v: %w", p.HostPort, p.Protocol, err, api.ErrConflict))
		}
	}
	return nil
}

// portsError says that err is about the spec's ports.
func portsError(err error) error { return &api.FieldError{Field: "ports", Err: err} }

// samePort reports whether two mappings take the same host port: the same
// protocol and port on the same host address, or on all of them (no
// address, 0.0.0.0 or ::).
func samePort(a, b api.PortMapping) bool {
	all := func(ip string) bool { return ip == "" || net.ParseIP(ip).IsUnspecified() }
	return a.Protocol == b.Protocol && a.HostPort == b.HostPort &&
		(all(a.HostIP) || all(b.HostIP) || net.ParseIP(a.HostIP).Equal(net.ParseIP(b.HostIP)))
}

// probePort binds the host port for a moment to see whether a host process
// holds it (SCTP is not probed).
func probePort(p api.PortMapping) error {
	addr := net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
	switch p.Protocol {
	case "tcp":
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		return l.Close()
	case "udp":
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	return nil
}

func short(id string) string { return id[:min(12, len(id))] }
