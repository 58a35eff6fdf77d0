package scheduler

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
)

func TestAgentPortRangesInvalid(t *testing.T) {
	for name, spec := range map[string]AgentSpec{
		"overlap":      {ID: "a", PortRanges: []api.PortRange{{Begin: 100, End: 200}, {Begin: 150, End: 300}}},
		"out of order": {ID: "a", PortRanges: []api.PortRange{{Begin: 300, End: 400}, {Begin: 100, End: 200}}},
		"zero":         {ID: "a", PortRanges: []api.PortRange{{Begin: 0, End: 10}}},
		"reversed":     {ID: "a", PortRanges: []api.PortRange{{Begin: 20, End: 10}}},
		"count":        {ID: "a", Resources: Resources{Ports: 5}, PortRanges: []api.PortRange{{Begin: 100, End: 102}}},
	} {
		c := New(Config{})
		if r, err := c.Step(AgentAdded{Agent: spec}); !errors.Is(err, api.ErrInvalid) || !r.Empty() {
			t.Errorf("%s: %v, want ErrInvalid and nothing decided", name, err)
		}
	}
}

// Tasks that ask for ports get the lowest free ones of the agent's ranges;
// an ended task's ports go to the next; an agent that only counts ports
// gives none by number.
func TestPortsAssigned(t *testing.T) {
	withPorts := func(r Resources, n int64) Resources { r[Ports] = n; return r }
	c := New(Config{})
	for _, ev := range []Event{
		Tick{Now: t0},
		ConsumersSet{Consumers: []ConsumerSpec{{Name: "t"}}},
		AgentAdded{Agent: AgentSpec{ID: "named", Resources: Res(8000, 8<<30), PortRanges: []api.PortRange{{Begin: 31000, End: 31002}, {Begin: 31010, End: 31010}}}},
	} {
		must(t, c, ev)
	}
	ports := func(r *Ready) [][]int {
		var out [][]int
		for _, l := range r.Launches {
			out = append(out, l.Ports)
		}
		return out
	}
	r := must(t, c, SessionSubmitted{Session: SessionSpec{ID: "s", Consumer: "t", Groups: []TaskGroup{{Name: "g", Resources: withPorts(Res(1000, 1<<30), 2), Count: 3}}}})
	if diff := cmp.Diff([][]int{{31000, 31001}, {31002, 31010}}, ports(r)); diff != "" {
		t.Fatalf("ports (-want +got):\n%s", diff)
	}
	r = must(t, c, TaskFinished{Task: "s/g/1"})
	if diff := cmp.Diff([][]int{{31000, 31001}}, ports(r)); diff != "" {
		t.Fatalf("after a task ended, ports (-want +got):\n%s", diff)
	}
	// The update may grow the ranges but not drop a held port.
	if _, err := c.Step(AgentUpdated{Agent: AgentSpec{ID: "named", Resources: Res(8000, 8<<30), PortRanges: []api.PortRange{{Begin: 31000, End: 31002}}}}); !errors.Is(err, api.ErrConflict) {
		t.Fatalf("update dropping held port 31010: %v, want ErrConflict", err)
	}
	must(t, c, AgentUpdated{Agent: AgentSpec{ID: "named", Resources: Res(8000, 8<<30), PortRanges: []api.PortRange{{Begin: 31000, End: 31002}, {Begin: 31010, End: 31011}}}})
	r = must(t, c, SessionSubmitted{Session: SessionSpec{ID: "one", Consumer: "t", Groups: []TaskGroup{{Name: "g", Resources: withPorts(Res(1000, 1<<30), 1), Count: 2}}}})
	if diff := cmp.Diff([][]int{{31011}}, ports(r)); diff != "" {
		t.Fatalf("after the ranges grew, ports (-want +got):\n%s", diff)
	}
	// A bare count: the task runs, with no port numbers.
	r = must(t, c, AgentAdded{Agent: AgentSpec{ID: "counted", Resources: withPorts(Res(8000, 8<<30), 10)}})
	if len(r.Launches) != 1 || r.Launches[0].Agent != "counted" || len(r.Launches[0].Ports) != 0 {
		t.Fatalf("launches %+v: want one task on the counting agent, without port numbers", r.Launches)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
}

// An offer lists the agent's free ports; the accepted task gets the lowest.
func TestOfferPorts(t *testing.T) {
	c := New(Config{})
	for _, ev := range []Event{
		Tick{Now: t0},
		ConsumersSet{Consumers: []ConsumerSpec{{Name: "t"}}},
		AgentAdded{Agent: AgentSpec{ID: "a", Resources: Res(8000, 8<<30), PortRanges: []api.PortRange{{Begin: 100, End: 105}, {Begin: 200, End: 200}}}},
		SessionSubmitted{Session: SessionSpec{ID: "pods", Consumer: "t", Groups: []TaskGroup{{Name: "g", Resources: Resources{CPU: 1000, Memory: 1 << 30, Ports: 2}, Count: 1}}}},
	} {
		must(t, c, ev)
	}
	r := must(t, c, SessionSubmitted{Session: SessionSpec{ID: "fw", Consumer: "t", Kind: KindFramework, Groups: []TaskGroup{{Name: "g", Resources: Resources{CPU: 1000, Memory: 1 << 30, Ports: 3}, Count: 1}}}})
	if len(r.Offers) != 1 {
		t.Fatalf("offers %+v: want one", r.Offers)
	}
	want := []api.PortRange{{Begin: 102, End: 105}, {Begin: 200, End: 200}}
	if diff := cmp.Diff(want, r.Offers[0].Ports); diff != "" {
		t.Fatalf("offered ports (-want +got):\n%s", diff)
	}
	r = must(t, c, OfferAccepted{Offer: r.Offers[0].ID, Tasks: []AcceptedTask{{Group: "g", Count: 1}}})
	if len(r.Launches) != 1 || !cmp.Equal(r.Launches[0].Ports, []int{102, 103, 104}) {
		t.Fatalf("launches %+v: want one on ports 102-104", r.Launches)
	}
	if got := c.agents[0].freePorts(); !cmp.Equal(got, []api.PortRange{{Begin: 105, End: 105}, {Begin: 200, End: 200}}) {
		t.Errorf("free ports %v after the launch", got)
	}
}
