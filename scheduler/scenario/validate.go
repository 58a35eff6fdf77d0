package scenario

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/yamlnode"
	"github.com/caisson/caisson/scheduler"
)

// Validate checks that the scenario holds together: a version this
// package reads; unique agent, consumer, session and group names; known
// parents, no cycles and at most 32 levels in the consumer tree (nested,
// flat or both); resources that are not
// negative; owned shares within limits, within the parent's owned share
// and, at the top of the tree, within the cluster; sessions under leaf
// consumers; gangs within their maximum; GPU models that some agent has;
// distributions, stages and dynamic allocation that make sense. The first
// problem is returned as an *Error. Parse calls it; a Scenario built or
// changed in code can call it too, its errors then name fields by their
// index in the expanded lists and have no line.
func (s *Scenario) Validate() error {
	v := &validator{s: s}
	for _, check := range []func() error{v.top, v.agents, v.consumers, v.sessions} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

type validator struct {
	s        *Scenario
	total    scheduler.Resources // of the cluster
	models   map[string]bool     // GPU models of the cluster
	byName   map[string]int      // consumer index by name
	parent   []bool              // consumers with children
	children [][]int             // of each consumer
}

// path is where the i-th consumer, agent or session is in the file.
func (v *validator) path(list string, i int) string {
	if src := v.s.src; src != nil {
		var paths []string
		switch list {
		case "consumers":
			paths = src.consumers
		case "agents":
			paths = src.agents
		case "sessions":
			paths = src.sessions
		}
		if i < len(paths) {
			return paths[i]
		}
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

// line finds the line of a field, or of the nearest enclosing one the
// file has.
func (v *validator) line(path string) int {
	if v.s.src == nil {
		return 0
	}
	return yamlnode.LineOf(v.s.src.lines, path)
}

func (v *validator) errf(path, format string, args ...any) error {
	return &Error{File: v.s.Name, Line: v.line(path), Field: path, Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), api.ErrInvalid)}
}

func (v *validator) top() error {
	s := v.s
	switch {
	case s.Version != Version:
		return v.errf("version", "%d is not a version this program reads: want %d", s.Version, Version)
	case s.Tick <= 0:
		return v.errf("tick", "%v is not positive", s.Tick)
	case s.Duration < 0:
		return v.errf("duration", "%v is negative", s.Duration)
	case s.Config.OfferFanout < 0:
		return v.errf("config.offer_fanout", "%d is negative", s.Config.OfferFanout)
	case s.Config.OfferTimeout < 0:
		return v.errf("config.offer_timeout", "%v is negative", s.Config.OfferTimeout)
	case s.Config.Refuse < 0:
		return v.errf("config.refuse", "%v is negative", s.Config.Refuse)
	case s.Config.Grace < 0:
		return v.errf("config.grace", "%v is negative", s.Config.Grace)
	}
	return nil
}

// negative reports the first negative dimension of r under path.
func (v *validator) negative(path string, r scheduler.Resources) error {
	for k, x := range r {
		if x < 0 {
			return v.errf(join(path, resourceKeys[k]), "%s is negative", amount(scheduler.Kind(k), x))
		}
	}
	return nil
}

func (v *validator) agents() error {
	s := v.s
	if len(s.Agents) == 0 {
		return v.errf("agents", "no agents: a scenario needs a cluster")
	}
	v.models = map[string]bool{}
	ids := make(map[string]bool, len(s.Agents))
	for i, a := range s.Agents {
		p := v.path("agents", i)
		switch {
		case a.ID == "":
			return v.errf(join(p, "name"), "an agent's id is empty")
		case ids[a.ID]:
			return v.errf(join(p, "name"), "agent id %q is repeated", a.ID)
		}
		ids[a.ID] = true
		if err := v.negative(p, a.Resources); err != nil {
			return err
		}
		switch {
		case a.Resources[scheduler.CPU] == 0:
			return v.errf(join(p, "cpus"), "agent %s has no cpus", a.ID)
		case a.Resources[scheduler.Memory] == 0:
			return v.errf(join(p, "memory"), "agent %s has no memory", a.ID)
		case a.Resources[scheduler.GPU] != int64(len(a.GPUs))*1000:
			return v.errf(join(p, "gpus"), "agent %s has %d GPU devices but %s GPUs", a.ID, len(a.GPUs), amount(scheduler.GPU, a.Resources[scheduler.GPU]))
		}
		gpus := make(map[string]bool, len(a.GPUs))
		for _, g := range a.GPUs {
			switch {
			case g.ID == "" || gpus[g.ID]:
				return v.errf(join(p, "gpus"), "agent %s: GPU id %q is empty or repeated", a.ID, g.ID)
			case g.Island < 0:
				return v.errf(join(p, "nvlink_islands"), "agent %s: GPU %s is in island %d", a.ID, g.ID, g.Island)
			case g.MemoryBytes < 0:
				return v.errf(join(p, "gpu_memory"), "agent %s: GPU %s has %d bytes", a.ID, g.ID, g.MemoryBytes)
			}
			gpus[g.ID] = true
			if g.Model != "" {
				v.models[g.Model] = true
			}
		}
		if m := a.Attributes["gpu_model"]; m != "" && len(a.GPUs) > 0 {
			v.models[m] = true
		}
		for k := range a.Resources {
			v.total[k] = addSat64(v.total[k], a.Resources[k])
		}
	}
	return nil
}

func addSat64(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func (v *validator) consumers() error {
	s := v.s
	if len(s.Consumers) == 0 {
		return v.errf("consumers", "no consumers: sessions run under consumers")
	}
	v.byName = make(map[string]int, len(s.Consumers))
	for i, c := range s.Consumers {
		p := v.path("consumers", i)
		_, dup := v.byName[c.Name]
		switch {
		case c.Name == "":
			return v.errf(join(p, "name"), "a consumer's name is empty")
		case strings.ContainsAny(c.Name, " \t\r\n"):
			return v.errf(join(p, "name"), "%q has white space", c.Name)
		case dup:
			return v.errf(join(p, "name"), "consumer %q is defined twice", c.Name)
		case c.Weight < 0 || math.IsNaN(c.Weight) || math.IsInf(c.Weight, 0):
			return v.errf(join(p, "weight"), "%v is not a positive number", c.Weight)
		case c.Grace < 0:
			return v.errf(join(p, "grace"), "%v is negative", c.Grace)
		}
		v.byName[c.Name] = i
		if err := v.negative(join(p, "owned"), c.Owned); err != nil {
			return err
		}
		if err := v.negative(join(p, "limit"), c.Limit); err != nil {
			return err
		}
		for k := range c.Owned {
			if c.Limit[k] > 0 && c.Owned[k] > c.Limit[k] {
				kind := scheduler.Kind(k)
				return v.errf(join(p, "owned."+resourceKeys[k]), "%s is above the limit, %s", amount(kind, c.Owned[k]), amount(kind, c.Limit[k]))
			}
		}
	}
	v.parent = make([]bool, len(s.Consumers))
	for i, c := range s.Consumers {
		if c.Parent == "" {
			continue
		}
		j, ok := v.byName[c.Parent]
		if !ok {
			return v.errf(join(v.path("consumers", i), "parent"), "consumer %q is not defined", c.Parent)
		}
		v.parent[j] = true
	}
	if err := v.levels(); err != nil {
		return err
	}
	v.children = make([][]int, len(s.Consumers))
	for i, c := range s.Consumers {
		if c.Parent != "" {
			j := v.byName[c.Parent]
			v.children[j] = append(v.children[j], i)
		}
	}
	// Children own no more than their parent, where it owns something.
	sums := make([]scheduler.Resources, len(s.Consumers))
	for i, c := range s.Consumers {
		if c.Parent == "" {
			continue
		}
		j := v.byName[c.Parent]
		par := s.Consumers[j]
		if !par.Owned.Any() {
			continue
		}
		for k := range c.Owned {
			sums[j][k] = addSat64(sums[j][k], c.Owned[k])
			if sums[j][k] > par.Owned[k] {
				kind := scheduler.Kind(k)
				return v.errf(join(v.path("consumers", i), "owned."+resourceKeys[k]),
					"with its siblings, the children of %q own %s, more than the %s it owns", c.Parent, amount(kind, sums[j][k]), amount(kind, par.Owned[k]))
			}
		}
	}
	// The top of the tree owns no more than the cluster has.
	var top scheduler.Resources
	for i, c := range s.Consumers {
		if c.Parent != "" {
			continue
		}
		own := v.ownedOf(i)
		for k := range own {
			top[k] = addSat64(top[k], own[k])
			if top[k] > v.total[k] {
				kind := scheduler.Kind(k)
				return v.errf(join(v.path("consumers", i), "owned."+resourceKeys[k]),
					"the top-level consumers own %s in all, more than the cluster's %s", amount(kind, top[k]), amount(kind, v.total[k]))
			}
		}
	}
	return nil
}

// levels checks that every consumer reaches the top of the tree (one in a
// cycle never does) within maxDepth levels, whether the tree is written
// nested, flat (parent:) or both. Each consumer's level is found once, so
// a chain of any length takes linear time; the error names the first
// consumer, in the order of the list, that is too deep or whose parents
// loop, at its parent field.
func (v *validator) levels() error {
	cs := v.s.Consumers
	const unknown, visiting = -1, -2
	level := make([]int, len(cs))
	for i := range level {
		level[i] = unknown
	}
	var chain []int // from a consumer up to the first with a known level
	for i, c := range cs {
		chain = chain[:0]
		at := i
		for level[at] < 0 {
			if level[at] == visiting {
				return v.errf(join(v.path("consumers", i), "parent"), "the parents of %q form a cycle", c.Name)
			}
			level[at] = visiting
			chain = append(chain, at)
			if cs[at].Parent == "" {
				break
			}
			at = v.byName[cs[at].Parent]
		}
		// Down the chain, each one level below its parent.
		next := -1
		if level[at] >= 0 {
			next = level[at]
		}
		for k := len(chain) - 1; k >= 0; k-- {
			next++
			level[chain[k]] = next
		}
		if level[i] >= maxDepth {
			// At its parent field, or at the entry of a consumer nested
			// in its parent.
			field := join(v.path("consumers", i), "parent")
			if _, ok := v.s.src.linesOf(field); !ok && v.s.src != nil {
				field = v.path("consumers", i)
			}
			return v.errf(field, "the consumer tree is deeper than %d", maxDepth)
		}
	}
	return nil
}

// ownedOf is what a consumer owns as its parent sees it: its owned
// share, or its children's where it owns nothing itself (the core's
// rule).
func (v *validator) ownedOf(i int) scheduler.Resources {
	c := v.s.Consumers[i]
	if c.Owned.Any() || !v.parent[i] {
		return c.Owned
	}
	var sum scheduler.Resources
	for _, j := range v.children[i] {
		o := v.ownedOf(j)
		for k := range sum {
			sum[k] = addSat64(sum[k], o[k])
		}
	}
	return sum
}

func (v *validator) sessions() error {
	s := v.s
	ids := make(map[string]bool, len(s.Sessions))
	for i, ss := range s.Sessions {
		p := v.path("sessions", i)
		spec := ss.Spec
		idField := join(p, "id")
		if _, ok := v.s.src.linesOf(join(p, "name")); ok {
			idField = join(p, "name")
		}
		switch {
		case spec.ID == "":
			return v.errf(idField, "a session's id is empty")
		case ids[spec.ID]:
			return v.errf(idField, "session id %q is repeated", spec.ID)
		case spec.Consumer == "":
			return v.errf(join(p, "consumer"), "session %s: the consumer is empty", spec.ID)
		}
		ids[spec.ID] = true
		if j, ok := v.byName[spec.Consumer]; !ok {
			return v.errf(join(p, "consumer"), "consumer %q is not defined", spec.Consumer)
		} else if v.parent[j] {
			return v.errf(join(p, "consumer"), "consumer %q has children: sessions run under leaf consumers", spec.Consumer)
		}
		switch spec.Kind {
		case scheduler.KindSpark, scheduler.KindPods, scheduler.KindBatch, scheduler.KindFramework:
		default:
			return v.errf(join(p, "kind"), "%q is not a kind: want spark, pods, batch or framework", spec.Kind)
		}
		switch spec.Policy {
		case scheduler.Binpack, scheduler.Spread:
		default:
			return v.errf(join(p, "policy"), "%q is not a policy: want binpack or spread", spec.Policy)
		}
		switch {
		case ss.SubmitAt < 0:
			return v.errf(join(p, "submit_at"), "%v is negative", ss.SubmitAt)
		case ss.FinishAt < 0:
			return v.errf(join(p, "finish_at"), "%v is negative", ss.FinishAt)
		case ss.FinishAt > 0 && ss.FinishAt <= ss.SubmitAt:
			return v.errf(join(p, "finish_at"), "session %s finishes at %v, not after it is submitted at %v", spec.ID, ss.FinishAt, ss.SubmitAt)
		case len(spec.Groups) == 0:
			return v.errf(join(p, "groups"), "session %s has no task groups", spec.ID)
		}
		if err := v.work(p, ss); err != nil {
			return err
		}
		if err := v.groups(p, ss); err != nil {
			return err
		}
	}
	return nil
}

func (v *validator) groups(p string, ss Session) error {
	names := map[string]bool{}
	for j, g := range ss.Spec.Groups {
		gp := fmt.Sprintf("%s.groups[%d]", p, j)
		switch {
		case g.Name == "":
			return v.errf(join(gp, "name"), "a group's name is empty")
		case names[g.Name]:
			return v.errf(join(gp, "name"), "group %q is repeated", g.Name)
		}
		names[g.Name] = true
		if err := v.negative(gp, g.Resources); err != nil {
			return err
		}
		gpu := g.Resources[scheduler.GPU]
		switch {
		case !g.Resources.Any():
			return v.errf(join(gp, "cpus"), "the tasks of group %s ask for nothing", g.Name)
		case gpu > 1000 && gpu%1000 != 0:
			return v.errf(join(gp, "gpus"), "%s GPUs: a task takes a fraction of one GPU (below 1) or whole GPUs", amount(scheduler.GPU, gpu))
		case g.Count < 0:
			return v.errf(join(gp, "count"), "%d is negative", g.Count)
		case g.Min < 0:
			return v.errf(join(gp, "min"), "%d is negative", g.Min)
		case g.Max < 0:
			return v.errf(join(gp, "max"), "%d is negative", g.Max)
		case g.Max > 0 && g.Min > g.Max:
			return v.errf(join(gp, "min"), "%d is above max %d", g.Min, g.Max)
		case g.Max > 0 && g.Count > g.Max:
			return v.errf(join(gp, "count"), "%d is above max %d", g.Count, g.Max)
		case g.SameIsland && gpu == 0:
			return v.errf(join(gp, "same_island"), "set, but the tasks ask for no gpus")
		case len(g.GPUModels) > 0 && gpu == 0:
			return v.errf(join(gp, "gpu_models"), "set, but the tasks ask for no gpus")
		}
		for k, c := range g.Constraints {
			cp := fmt.Sprintf("%s.constraints[%d]", gp, k)
			switch {
			case c.Attribute == "":
				return v.errf(join(cp, "attribute"), "the attribute is empty")
			case c.Op != scheduler.OpIn && c.Op != scheduler.OpNotIn:
				return v.errf(cp, "operator %q: want in or not_in", c.Op)
			case len(c.Values) == 0:
				return v.errf(join(cp, c.Op), "no values")
			}
		}
		for k, m := range g.GPUModels {
			if !v.models[m] {
				return v.errf(fmt.Sprintf("%s.gpu_models[%d]", gp, k), "no agent has GPU model %q: the cluster has %s", m, v.modelList())
			}
		}
		if d, ok := ss.Durations[g.Name]; ok {
			if err := d.Validate(); err != nil {
				f, e := splitParam(err)
				return v.errf(join(join(gp, "duration"), f), "%v", e)
			}
		}
	}
	extra := []string{}
	for name := range ss.Durations {
		if !names[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return v.errf(join(p, "groups"), "durations for unknown groups %s", strings.Join(extra, ", "))
	}
	return nil
}

func (v *validator) modelList() string {
	if len(v.models) == 0 {
		return "no GPUs"
	}
	ms := make([]string, 0, len(v.models))
	for m := range v.models {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return strings.Join(ms, ", ")
}

// work checks what only the simulator uses: stages and dynamic
// allocation.
func (v *validator) work(p string, ss Session) error {
	spark := ss.Spec.Kind == scheduler.KindSpark
	if len(ss.Stages) > 0 && !spark {
		return v.errf(join(p, "stages"), "a %s session has no stages: only spark sessions do", ss.Spec.Kind)
	}
	for k, st := range ss.Stages {
		sp := fmt.Sprintf("%s.stages[%d]", p, k)
		if st.Tasks < 1 {
			return v.errf(join(sp, "tasks"), "%d: want at least 1", st.Tasks)
		}
		if err := st.Duration.Validate(); err != nil {
			f, e := splitParam(err)
			return v.errf(join(join(sp, "duration"), f), "%v", e)
		}
	}
	d := ss.Dynamic
	if d == nil {
		return nil
	}
	dp := join(p, "dynamic_allocation")
	if !spark {
		return v.errf(dp, "a %s session has no dynamic allocation: only spark sessions do", ss.Spec.Kind)
	}
	j := -1
	for i, g := range ss.Spec.Groups {
		if g.Name == d.Group {
			j = i
		}
	}
	switch {
	case j < 0:
		return v.errf(join(dp, "group"), "session %s has no group %q", ss.Spec.ID, d.Group)
	case d.Min < 0:
		return v.errf(join(dp, "min"), "%d is negative", d.Min)
	case d.Max < 1:
		return v.errf(join(dp, "max"), "%d: want at least 1", d.Max)
	case d.Min > d.Max:
		return v.errf(join(dp, "min"), "%d is above max %d", d.Min, d.Max)
	case d.Initial < d.Min:
		return v.errf(join(dp, "initial"), "%d is below min %d", d.Initial, d.Min)
	case d.Initial > d.Max:
		return v.errf(join(dp, "initial"), "%d is above max %d", d.Initial, d.Max)
	case d.IdleTimeout < 0:
		return v.errf(join(dp, "idle_timeout"), "%v is negative", d.IdleTimeout)
	case d.BacklogTimeout < 0:
		return v.errf(join(dp, "backlog_timeout"), "%v is negative", d.BacklogTimeout)
	}
	g := ss.Spec.Groups[j]
	gp := fmt.Sprintf("%s.groups[%d]", p, j)
	switch {
	case g.Count != d.Initial:
		return v.errf(join(gp, "count"), "%d, but the group starts with dynamic_allocation.initial, %d", g.Count, d.Initial)
	case g.Max != d.Max:
		return v.errf(join(gp, "max"), "%d, but the group's max is dynamic_allocation.max, %d", g.Max, d.Max)
	}
	return nil
}

func (src *sources) linesOf(path string) (int, bool) {
	if src == nil {
		return 0, false
	}
	l, ok := src.lines[path]
	return l, ok
}

// amount prints a resource amount the way a file writes it: cores and
// GPUs as numbers, memory and disk as quantities.
func amount(k scheduler.Kind, v int64) string {
	switch k {
	case scheduler.CPU, scheduler.GPU:
		return strconv.FormatFloat(float64(v)/1000, 'f', -1, 64)
	case scheduler.Memory, scheduler.Disk:
		units := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
		i := 0
		for v != 0 && v%1024 == 0 && i < len(units)-1 {
			v /= 1024
			i++
		}
		return strconv.FormatInt(v, 10) + units[i]
	}
	return strconv.FormatInt(v, 10)
}
