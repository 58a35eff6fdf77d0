package cni

import (
	"errors"
	"net"
	"testing"

	"github.com/caisson/caisson/api"
)

// TestCheckPortsTwice: a container cannot publish one host port twice (the
// second mapping would be shadowed by the first); the same port on two
// protocols, or on two host addresses, is fine.
func TestCheckPortsTwice(t *testing.T) {
	iso := newConfIsolator(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // free again: only the container's own list is in question
	for _, tc := range []struct {
		name  string
		ports []api.PortMapping
		want  error
	}{
		{"same port twice", []api.PortMapping{{HostPort: port, ContainerPort: 80, Protocol: "tcp"}, {HostPort: port, ContainerPort: 81, Protocol: "tcp"}}, api.ErrInvalid},
		{"all addresses and one address", []api.PortMapping{{HostPort: port, ContainerPort: 80, Protocol: "tcp"}, {HostIP: "127.0.0.1", HostPort: port, ContainerPort: 81, Protocol: "tcp"}}, api.ErrInvalid},
		{"same address twice", []api.PortMapping{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: 80, Protocol: "udp"}, {HostIP: "127.0.0.1", HostPort: port, ContainerPort: 80, Protocol: "udp"}}, api.ErrInvalid},
		{"0.0.0.0 and one address", []api.PortMapping{{HostIP: "0.0.0.0", HostPort: port, ContainerPort: 80, Protocol: "tcp"}, {HostIP: "127.0.0.1", HostPort: port, ContainerPort: 81, Protocol: "tcp"}}, api.ErrInvalid},
		{"two addresses", []api.PortMapping{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: 80, Protocol: "tcp"}, {HostIP: "127.0.0.2", HostPort: port, ContainerPort: 81, Protocol: "tcp"}}, nil},
		{"two protocols", []api.PortMapping{{HostPort: port, ContainerPort: 80, Protocol: "tcp"}, {HostPort: port, ContainerPort: 80, Protocol: "udp"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := iso.checkPorts("c1", tc.ports)
			if !errors.Is(err, tc.want) {
				t.Errorf("checkPorts(%+v) = %v, want %v", tc.ports, err, tc.want)
			}
			var fe *api.FieldError
			if tc.want != nil && (!errors.As(err, &fe) || fe.Field != "ports") {
				t.Errorf("checkPorts(%+v) = %v, want a FieldError about ports", tc.ports, err)
			}
		})
	}
}
