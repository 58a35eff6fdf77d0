package scenario

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
)

// Bounds on what a file may expand to, so that a typo in a count cannot
// exhaust memory.
const (
	maxAgents    = 100_000
	maxGPUs      = 200_000 // devices in the whole cluster
	maxAgentGPUs = 256
	maxConsumers = 100_000
	maxDepth     = 32 // of the consumer tree
	maxSessions  = 100_000
	maxCount     = 10_000_000 // tasks of a group or a stage
)

// scenario walks the top of the file.
func (w *walker) scenario(n *yaml.Node) (*Scenario, error) {
	top := deref(n)
	if top.Kind != yaml.MappingNode {
		return nil, w.errf(n, "", "want a mapping of fields starting with \"version: %d\", not %s", Version, describe(top))
	}
	// The version decides how to read the rest: check it first.
	found := false
	for i := 0; i+1 < len(top.Content); i += 2 {
		if k := top.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "version" {
			v, err := w.integer(top.Content[i+1], "version", math.MinInt64, math.MaxInt64)
			if err != nil {
				return nil, err
			}
			if v != Version {
				return nil, w.errf(top.Content[i+1], "version", "%d is not a version this program reads: want %d", v, Version)
			}
			found = true
		}
	}
	if !found {
		return nil, w.errf(top, "version", "missing: a scenario starts with \"version: %d\"", Version)
	}

	s := &Scenario{Name: w.file, Version: Version, Tick: DefaultTick}
	w.consumerNames = map[string]bool{}
	var consumers []consumerEntry
	var agents []agentEntry
	var sessions []sessionEntry
	dur := func(dst *time.Duration) func(string, *yaml.Node) error {
		return func(p string, v *yaml.Node) (err error) {
			*dst, err = w.duration(v, p)
			return err
		}
	}
	seen, err := w.mapping(top, "", handlers{
		"version": func(string, *yaml.Node) error { return nil },
		"seed": func(p string, v *yaml.Node) error {
			seed, err := w.integer(v, p, 0, math.MaxInt64)
			s.Seed = uint64(seed)
			return err
		},
		"duration": dur(&s.Duration),
		"tick":     dur(&s.Tick),
		"config": func(p string, v *yaml.Node) error {
			_, err := w.mapping(v, p, handlers{
				"offer_fanout": func(p string, v *yaml.Node) (err error) {
					s.Config.OfferFanout, err = w.count(v, p, 1_000_000)
					return err
				},
				"offer_timeout": dur(&s.Config.OfferTimeout),
				"refuse":        dur(&s.Config.Refuse),
				"grace":         dur(&s.Config.Grace),
			})
			return err
		},
		"consumers": func(p string, v *yaml.Node) error {
			return w.sequence(v, p, func(p string, it *yaml.Node) error {
				return w.consumer(p, it, "", 0, &consumers)
			})
		},
		"agents": func(p string, v *yaml.Node) error {
			return w.sequence(v, p, func(p string, it *yaml.Node) error {
				a, err := w.agentGroup(p, it)
				agents = append(agents, a)
				return err
			})
		},
		"sessions": func(p string, v *yaml.Node) error {
			return w.sequence(v, p, func(p string, it *yaml.Node) error {
				e, err := w.session(p, it)
				sessions = append(sessions, e)
				return err
			})
		},
	})
	if err != nil {
		return nil, err
	}
	if err := w.required(top, "", seen, "consumers", "agents"); err != nil {
		return nil, err
	}

	s.src = &sources{lines: w.lines}
	for _, c := range treeOrder(consumers) {
		s.Consumers = append(s.Consumers, c.spec)
		s.src.consumers = append(s.src.consumers, c.path)
	}
	for _, g := range agents {
		for _, a := range g.agents {
			s.Agents = append(s.Agents, a)
			s.src.agents = append(s.src.agents, g.path)
		}
	}
	for i, e := range sessions {
		for _, ss := range e.expand(s.Seed, uint64(i)) {
			s.Sessions = append(s.Sessions, ss)
			s.src.sessions = append(s.src.sessions, e.path)
		}
	}
	return s, nil
}

type consumerEntry struct {
	path  string
	spec  scheduler.ConsumerSpec
	index int // in file order
}

// consumer walks a consumer and, after it, its children. parent is the
// name of the consumer it is nested in.
func (w *walker) consumer(path string, n *yaml.Node, parent string, depth int, out *[]consumerEntry) error {
	if depth >= maxDepth {
		return w.errf(n, path, "the consumer tree is deeper than %d", maxDepth)
	}
	if len(*out) >= maxConsumers {
		return w.errf(n, path, "more than %d consumers", maxConsumers)
	}
	spec := scheduler.ConsumerSpec{Parent: parent}
	lend := true
	var children *yaml.Node
	var childrenPath string
	seen, err := w.mapping(n, path, handlers{
		"name": func(p string, v *yaml.Node) (err error) {
			if spec.Name, err = w.str(v, p); err != nil {
				return err
			}
			if w.consumerNames[spec.Name] {
				return w.errf(v, p, "consumer %q is defined twice", spec.Name)
			}
			w.consumerNames[spec.Name] = true
			return nil
		},
		"parent": func(p string, v *yaml.Node) (err error) {
			if parent != "" {
				return w.errf(v, p, "a nested consumer's parent is the consumer it is nested in")
			}
			spec.Parent, err = w.str(v, p)
			return err
		},
		"weight": func(p string, v *yaml.Node) (err error) {
			spec.Weight, err = w.number(v, p)
			if err == nil && spec.Weight < 0 {
				err = w.errf(v, p, "%v is negative", spec.Weight)
			}
			return err
		},
		"owned": func(p string, v *yaml.Node) (err error) {
			spec.Owned, err = w.resources(v, p)
			return err
		},
		"limit": func(p string, v *yaml.Node) (err error) {
			spec.Limit, err = w.resources(v, p)
			return err
		},
		"lend": func(p string, v *yaml.Node) (err error) {
			lend, err = w.boolean(v, p)
			return err
		},
		"grace": func(p string, v *yaml.Node) (err error) {
			spec.Grace, err = w.duration(v, p)
			return err
		},
		"children": func(p string, v *yaml.Node) error {
			children, childrenPath = v, p
			return nil
		},
	})
	if err != nil {
		return err
	}
	if err := w.required(n, path, seen, "name"); err != nil {
		return err
	}
	spec.NoLend = !lend
	*out = append(*out, consumerEntry{path: path, spec: spec, index: len(*out)})
	if children == nil {
		return nil
	}
	return w.sequence(children, childrenPath, func(p string, it *yaml.Node) error {
		return w.consumer(p, it, spec.Name, depth+1, out)
	})
}

// treeOrder puts every consumer after its parent, depth first in file
// order. Consumers whose parent is unknown or in a cycle go last, in file
// order, for Validate to report.
func treeOrder(cs []consumerEntry) []consumerEntry {
	kids := map[string][]consumerEntry{}
	known := map[string]bool{}
	for _, c := range cs {
		known[c.spec.Name] = true
	}
	var out []consumerEntry
	placed := make([]bool, len(cs))
	for _, c := range cs {
		if c.spec.Parent != "" && known[c.spec.Parent] {
			kids[c.spec.Parent] = append(kids[c.spec.Parent], c)
		}
	}
	var visit func(c consumerEntry)
	visit = func(c consumerEntry) {
		if placed[c.index] {
			return
		}
		placed[c.index] = true
		out = append(out, c)
		for _, k := range kids[c.spec.Name] {
			visit(k)
		}
	}
	for _, c := range cs {
		if c.spec.Parent == "" || !known[c.spec.Parent] {
			visit(c)
		}
	}
	for _, c := range cs {
		if !placed[c.index] {
			placed[c.index] = true
			out = append(out, c)
		}
	}
	return out
}

type agentEntry struct {
	path   string
	agents []scheduler.AgentSpec
}

// agentGroup walks a group of identical agents and expands it.
func (w *walker) agentGroup(path string, n *yaml.Node) (agentEntry, error) {
	e := agentEntry{path: path}
	var (
		prefix, model string
		count         = 1
		res           scheduler.Resources
		gpuMem        int64
		islands       int
		attrs         = map[string]string{}
		ports         []api.PortRange
	)
	hs := w.resourceHandlers(handlers{
		"name": func(p string, v *yaml.Node) (err error) {
			prefix, err = w.str(v, p)
			return err
		},
		"count": func(p string, v *yaml.Node) (err error) {
			count, err = w.count(v, p, maxAgents)
			return err
		},
		"gpu_model": func(p string, v *yaml.Node) (err error) {
			model, err = w.str(v, p)
			return err
		},
		"gpu_memory": func(p string, v *yaml.Node) (err error) {
			gpuMem, err = w.value(v, p, sizeBytes)
			return err
		},
		"port_ranges": func(p string, v *yaml.Node) error {
			return w.sequence(v, p, func(ip string, it *yaml.Node) error {
				s, err := w.str(it, ip)
				if err != nil {
					return err
				}
				r, err := api.ParsePortRange(s)
				if err != nil {
					return w.wrap(it, ip, err)
				}
				// In order, each after the one before: checking against
				// that one finds every overlap.
				if len(ports) > 0 {
					switch last := ports[len(ports)-1]; {
					case r.Overlaps(last):
						return w.wrap(it, ip, &api.PortOverlapError{First: last, Second: r})
					case r.Begin < last.Begin:
						return w.errf(it, ip, "%s comes before %s: list the ranges in order", r, last)
					}
				}
				ports = append(ports, r)
				return nil
			})
		},
		"nvlink_islands": func(p string, v *yaml.Node) (err error) {
			islands, err = w.count(v, p, maxAgentGPUs)
			if err == nil && islands == 0 {
				err = w.errf(v, p, "0 islands: want at least 1")
			}
			return err
		},
		"attributes": func(p string, v *yaml.Node) error {
			m := deref(v)
			if m.Kind != yaml.MappingNode {
				return w.errf(v, p, "want a mapping of names to values, not %s", describe(m))
			}
			for i := 0; i+1 < len(m.Content); i += 2 {
				k, err := w.str(m.Content[i], p)
				if err != nil {
					return err
				}
				kp := join(p, k)
				w.lines[kp] = m.Content[i].Line
				if _, dup := attrs[k]; dup {
					return w.errf(m.Content[i], kp, "the attribute is repeated")
				}
				if attrs[k], err = w.str(m.Content[i+1], kp); err != nil {
					return err
				}
			}
			return nil
		},
	}, &res, gpuWhole)
	seen, err := w.mapping(n, path, hs)
	if err != nil {
		return e, err
	}
	if err := w.required(n, path, seen, "name", "cpus", "memory"); err != nil {
		return e, err
	}
	if len(ports) > 0 {
		held := int64(0)
		for _, r := range ports {
			held += int64(r.Len())
		}
		if seen["ports"] && res[scheduler.Ports] != held {
			return e, w.errf(n, join(path, "ports"), "%d, but port_ranges hold %d: leave ports out", res[scheduler.Ports], held)
		}
		res[scheduler.Ports] = held
	}
	gpus := int(res[scheduler.GPU] / 1000)
	switch {
	case gpus > maxAgentGPUs:
		return e, w.errf(n, join(path, "gpus"), "%d GPUs: an agent has at most %d", gpus, maxAgentGPUs)
	case gpus == 0 && seen["gpu_model"]:
		return e, w.errf(n, join(path, "gpu_model"), "set, but the agents have no gpus")
	case gpus == 0 && seen["gpu_memory"]:
		return e, w.errf(n, join(path, "gpu_memory"), "set, but the agents have no gpus")
	case gpus == 0 && seen["nvlink_islands"]:
		return e, w.errf(n, join(path, "nvlink_islands"), "set, but the agents have no gpus")
	case gpus > 0 && model == "":
		return e, w.errf(n, join(path, "gpu_model"), "missing: agents with gpus need a gpu_model")
	case gpus > 0 && attrs["gpu_model"] != "":
		return e, w.errf(n, join(path, "attributes.gpu_model"), "set from gpu_model: leave it out of attributes")
	}
	if islands == 0 {
		islands = 1
	}
	if gpus%islands != 0 {
		return e, w.errf(n, join(path, "nvlink_islands"), "%d GPUs do not split evenly into %d islands", gpus, islands)
	}
	if w.agentCount += count; w.agentCount > maxAgents {
		return e, w.errf(n, join(path, "count"), "more than %d agents in all", maxAgents)
	}
	if w.gpuCount += count * gpus; w.gpuCount > maxGPUs {
		return e, w.errf(n, join(path, "gpus"), "more than %d GPUs in all", maxGPUs)
	}
	if gpus > 0 {
		attrs["gpu_model"] = model
	}
	width := max(4, len(strconv.Itoa(count)))
	e.agents = make([]scheduler.AgentSpec, 0, count)
	for i := 1; i <= count; i++ {
		a := scheduler.AgentSpec{
			ID:         fmt.Sprintf("%s-%0*d", prefix, width, i),
			Resources:  res,
			Attributes: make(map[string]string, len(attrs)),
			PortRanges: ports,
		}
		for k, v := range attrs {
			a.Attributes[k] = v
		}
		for g := range gpus {
			a.GPUs = append(a.GPUs, scheduler.GPUDevice{
				ID:          a.ID + "/gpu" + strconv.Itoa(g),
				Model:       model,
				MemoryBytes: gpuMem,
				Island:      g / (gpus / islands),
			})
		}
		e.agents = append(e.agents, a)
	}
	return e, nil
}

// sessionEntry is a session of the file, before it is repeated.
type sessionEntry struct {
	path  string
	name  string // the prefix of a repeated session; "" for an id
	count int
	every *Dist
	s     Session
}

// expand repeats the session count times, spacing the submissions by
// samples of every drawn from a stream of its own.
func (e sessionEntry) expand(seed, stream uint64) []Session {
	if e.name == "" {
		return []Session{e.s}
	}
	rng := rand.New(rand.NewPCG(seed, stream))
	width := max(4, len(strconv.Itoa(e.count)))
	out := make([]Session, 0, e.count)
	at := e.s.SubmitAt
	for i := 1; i <= e.count; i++ {
		if i > 1 && e.every != nil {
			at = addSat(at, e.every.Sample(rng))
		}
		c := e.s.clone()
		c.Spec.ID = fmt.Sprintf("%s-%0*d", e.name, width, i)
		c.SubmitAt = at
		if e.s.FinishAt > 0 {
			c.FinishAt = addSat(e.s.FinishAt, at-e.s.SubmitAt)
		}
		out = append(out, c)
	}
	return out
}

func addSat(a, b time.Duration) time.Duration {
	if a > maxSample-b {
		return maxSample
	}
	return a + b
}

// clone copies a session deeply, so that the copies of a repeated
// session share nothing.
func (s Session) clone() Session {
	c := s
	c.Spec.Groups = make([]scheduler.TaskGroup, len(s.Spec.Groups))
	for i, g := range s.Spec.Groups {
		g.GPUModels = slices.Clone(g.GPUModels)
		g.Constraints = slices.Clone(g.Constraints)
		for j := range g.Constraints {
			g.Constraints[j].Values = slices.Clone(g.Constraints[j].Values)
		}
		c.Spec.Groups[i] = g
	}
	if s.Durations != nil {
		c.Durations = make(map[string]Dist, len(s.Durations))
		for k, v := range s.Durations {
			c.Durations[k] = v
		}
	}
	c.Stages = slices.Clone(s.Stages)
	if s.Dynamic != nil {
		d := *s.Dynamic
		c.Dynamic = &d
	}
	return c
}

func (w *walker) session(path string, n *yaml.Node) (sessionEntry, error) {
	e := sessionEntry{path: path, count: 1}
	s := &e.s
	s.Spec.Kind = scheduler.KindBatch
	s.Spec.Policy = scheduler.Binpack
	var dyn *yaml.Node
	var dynPath string
	seen, err := w.mapping(n, path, handlers{
		"id": func(p string, v *yaml.Node) (err error) {
			s.Spec.ID, err = w.str(v, p)
			return err
		},
		"name": func(p string, v *yaml.Node) (err error) {
			e.name, err = w.str(v, p)
			return err
		},
		"count": func(p string, v *yaml.Node) (err error) {
			e.count, err = w.count(v, p, maxSessions)
			if err == nil && e.count == 0 {
				err = w.errf(v, p, "0 sessions: want at least 1")
			}
			return err
		},
		"every": func(p string, v *yaml.Node) error {
			d, err := w.dist(v, p)
			e.every = &d
			return err
		},
		"consumer": func(p string, v *yaml.Node) (err error) {
			s.Spec.Consumer, err = w.str(v, p)
			return err
		},
		"user": func(p string, v *yaml.Node) (err error) {
			s.Spec.User, err = w.str(v, p)
			return err
		},
		"priority": func(p string, v *yaml.Node) error {
			pr, err := w.integer(v, p, math.MinInt32, math.MaxInt32)
			s.Spec.Priority = int(pr)
			return err
		},
		"kind": func(p string, v *yaml.Node) (err error) {
			s.Spec.Kind, err = w.str(v, p)
			return err
		},
		"policy": func(p string, v *yaml.Node) (err error) {
			s.Spec.Policy, err = w.str(v, p)
			return err
		},
		"submit_at": func(p string, v *yaml.Node) (err error) {
			s.SubmitAt, err = w.duration(v, p)
			return err
		},
		"finish_at": func(p string, v *yaml.Node) (err error) {
			s.FinishAt, err = w.duration(v, p)
			return err
		},
		"groups": func(p string, v *yaml.Node) error {
			return w.sequence(v, p, func(p string, it *yaml.Node) error {
				return w.group(p, it, s)
			})
		},
		"dynamic_allocation": func(p string, v *yaml.Node) error {
			dyn, dynPath = v, p
			return nil
		},
		"stages": func(p string, v *yaml.Node) error {
			return w.sequence(v, p, func(p string, it *yaml.Node) error {
				var st Stage
				seen, err := w.mapping(it, p, handlers{
					"tasks": func(p string, v *yaml.Node) (err error) {
						st.Tasks, err = w.count(v, p, maxCount)
						if err == nil && st.Tasks == 0 {
							err = w.errf(v, p, "0 tasks: want at least 1")
						}
						return err
					},
					"duration": func(p string, v *yaml.Node) (err error) {
						st.Duration, err = w.dist(v, p)
						return err
					},
				})
				if err == nil {
					err = w.required(it, p, seen, "tasks", "duration")
				}
				s.Stages = append(s.Stages, st)
				return err
			})
		},
	})
	if err != nil {
		return e, err
	}
	switch {
	case seen["id"] && seen["name"]:
		return e, w.errf(n, join(path, "name"), "set with id: a session has an id, or a name and a count for many")
	case !seen["id"] && !seen["name"]:
		return e, w.errf(n, join(path, "id"), "missing: a session has an id, or a name and a count for many")
	case seen["count"] && !seen["name"]:
		return e, w.errf(n, join(path, "count"), "set with id: a repeated session has a name, its copies are name-0001, name-0002, ...")
	case seen["every"] && !seen["name"]:
		return e, w.errf(n, join(path, "every"), "set with id: only a repeated session has a gap between submissions")
	}
	if err := w.required(n, path, seen, "consumer", "groups"); err != nil {
		return e, err
	}
	if w.sessionCount += e.count; w.sessionCount > maxSessions {
		return e, w.errf(n, join(path, "count"), "more than %d sessions in all", maxSessions)
	}
	if dyn != nil {
		if err := w.dynamic(path, dynPath, dyn, s); err != nil {
			return e, err
		}
	}
	return e, nil
}

func (w *walker) group(path string, n *yaml.Node, s *Session) error {
	g := scheduler.TaskGroup{Count: 1}
	var dur *Dist
	hs := w.resourceHandlers(handlers{
		"name": func(p string, v *yaml.Node) (err error) {
			g.Name, err = w.str(v, p)
			return err
		},
		"count": func(p string, v *yaml.Node) (err error) {
			g.Count, err = w.count(v, p, maxCount)
			return err
		},
		"min": func(p string, v *yaml.Node) (err error) {
			g.Min, err = w.count(v, p, maxCount)
			return err
		},
		"max": func(p string, v *yaml.Node) (err error) {
			g.Max, err = w.count(v, p, maxCount)
			return err
		},
		"constraints": func(p string, v *yaml.Node) error {
			return w.sequence(v, p, func(p string, it *yaml.Node) error {
				var c scheduler.Constraint
				seen, err := w.mapping(it, p, handlers{
					"attribute": func(p string, v *yaml.Node) (err error) {
						c.Attribute, err = w.str(v, p)
						return err
					},
					scheduler.OpIn: func(p string, v *yaml.Node) (err error) {
						c.Op = scheduler.OpIn
						c.Values, err = w.strList(v, p)
						return err
					},
					scheduler.OpNotIn: func(p string, v *yaml.Node) (err error) {
						c.Op = scheduler.OpNotIn
						c.Values, err = w.strList(v, p)
						return err
					},
				})
				switch {
				case err != nil:
				case seen[scheduler.OpIn] && seen[scheduler.OpNotIn]:
					err = w.errf(it, join(p, scheduler.OpNotIn), "set with in: a constraint has one of in and not_in")
				case !seen[scheduler.OpIn] && !seen[scheduler.OpNotIn]:
					err = w.errf(it, join(p, scheduler.OpIn), "missing: a constraint has in or not_in")
				default:
					err = w.required(it, p, seen, "attribute")
				}
				g.Constraints = append(g.Constraints, c)
				return err
			})
		},
		"gpu_models": func(p string, v *yaml.Node) (err error) {
			g.GPUModels, err = w.strList(v, p)
			return err
		},
		"same_island": func(p string, v *yaml.Node) (err error) {
			g.SameIsland, err = w.boolean(v, p)
			return err
		},
		"duration": func(p string, v *yaml.Node) error {
			d, err := w.dist(v, p)
			dur = &d
			return err
		},
	}, &g.Resources, gpuTask)
	seen, err := w.mapping(n, path, hs)
	if err != nil {
		return err
	}
	if err := w.required(n, path, seen, "name"); err != nil {
		return err
	}
	if !g.Resources.Any() {
		return w.errf(n, join(path, "cpus"), "missing: a task asks for some cpus, memory, disk, ports or gpus")
	}
	if dur != nil {
		if s.Durations == nil {
			s.Durations = map[string]Dist{}
		}
		if _, dup := s.Durations[g.Name]; !dup { // a repeated name is Validate's to report
			s.Durations[g.Name] = *dur
		}
	}
	s.Spec.Groups = append(s.Spec.Groups, g)
	return nil
}

// dynamic walks a dynamic_allocation block and applies it to the group
// it manages: the group starts with initial tasks, at most max.
func (w *walker) dynamic(sessionPath, path string, n *yaml.Node, s *Session) error {
	d := &DynamicAllocation{IdleTimeout: DefaultIdleTimeout, BacklogTimeout: DefaultBacklogTimeout}
	cnt := func(dst *int) func(string, *yaml.Node) error {
		return func(p string, v *yaml.Node) (err error) {
			*dst, err = w.count(v, p, maxCount)
			return err
		}
	}
	seen, err := w.mapping(n, path, handlers{
		"group": func(p string, v *yaml.Node) (err error) {
			d.Group, err = w.str(v, p)
			return err
		},
		"min":     cnt(&d.Min),
		"initial": cnt(&d.Initial),
		"max":     cnt(&d.Max),
		"idle_timeout": func(p string, v *yaml.Node) (err error) {
			d.IdleTimeout, err = w.duration(v, p)
			return err
		},
		"backlog_timeout": func(p string, v *yaml.Node) (err error) {
			d.BacklogTimeout, err = w.duration(v, p)
			return err
		},
	})
	if err != nil {
		return err
	}
	if err := w.required(n, path, seen, "max"); err != nil {
		return err
	}
	if !seen["initial"] {
		d.Initial = d.Min
	}
	if d.Group == "" {
		if len(s.Spec.Groups) != 1 {
			return w.errf(n, join(path, "group"), "missing: the session has %d groups, name the executors' one", len(s.Spec.Groups))
		}
		d.Group = s.Spec.Groups[0].Name
	}
	s.Dynamic = d
	for i := range s.Spec.Groups {
		g := &s.Spec.Groups[i]
		if g.Name != d.Group {
			continue
		}
		gp := fmt.Sprintf("%s.groups[%d]", sessionPath, i)
		if w.lines[join(gp, "count")] != 0 {
			return w.errAt(join(gp, "count"), "set with dynamic_allocation: the group starts with dynamic_allocation.initial tasks")
		}
		if w.lines[join(gp, "max")] != 0 {
			return w.errAt(join(gp, "max"), "set with dynamic_allocation: the group's max is dynamic_allocation.max")
		}
		g.Count, g.Max = d.Initial, d.Max
	}
	// An unknown group is Validate's to report.
	return nil
}
