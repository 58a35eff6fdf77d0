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
	bad := []struct {
		spec  api.ContainerSpec
		field string // of the FieldError
	}{
		{api.ContainerSpec{Networks: []string{"host", "a"}}, "networks"},
		{api.ContainerSpec{Networks: []string{"a", "none"}}, "networks"},
		{api.ContainerSpec{Networks: []string{"a", "a"}}, "networks"},
		{api.ContainerSpec{Networks: []string{"bad name"}}, "networks"},
		{api.ContainerSpec{Ports: []api.PortMapping{tcp(80, 80)}}, "ports"},
		{api.ContainerSpec{Networks: []string{"host"}, Ports: []api.PortMapping{tcp(80, 80)}}, "ports"},
		{api.ContainerSpec{Networks: []string{"a"}, Ports: []api.PortMapping{tcp(80, 80), tcp(80, 81)}}, "ports"},
		{api.ContainerSpec{Networks: []string{"a"}, Ports: []api.PortMapping{tcp(0, 80)}}, "ports"},
		{api.ContainerSpec{Networks: []string{"a"}, Ports: []api.PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "icmp"}}}, "ports"},
		{api.ContainerSpec{Networks: []string{"a"}, Ports: []api.PortMapping{{HostIP: "localhost", HostPort: 1, ContainerPort: 1, Protocol: "tcp"}}}, "ports"},
		{api.ContainerSpec{Networks: []string{"a"}, Bandwidth: &api.Bandwidth{IngressRate: 1}}, "bandwidth"},
		{api.ContainerSpec{Bandwidth: &api.Bandwidth{IngressRate: 1, IngressBurst: 1}}, "bandwidth"},
	}
	for _, tc := range bad {
		err := validateNetworks(&tc.spec)
		if !errors.Is(err, api.ErrInvalid) {
			t.Errorf("validateNetworks(%+v) = %v, want ErrInvalid", tc.spec, err)
		}
		var fe *api.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("validateNetworks(%+v) = %v, want a FieldError about %s", tc.spec, err, tc.field)
		}
	}
}
