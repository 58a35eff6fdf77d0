package containerizer

import (
	"errors"
	"testing"

	"github.com/caisson/caisson/api"
)

func TestValidateNetworks(t *testing.T) {
	tcp := func(h, c int) api.PortMapping { return api.PortMapping{HostPort: h, ContainerPort: c, Protocol: "tcp"} }
	ok := []api.ContainerSpec{
		{},
		{Networks: []string{"host"}},
		{Networks: []string{"a", "b.c"}, Ports: []api.PortMapping{tcp(80, 80), {HostPort: 80, ContainerPort: 80, Protocol: "udp"}}},
		{Networks: []string{"a"}, Bandwidth: &api.Bandwidth{IngressRate: 1, IngressBurst: 1}},
	}
	for _, s := range ok {
		if err := validateNetworks(&s); err != nil {
			t.Errorf("validateNetworks(%+v) = %v", s, err)
		}
	}
	bad := []api.ContainerSpec{
		{Networks: []string{"host", "a"}},
		{Networks: []string{"a", "none"}},
		{Networks: []string{"a", "a"}},
		{Networks: []string{"bad name"}},
		{Ports: []api.PortMapping{tcp(80, 80)}},
		{Networks: []string{"host"}, Ports: []api.PortMapping{tcp(80, 80)}},
		{Networks: []string{"a"}, Ports: []api.PortMapping{tcp(80, 80), tcp(80, 81)}},
		{Networks: []string{"a"}, Ports: []api.PortMapping{tcp(0, 80)}},
		{Networks: []string{"a"}, Ports: []api.PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "icmp"}}},
		{Networks: []string{"a"}, Ports: []api.PortMapping{{HostIP: "localhost", HostPort: 1, ContainerPort: 1, Protocol: "tcp"}}},
		{Networks: []string{"a"}, Bandwidth: &api.Bandwidth{IngressRate: 1}},
		{Bandwidth: &api.Bandwidth{IngressRate: 1, IngressBurst: 1}},
	}
	for _, s := range bad {
		if err := validateNetworks(&s); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("validateNetworks(%+v) = %v, want ErrInvalid", s, err)
		}
	}
}
