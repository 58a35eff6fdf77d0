package scheduler

import (
	"slices"

	"github.com/caisson/caisson/api"
)

// agent is one agent's state.
type agent struct {
	spec      AgentSpec
	idx       int32
	alloc     Resources // held by tasks
	offered   Resources // locked by pessimistic offers (fan-out 1)
	revocable Resources // held by revocable tasks not noticed yet
	gpuFree   []int64   // milli-GPUs free per device
	portsUsed map[int]bool
	tasks     []*task
	offers    []*offer
	lost      bool
	unhealthy bool
	dirty     bool
}

func (a *agent) free() Resources { return a.spec.Resources.Sub(a.alloc) }

func validAgent(s AgentSpec) error {
	switch {
	case s.ID == "":
		return errorf(api.ErrInvalid, "agent: id is empty")
	case s.Resources.Negative():
		return errorf(api.ErrInvalid, "agent %s: resources %v are negative", s.ID, s.Resources)
	case len(s.GPUs) > 0 && s.Resources[GPU] != int64(len(s.GPUs))*1000:
		return errorf(api.ErrInvalid, "agent %s: %d GPU devices but gpu_milli %d (want %d)", s.ID, len(s.GPUs), s.Resources[GPU], len(s.GPUs)*1000)
	case len(s.GPUs) == 0 && s.Resources[GPU] != 0 && s.Resources[GPU]%1000 != 0:
		return errorf(api.ErrInvalid, "agent %s: gpu_milli %d is not a whole number of GPUs", s.ID, s.Resources[GPU])
	}
	seen := map[string]bool{}
	for _, g := range s.GPUs {
		if g.ID == "" || seen[g.ID] {
			return errorf(api.ErrInvalid, "agent %s: GPU id %q is empty or repeated", s.ID, g.ID)
		}
		seen[g.ID] = true
	}
	return validPorts(s)
}

// withDevices gives an agent that counts GPUs without naming them one
// device per GPU, so that tasks can be granted devices.
func withDevices(s AgentSpec) AgentSpec {
	if len(s.GPUs) == 0 && s.Resources[GPU] > 0 {
		model := s.Attributes["gpu_model"]
		for i := range s.Resources[GPU] / 1000 {
			s.GPUs = append(s.GPUs, GPUDevice{ID: s.ID + "/gpu" + itoa(int(i)), Model: model})
		}
	}
	return s
}

func (c *Core) addAgent(s AgentSpec) error {
	if err := validAgent(s); err != nil {
		return err
	}
	if i, ok := c.agentIdx[s.ID]; ok && !c.agents[i].lost {
		return errorf(api.ErrConflict, "agent %s is already registered", s.ID)
	}
	s = withPorts(withDevices(s))
	a := &agent{spec: s, gpuFree: make([]int64, len(s.GPUs))}
	for i := range a.gpuFree {
		a.gpuFree[i] = 1000
	}
	if i, ok := c.agentIdx[s.ID]; ok {
		a.idx = i // an agent that was lost comes back in its old slot
		c.agents[i] = a
	} else {
		a.idx = int32(len(c.agents))
		c.agents = append(c.agents, a)
		c.agentIdx[s.ID] = a.idx
	}
	if c.lendHit {
		// Borrowing refused for lack of room may fit now.
		c.lendHit, c.rescan = false, true
	}
	c.total = c.total.Add(s.Resources)
	c.totalChanged()
	c.treeDirty = true
	c.freeEpoch++
	c.reindex(a, false)
	c.markDirty(a)
	return nil
}

func (c *Core) agent(id string) (*agent, error) {
	i, ok := c.agentIdx[id]
	if !ok || c.agents[i].lost {
		return nil, errorf(api.ErrNotFound, "agent %s is not registered", id)
	}
	return c.agents[i], nil
}

func (c *Core) updateAgent(s AgentSpec, unhealthy bool) error {
	if err := validAgent(s); err != nil {
		return err
	}
	a, err := c.agent(s.ID)
	if err != nil {
		return err
	}
	s = withPorts(withDevices(s))
	// Running tasks keep their ports and devices: what they hold must
	// stay.
	for _, t := range a.tasks {
		for _, p := range t.ports {
			if !inRanges(s.PortRanges, p) {
				return errorf(api.ErrConflict, "agent %s: the update drops port %d, which task %s holds", s.ID, p, t.id)
			}
		}
		if len(t.ports) == 0 && t.res[Ports] > 0 && len(s.PortRanges) > 0 {
			return errorf(api.ErrConflict, "agent %s: the update names its ports, but task %s holds %d unnamed ones", s.ID, t.id, t.res[Ports])
		}
	}
	held := map[string]int64{}
	for i, g := range a.spec.GPUs {
		if used := 1000 - a.gpuFree[i]; used > 0 {
			held[g.ID] = used
		}
	}
	gpuFree := make([]int64, len(s.GPUs))
	for i, g := range s.GPUs {
		gpuFree[i] = 1000 - held[g.ID]
		delete(held, g.ID)
	}
	if len(held) > 0 {
		return errorf(api.ErrConflict, "agent %s: the update drops GPUs that running tasks hold", s.ID)
	}
	// Task device indexes follow the new order.
	for _, t := range a.tasks {
		for j, gi := range t.gpus {
			id := a.spec.GPUs[gi].ID
			t.gpus[j] = slices.IndexFunc(s.GPUs, func(g GPUDevice) bool { return g.ID == id })
		}
	}
	c.total = c.total.Sub(a.spec.Resources).Add(s.Resources)
	c.totalChanged()
	a.spec, a.gpuFree, a.unhealthy = s, gpuFree, unhealthy
	c.treeDirty = true
	c.freeEpoch++
	c.revalidateOffers(a, "the agent changed")
	c.reindex(a, true)
	c.markDirty(a)
	return nil
}

func (c *Core) loseAgent(id string) error {
	a, err := c.agent(id)
	if err != nil {
		return err
	}
	for _, o := range slices.Clone(a.offers) {
		c.rescind(o, "the agent is lost")
	}
	for _, t := range slices.Clone(a.tasks) {
		c.counters.TasksLost++
		c.endTask(t, false)
	}
	a.lost = true
	c.reindex(a, false)
	c.total = c.total.Sub(a.spec.Resources)
	c.totalChanged()
	c.treeDirty = true
	return nil
}

func (c *Core) markDirty(a *agent) {
	if a.dirty || a.lost {
		return
	}
	a.dirty = true
	c.dirty = append(c.dirty, a.idx)
}

// markAllFree marks every agent whose free resources could take a task,
// for demand that just appeared.
func (c *Core) markAllFree() {
	if !c.hasPending {
		return
	}
	c.freeIdx.each(c.minShape, 0, func(i int) bool {
		if a := c.agents[i]; !a.dirty {
			c.markDirty(a)
		}
		return true
	})
}

// noteShape lowers minShape for a group that has pending tasks.
func (c *Core) noteShape(r Resources) {
	if !c.hasPending {
		c.minShape, c.hasPending = r, true
		return
	}
	c.minShape = c.minShape.Min(r)
}

// recomputeShape sets minShape exactly from the pending groups.
func (c *Core) recomputeShape() {
	c.hasPending, c.minShape = false, Resources{}
	for _, h := range c.sheaps {
		for _, s := range h.items {
			if r, ok := s.smallest(); ok {
				c.noteShape(r)
			}
		}
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
