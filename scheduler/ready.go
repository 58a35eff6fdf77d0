package scheduler

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caisson/caisson/api"
)

// Ready is what the core decided while handling one event. Its slices are
// reused by the next Step: copy what must outlive it. Apply rescinds and
// kills before offers and launches: a launch may use what a kill freed.
type Ready struct {
	// Offers for framework sessions to accept or decline. Offers the
	// built-in scheduler took are in Launches, not here.
	Offers []Offer `json:"offers,omitempty"`
	// Rescinds withdraw offers whose resources are gone or that expired.
	Rescinds []Rescind `json:"rescinds,omitempty"`
	// Launches are tasks to start on agents.
	Launches []Launch `json:"launches,omitempty"`
	// Notices warn a session that a task will be killed at Deadline to
	// give its resources back (reclaim or preemption).
	Notices []Notice `json:"notices,omitempty"`
	// Withdrawals cancel notices: the task will not be killed after all.
	Withdrawals []Withdrawal `json:"withdrawals,omitempty"`
	// Kills are tasks to stop now.
	Kills []Kill `json:"kills,omitempty"`
	// Conflicts are accepts that were rejected.
	Conflicts []Conflict `json:"conflicts,omitempty"`
}

// Empty reports whether nothing was decided.
func (r *Ready) Empty() bool {
	return len(r.Offers)+len(r.Rescinds)+len(r.Launches)+len(r.Notices)+len(r.Withdrawals)+len(r.Kills)+len(r.Conflicts) == 0
}

func (r *Ready) reset() {
	r.Offers = r.Offers[:0]
	r.Rescinds = r.Rescinds[:0]
	r.Launches = r.Launches[:0]
	r.Notices = r.Notices[:0]
	r.Withdrawals = r.Withdrawals[:0]
	r.Kills = r.Kills[:0]
	r.Conflicts = r.Conflicts[:0]
}

// Offer gives an agent's free resources to a session. With an offer
// fan-out above one, the same resources go to several sessions at once;
// the first valid accept wins.
type Offer struct {
	ID        string    `json:"id"`
	Session   string    `json:"session"`
	Agent     string    `json:"agent"`
	Resources Resources `json:"resources"`
	// GPUs are the free devices of the agent, by ID.
	GPUs []string `json:"gpus,omitempty"`
	// Ports are the agent's free host ports, where it names them; a task
	// accepted with Resources[Ports] is given the lowest free ones.
	Ports []api.PortRange `json:"ports,omitempty"`
	// Revocable resources are borrowed: tasks on them may be reclaimed.
	Revocable bool `json:"revocable,omitempty"`
}

// Rescind withdraws an offer.
type Rescind struct {
	Offer   string `json:"offer"`
	Session string `json:"session"`
	Reason  string `json:"reason"`
}

// Launch starts a task.
type Launch struct {
	Task      string    `json:"task"`
	Session   string    `json:"session"`
	Group     string    `json:"group"`
	Agent     string    `json:"agent"`
	Resources Resources `json:"resources"`
	// GPUs are the devices granted, by ID. A task that asked for a
	// fraction of a GPU (Resources[GPU] below 1000) shares its one device.
	GPUs []string `json:"gpus,omitempty"`
	// Ports are the host ports granted, on an agent that names its
	// ports (AgentSpec.PortRanges).
	Ports     []int `json:"ports,omitempty"`
	Revocable bool  `json:"revocable,omitempty"`
}

// Notice warns that a task will be killed.
type Notice struct {
	Task     string    `json:"task"`
	Session  string    `json:"session"`
	Deadline time.Time `json:"deadline"`
	Reason   string    `json:"reason"`
	// Consumer is the leaf the task's resources are taken back for;
	// Preempt says it is the task's own consumer, for a session of
	// higher priority, rather than an owner reclaiming what was lent.
	Consumer string `json:"consumer"`
	Preempt  bool   `json:"preempt,omitempty"`
}

// Withdrawal cancels a notice: the consumer the task's resources were
// taken back for no longer needs them.
type Withdrawal struct {
	Task     string `json:"task"`
	Session  string `json:"session"`
	Consumer string `json:"consumer"`
	Reason   string `json:"reason"`
}

// Kill stops a task.
type Kill struct {
	Task    string `json:"task"`
	Session string `json:"session"`
	Agent   string `json:"agent"`
	Reason  string `json:"reason"`
}

// Conflict is an accept that was rejected.
type Conflict struct {
	Offer   string `json:"offer"`
	Session string `json:"session"`
	Reason  string `json:"reason"`
}

// String prints the decisions one per line, for golden files and logs, in
// the order a caller applies them: withdrawals and kills before new
// offers and launches.
func (r *Ready) String() string {
	var b strings.Builder
	for _, o := range r.Rescinds {
		fmt.Fprintf(&b, "rescind %s %s: %s\n", o.Offer, o.Session, o.Reason)
	}
	for _, c := range r.Conflicts {
		fmt.Fprintf(&b, "conflict %s: %s\n", strings.TrimSpace(c.Offer+" "+c.Session), c.Reason)
	}
	for _, k := range r.Kills {
		fmt.Fprintf(&b, "kill %s agent=%s: %s\n", k.Task, k.Agent, k.Reason)
	}
	for _, w := range r.Withdrawals {
		fmt.Fprintf(&b, "withdraw %s: %s\n", w.Task, w.Reason)
	}
	for _, n := range r.Notices {
		fmt.Fprintf(&b, "notice %s deadline=%s: %s\n", n.Task, n.Deadline.UTC().Format(time.RFC3339), n.Reason)
	}
	for _, o := range r.Offers {
		rev := ""
		if o.Revocable {
			rev = " revocable"
		}
		fmt.Fprintf(&b, "offer %s %s agent=%s %s%s%s%s\n", o.ID, o.Session, o.Agent, o.Resources, gpuList(o.GPUs), rangeList(o.Ports), rev)
	}
	for _, l := range r.Launches {
		rev := ""
		if l.Revocable {
			rev = " revocable"
		}
		fmt.Fprintf(&b, "launch %s agent=%s %s%s%s%s\n", l.Task, l.Agent, l.Resources, gpuList(l.GPUs), portList(l.Ports), rev)
	}
	return b.String()
}

func portList(ports []int) string {
	if len(ports) == 0 {
		return ""
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return " host-ports=" + strings.Join(s, ",")
}

func rangeList(rs []api.PortRange) string {
	if len(rs) == 0 {
		return ""
	}
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return " host-ports=" + strings.Join(s, ",")
}

func gpuList(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return " gpus=" + strings.Join(ids, ",")
}
