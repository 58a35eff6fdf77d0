package containerizer

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
)

func TestUnmountedVolume(t *testing.T) {
	spec := api.ContainerSpec{Volumes: []api.VolumeMount{{Driver: "d", Name: "a", Target: "/data"}, {Driver: "d", Name: "b", Target: "/logs/"}}}
	some := []isolators.Contribution{{Isolator: "x", Response: &isolators.PrepareResponse{Mounts: []specs.Mount{{Destination: "/data"}}}}}
	if v, ok := unmountedVolume(spec, some); ok || v.Name != "b" {
		t.Errorf("unmountedVolume with /logs missing = %v, %v", v, ok)
	}
	all := append(some, isolators.Contribution{Isolator: "y", Response: &isolators.PrepareResponse{Mounts: []specs.Mount{{Destination: "/logs"}}}})
	if _, ok := unmountedVolume(spec, all); !ok {
		t.Error("unmountedVolume: every volume is mounted")
	}
}
