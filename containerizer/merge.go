package containerizer

import (
	"fmt"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// contribution is one isolator's PrepareResponse.
type contribution struct {
	isolator string
	resp     *isolators.PrepareResponse
}

// merge applies the isolators' contributions to s with the rules documented
// on isolators.PrepareResponse. userMounts are the destinations the user's
// request claimed; an isolator may not take them.
func merge(s *oci.Spec, contribs []contribution, userMounts map[string]bool) error {
	envBy := map[string]string{}   // key → isolator
	envVal := map[string]string{}  // key → KEY=VALUE
	mountBy := map[string]string{} // destination → isolator
	nsBy := map[specs.LinuxNamespaceType]string{}
	nsPath := map[specs.LinuxNamespaceType]string{}
	devBy := map[string]string{}
	devNum := map[string][2]int64{}
	annBy := map[string]string{}
	var cgroupBy, cpuBy, memBy, pidsBy string

	conflict := func(what, a, b string) error {
		return fmt.Errorf("isolators %s and %s both set %s: %w", a, b, what, api.ErrConflict)
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	if s.Process == nil {
		s.Process = &specs.Process{}
	}

	for _, c := range contribs {
		r := c.resp
		for _, kv := range r.Env {
			k, _, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("isolator %s: environment variable %q is not KEY=VALUE: %w", c.isolator, kv, api.ErrInvalid)
			}
			if prev, seen := envBy[k]; seen && envVal[k] != kv {
				return conflict("environment variable "+k, prev, c.isolator)
			}
			envBy[k], envVal[k] = c.isolator, kv
		}
		for _, m := range r.Mounts {
			if !strings.HasPrefix(m.Destination, "/") {
				return fmt.Errorf("isolator %s: mount destination %q is not absolute: %w", c.isolator, m.Destination, api.ErrInvalid)
			}
			if userMounts[m.Destination] {
				return fmt.Errorf("isolator %s and the container's own mounts both use %s: %w", c.isolator, m.Destination, api.ErrConflict)
			}
			if prev, seen := mountBy[m.Destination]; seen {
				return conflict("mount "+m.Destination, prev, c.isolator)
			}
			mountBy[m.Destination] = c.isolator
		}
		for _, n := range r.Namespaces {
			if prev, seen := nsBy[n.Type]; seen && nsPath[n.Type] != n.Path {
				return conflict(string(n.Type)+" namespace", prev, c.isolator)
			}
			nsBy[n.Type], nsPath[n.Type] = c.isolator, n.Path
		}
		var newDevices []specs.LinuxDevice // a node another isolator added already is not added twice
		for _, d := range r.Devices {
			num := [2]int64{d.Major, d.Minor}
			if prev, seen := devBy[d.Path]; seen {
				if devNum[d.Path] != num {
					return conflict("device "+d.Path, prev, c.isolator)
				}
				continue
			}
			devBy[d.Path], devNum[d.Path] = c.isolator, num
			newDevices = append(newDevices, d)
		}
		for k := range r.Annotations {
			if prev, seen := annBy[k]; seen {
				return conflict("annotation "+k, prev, c.isolator)
			}
			annBy[k] = c.isolator
		}
		if r.CgroupsPath != "" {
			if cgroupBy != "" && s.Linux.CgroupsPath != r.CgroupsPath {
				return conflict("the cgroup path", cgroupBy, c.isolator)
			}
			cgroupBy = c.isolator
			s.Linux.CgroupsPath = r.CgroupsPath
		}
		if res := r.Resources; res != nil {
			if res.CPU != nil {
				if cpuBy != "" {
					return conflict("cpu resources", cpuBy, c.isolator)
				}
				cpuBy = c.isolator
				s.Linux.Resources.CPU = res.CPU
			}
			if res.Memory != nil {
				if memBy != "" {
					return conflict("memory resources", memBy, c.isolator)
				}
				memBy = c.isolator
				s.Linux.Resources.Memory = res.Memory
			}
			if res.Pids != nil {
				if pidsBy != "" {
					return conflict("pids resources", pidsBy, c.isolator)
				}
				pidsBy = c.isolator
				s.Linux.Resources.Pids = res.Pids
			}
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, res.Devices...)
			for k, v := range res.Unified {
				if s.Linux.Resources.Unified == nil {
					s.Linux.Resources.Unified = map[string]string{}
				}
				if _, seen := s.Linux.Resources.Unified[k]; seen {
					return fmt.Errorf("isolator %s sets cgroup file %s another isolator set: %w", c.isolator, k, api.ErrConflict)
				}
				s.Linux.Resources.Unified[k] = v
			}
		}

		// The checks passed; apply this contribution.
		if err := oci.Apply(s,
			oci.WithEnv(r.Env...),
			oci.WithMounts(r.Mounts...),
			oci.WithDevices(newDevices, r.DeviceRules),
			oci.WithAnnotations(r.Annotations),
		); err != nil {
			return fmt.Errorf("isolator %s: %w", c.isolator, err)
		}
		for _, n := range r.Namespaces {
			if err := oci.WithNamespace(n.Type, n.Path)(s); err != nil {
				return err
			}
		}
	}
	// Escape hatches last, in isolator order.
	for _, c := range contribs {
		if err := oci.Apply(s, c.resp.SpecOpts...); err != nil {
			return fmt.Errorf("isolator %s: %w", c.isolator, err)
		}
	}
	return nil
}

// joinsNetwork reports whether an isolator put the container into a network
// namespace it made (a CNI network).
func joinsNetwork(contribs []contribution) bool {
	for _, c := range contribs {
		for _, n := range c.resp.Namespaces {
			if n.Type == specs.NetworkNamespace && n.Path != "" {
				return true
			}
		}
	}
	return false
}

// unmountedVolume returns a requested volume that no isolator mounted, with
// ok false.
func unmountedVolume(spec api.ContainerSpec, contribs []contribution) (api.VolumeMount, bool) {
	mounted := map[string]bool{}
	for _, c := range contribs {
		for _, m := range c.resp.Mounts {
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
