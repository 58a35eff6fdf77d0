package containerizer

import (
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
)

// The isolators' contributions are merged by isolators.Merge; what follows
// checks that they did what the container's request needs.

// joinsNetwork reports whether an isolator put the container into a network
// namespace it made (a CNI network).
func joinsNetwork(contribs []isolators.Contribution) bool {
	for _, c := range contribs {
		for _, n := range c.Response.Namespaces {
			if n.Type == specs.NetworkNamespace && n.Path != "" {
				return true
			}
		}
	}
	return false
}

// unmountedVolume returns a requested volume that no isolator mounted, with
// ok false.
func unmountedVolume(spec api.ContainerSpec, contribs []isolators.Contribution) (api.VolumeMount, bool) {
	mounted := map[string]bool{}
	for _, c := range contribs {
		for _, m := range c.Response.Mounts {
			mounted[path.Clean(m.Destination)] = true
		}
	}
	for _, v := range spec.Volumes {
		if !mounted[path.Clean(v.Target)] {
			return v, false
		}
	}
	return api.VolumeMount{}, true
}
