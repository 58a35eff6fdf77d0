package scheduler

import (
	"fmt"
	"math"
	"strings"

	"github.com/caisson/caisson/api"
)

// The one conversion from the cluster's wire types (package api) into the
// core's. The master calls nothing else to turn a registration, a consumer
// tree or a session into events.

// AgentFromNode is the agent an agent daemon's registration describes: its
// CPUs, memory, disk and port ranges, its healthy GPUs (a GPU in MIG mode
// offers its healthy MIG devices instead, each a device of its own with an
// island of its own), and attributes for constraints (arch, os, hostname,
// gpu_model, POWER's cpu_platform and machine_model, and the admin's
// labels, which win).
func AgentFromNode(id, hostname string, n api.NodeResources, labels map[string]string) AgentSpec {
	a := AgentSpec{ID: id, PortRanges: append([]api.PortRange(nil), n.Ports...), Attributes: map[string]string{}}
	a.Resources[CPU] = int64(math.Round(n.CPUs * 1000))
	a.Resources[Memory] = n.MemoryBytes
	a.Resources[Disk] = n.DiskBytes
	for _, p := range n.Ports {
		a.Resources[Ports] += int64(p.Len())
	}
	// MIG devices get islands after every whole GPU's, one each: a MIG
	// device shares no NVLink with anything a task could be given.
	nextIsland := 0
	for _, g := range n.GPUs {
		nextIsland = max(nextIsland, g.Island+1)
	}
	for _, g := range n.GPUs {
		if g.Unhealthy != "" {
			continue
		}
		if !g.MIG {
			a.GPUs = append(a.GPUs, GPUDevice{ID: g.UUID, Model: g.Model, MemoryBytes: g.MemoryBytes, Island: g.Island})
			continue
		}
		for _, m := range g.MIGDevices {
			if m.Unhealthy != "" {
				continue
			}
			a.GPUs = append(a.GPUs, GPUDevice{ID: m.UUID, Model: g.Model + " MIG " + m.Profile, MemoryBytes: m.MemoryBytes, Island: nextIsland})
			nextIsland++
		}
	}
	a.Resources[GPU] = int64(len(a.GPUs)) * 1000
	attrs := n.Attributes
	set := func(k, v string) {
		if v != "" {
			a.Attributes[k] = v
		}
	}
	set("arch", attrs.Arch)
	set("os", attrs.OS)
	set("hostname", hostname)
	set("cpu_platform", attrs.CPUPlatform)
	set("machine_model", attrs.MachineModel)
	if len(a.GPUs) > 0 {
		set("gpu_model", n.GPUs[0].Model)
	}
	for k, v := range labels {
		a.Attributes[k] = v
	}
	return a
}

// ResourcesFrom converts what a task asks for, or a consumer owns.
func ResourcesFrom(r api.TaskResources) Resources {
	var out Resources
	out[CPU] = int64(math.Round(r.CPUs * 1000))
	out[Memory] = r.MemoryBytes
	out[Disk] = r.DiskBytes
	out[GPU] = int64(math.Round(r.GPUs * 1000))
	out[Ports] = int64(r.Ports)
	return out
}

// WireResources converts back: what the API reports.
func WireResources(r Resources) api.TaskResources {
	return api.TaskResources{
		CPUs: float64(r[CPU]) / 1000, MemoryBytes: r[Memory], DiskBytes: r[Disk],
		GPUs: float64(r[GPU]) / 1000, Ports: int(r[Ports]),
	}
}

// ConsumersFrom converts an admin's consumer tree: each consumer is named
// by its path, and its parent is the path above it ("" for the root's
// children). defaultGrace fills in a grace period of zero.
func ConsumersFrom(tree api.ConsumerTree) []ConsumerSpec {
	out := make([]ConsumerSpec, 0, len(tree.Consumers))
	for _, c := range tree.Consumers {
		parent := c.Path[:strings.LastIndex(c.Path, "/")]
		out = append(out, ConsumerSpec{
			Name: c.Path, Parent: parent, Weight: c.Weight,
			Owned: ResourcesFrom(c.Owned), Limit: ResourcesFrom(c.Limit),
			NoLend: c.NoLend, Grace: c.Grace.D(),
		})
	}
	return out
}

// SessionFrom converts a submitted session, given the ID the master chose
// and the consumer it runs under.
func SessionFrom(id, consumer, user string, s api.SessionSpec) SessionSpec {
	out := SessionSpec{ID: id, Consumer: consumer, User: user, Priority: s.Priority, Kind: s.Kind, Policy: s.Policy}
	if out.Kind == "" {
		out.Kind = KindBatch
	}
	for _, g := range s.Groups {
		tg := TaskGroup{
			Name: g.Name, Resources: ResourcesFrom(g.Resources), Count: g.Count, Min: g.Min, Max: g.Max,
			GPUModels: g.GPUModels, SameIsland: g.SameIsland,
		}
		for _, c := range g.Constraints {
			tg.Constraints = append(tg.Constraints, Constraint{Attribute: c.Attribute, Op: c.Op, Values: c.Values})
		}
		out.Groups = append(out.Groups, tg)
	}
	return out
}

// CheckSession says what is wrong with a session before it becomes an
// event, as an *api.FieldError naming the JSON path.
func CheckSession(s api.SessionSpec) error {
	bad := func(field, value, format string, args ...any) error {
		return &api.FieldError{Field: field, Value: value, Err: fmt.Errorf(format+": %w", append(args, api.ErrInvalid)...)}
	}
	switch s.Kind {
	case "", KindBatch, KindFramework, KindSpark, KindPods:
	default:
		return bad("kind", fmt.Sprintf("%q", s.Kind), "want batch, framework, spark or pods")
	}
	switch s.Policy {
	case "", Binpack, Spread:
	default:
		return bad("policy", fmt.Sprintf("%q", s.Policy), "want binpack or spread")
	}
	if len(s.Groups) == 0 {
		return bad("groups", "", "a session needs at least one task group")
	}
	seen := map[string]bool{}
	for i, g := range s.Groups {
		if !api.ValidName(g.Name) {
			return bad("groups.name", fmt.Sprintf("%q", g.Name), "group %d: want a letter or digit, then letters, digits, '_', '.' and '-'", i)
		}
		if seen[g.Name] {
			return bad("groups.name", fmt.Sprintf("%q", g.Name), "two groups have this name")
		}
		seen[g.Name] = true
		if g.Count < 0 || g.Min < 0 || g.Max < 0 {
			return bad("groups.count", "", "group %s: count, min and max cannot be negative", g.Name)
		}
		if g.Max > 0 && g.Count > g.Max {
			return bad("groups.count", fmt.Sprint(g.Count), "group %s: above its max %d", g.Name, g.Max)
		}
		r := g.Resources
		if r.CPUs < 0 || r.MemoryBytes < 0 || r.DiskBytes < 0 || r.GPUs < 0 || r.Ports < 0 {
			return bad("groups.resources", "", "group %s: resources cannot be negative", g.Name)
		}
		if r.CPUs == 0 && r.MemoryBytes == 0 {
			return bad("groups.resources", "", "group %s: a task must ask for cpus or memory", g.Name)
		}
		if r.GPUs > 1 && r.GPUs != math.Trunc(r.GPUs) {
			return bad("groups.resources.gpus", fmt.Sprint(r.GPUs), "group %s: a task takes a fraction of one GPU or whole GPUs", g.Name)
		}
		if len(g.Ports) > r.Ports {
			return bad("groups.ports", "", "group %s: %d port mappings but resources.ports is %d", g.Name, len(g.Ports), r.Ports)
		}
		for _, p := range g.Ports {
			if p.HostPort != 0 {
				return bad("groups.ports.host_port", fmt.Sprint(p.HostPort), "group %s: host ports are granted by the scheduler; leave it 0", g.Name)
			}
		}
		for _, c := range g.Constraints {
			if c.Attribute == "" || (c.Op != OpIn && c.Op != OpNotIn) || len(c.Values) == 0 {
				return bad("groups.constraints", "", "group %s: want an attribute, op in or not_in, and values", g.Name)
			}
		}
		if g.Container.GPUs != nil || g.Container.Resources != (api.Resources{}) || len(g.Container.Ports) > 0 {
			return bad("groups.container", "", "group %s: resources, GPUs and ports come from the group, not the container template", g.Name)
		}
	}
	return nil
}
