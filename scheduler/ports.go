package scheduler

import (
	"fmt"
	"slices"

	"github.com/caisson/caisson/api"
)

// portCount is how many ports the ranges hold.
func portCount(rs []api.PortRange) int64 {
	var n int64
	for _, r := range rs {
		n += int64(r.Len())
	}
	return n
}

// validPorts checks an agent's port ranges: well formed, in order, apart,
// and as many ports as Resources[Ports] counts (0 there: the ranges say).
func validPorts(s AgentSpec) error {
	for i, r := range s.PortRanges {
		switch {
		case r.Begin < 1 || r.End > 65535 || r.Begin > r.End:
			return errorf(api.ErrInvalid, "agent %s: port range %d (%s): want 1 to 65535, begin not above end", s.ID, i, r)
		case i > 0 && r.Begin <= s.PortRanges[i-1].End:
			return errorf(api.ErrInvalid, "agent %s: port range %d (%s) overlaps or comes before %s: list them apart and in order", s.ID, i, r, s.PortRanges[i-1])
		}
	}
	if n := portCount(s.PortRanges); len(s.PortRanges) > 0 && s.Resources[Ports] != 0 && s.Resources[Ports] != n {
		return errorf(api.ErrInvalid, "agent %s: ports %d but its port ranges hold %d", s.ID, s.Resources[Ports], n)
	}
	return nil
}

// withPorts counts an agent's port ranges in its resources.
func withPorts(s AgentSpec) AgentSpec {
	if len(s.PortRanges) > 0 {
		s.Resources[Ports] = portCount(s.PortRanges)
	}
	return s
}

// inRanges reports whether port p is one of the ranges'.
func inRanges(rs []api.PortRange, p int) bool {
	return slices.ContainsFunc(rs, func(r api.PortRange) bool { return r.Begin <= p && p <= r.End })
}

// takePorts gives n of the agent's free ports, lowest first; none where
// the agent counts ports without naming them. Resources[Ports] counts
// what the ranges hold, so a task that fits finds its ports.
func (a *agent) takePorts(n int64) []int {
	if n <= 0 || len(a.spec.PortRanges) == 0 {
		return nil
	}
	if a.portsUsed == nil {
		a.portsUsed = map[int]bool{}
	}
	out := make([]int, 0, n)
	for _, r := range a.spec.PortRanges {
		for p := r.Begin; p <= r.End && int64(len(out)) < n; p++ {
			if !a.portsUsed[p] {
				out = append(out, p)
			}
		}
	}
	for _, p := range out {
		a.portsUsed[p] = true
	}
	return out
}

// freePorts lists the agent's free ports as ranges; nil where it names
// none.
func (a *agent) freePorts() []api.PortRange {
	if len(a.portsUsed) == 0 {
		return slices.Clone(a.spec.PortRanges)
	}
	used := make([]int, 0, len(a.portsUsed))
	for p := range a.portsUsed {
		used = append(used, p)
	}
	slices.Sort(used)
	var out []api.PortRange
	for _, r := range a.spec.PortRanges {
		// The ranges and the used ports are in order: cut the range at
		// each used port in it.
		from := r.Begin
		for len(used) > 0 && used[0] <= r.End {
			if used[0] > from {
				out = append(out, api.PortRange{Begin: from, End: used[0] - 1})
			}
			from = max(from, used[0]+1)
			used = used[1:]
		}
		if from <= r.End {
			out = append(out, api.PortRange{Begin: from, End: r.End})
		}
	}
	return out
}

// givePorts frees a task's ports.
func (a *agent) givePorts(ports []int) {
	for _, p := range ports {
		delete(a.portsUsed, p)
	}
}

// checkPorts checks that the agent's tasks hold distinct ports of its
// ranges, as many as they asked for, and that the agent counts them used.
func checkPorts(a *agent) error {
	held := 0
	seen := map[int]string{}
	for _, t := range a.tasks {
		if len(a.spec.PortRanges) > 0 && int64(len(t.ports)) != t.res[Ports] || len(a.spec.PortRanges) == 0 && len(t.ports) > 0 {
			return fmt.Errorf("task %s asked for %d ports and holds %v", t.id, t.res[Ports], t.ports)
		}
		for _, p := range t.ports {
			if other, ok := seen[p]; ok {
				return fmt.Errorf("tasks %s and %s both hold port %d of agent %s", other, t.id, p, a.spec.ID)
			}
			if !inRanges(a.spec.PortRanges, p) || !a.portsUsed[p] {
				return fmt.Errorf("task %s holds port %d, which agent %s does not count as its and used", t.id, p, a.spec.ID)
			}
			seen[p] = t.id
			held++
		}
	}
	if held != len(a.portsUsed) {
		return fmt.Errorf("agent %s counts %d ports used, its tasks hold %d", a.spec.ID, len(a.portsUsed), held)
	}
	return nil
}
