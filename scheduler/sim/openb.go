package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/scheduler"
	"github.com/caisson/caisson/scheduler/scenario"
	"github.com/caisson/caisson/scheduler/trace"
)

// OpenBTick is the tick of a trace replay: the trace counts in seconds.
const OpenBTick = time.Second

// FromOpenB turns the Alibaba GPU trace into a scenario: every node an
// agent; every pod a session of kind pods with one task that runs for the
// pod's lifetime in the trace, submitted when the pod was created (from
// the first creation). The trace has no tenants: the pods' QoS classes
// (LS, BE, Burstable, Guaranteed) become consumers of equal weight that
// own nothing, so the chart shows how the classes share the cluster.
func FromOpenB(name string, nodes []trace.Node, pods []trace.Pod) (*scenario.Scenario, error) {
	if len(nodes) == 0 || len(pods) == 0 {
		return nil, fmt.Errorf("openb: %d nodes and %d pods: a replay needs both: %w", len(nodes), len(pods), api.ErrInvalid)
	}
	sc := &scenario.Scenario{Name: name, Version: scenario.Version, Tick: OpenBTick}
	for _, n := range nodes {
		sc.Agents = append(sc.Agents, n.Agent())
	}
	first := slices.MinFunc(pods, func(a, b trace.Pod) int { return int(a.CreatedAt - b.CreatedAt) }).CreatedAt
	seen := map[string]bool{}
	for _, p := range pods {
		consumer := qosConsumer(p.QoS)
		if !seen[consumer] {
			seen[consumer] = true
			sc.Consumers = append(sc.Consumers, scheduler.ConsumerSpec{Name: consumer})
		}
		spec := p.Session(consumer)
		spec.Policy = scheduler.Binpack
		sc.Sessions = append(sc.Sessions, scenario.Session{
			Spec:      spec,
			SubmitAt:  p.CreatedAt - first,
			Durations: map[string]scenario.Dist{"pod": scenario.FixedDist(p.Runtime())},
		})
	}
	slices.SortFunc(sc.Consumers, func(a, b scheduler.ConsumerSpec) int { return strings.Compare(a.Name, b.Name) })
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return sc, nil
}

// qosConsumer names the consumer of a QoS class.
func qosConsumer(qos string) string {
	if qos == "" {
		return "default"
	}
	return strings.ToLower(qos)
}
