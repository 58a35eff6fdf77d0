package scenario

import (
	"fmt"
	"time"

	"github.com/caisson/caisson/scheduler"
)

// Version is the scenario format this package reads. A file says which
// format it is written in with a top-level "version: 1".
const Version = 1

// Scenario is a workload for the simulator: a cluster of agents, a consumer
// tree, and sessions that arrive and leave at virtual times. It is what a
// scenario file says with every default filled in and every repeated agent
// or session expanded.
type Scenario struct {
	// Name is the name the file was loaded under (its path for Load).
	Name string
	// Version is the format the file is written in: Version.
	Version int
	// Seed seeds the random durations: the same seed gives the same run.
	Seed uint64
	// Duration is how long the run lasts in virtual time; 0 is until
	// every session has finished.
	Duration time.Duration
	// Tick is the virtual time between two ticks of the core.
	Tick time.Duration
	// Config tunes the core; zero fields take the core's defaults.
	Config scheduler.Config
	// Consumers is the consumer tree, every parent before its children.
	Consumers []scheduler.ConsumerSpec
	// Agents is the cluster, groups of identical agents expanded.
	Agents []scheduler.AgentSpec
	// Sessions are in file order, repeated sessions expanded in place.
	Sessions []Session

	// src locates each consumer, agent and session in the file, for the
	// errors of Validate. It is nil for a Scenario built in code.
	src *sources
}

// DefaultTick is the tick of a scenario that names none.
const DefaultTick = 100 * time.Millisecond

// Session is a session of the scenario: what the core is told
// (Spec) and what only the simulator knows: when the session comes and
// goes, how long its tasks run, and how a Spark session's work unfolds.
type Session struct {
	Spec scheduler.SessionSpec
	// SubmitAt is when the session is submitted, from the start of the
	// run.
	SubmitAt time.Duration
	// FinishAt, when not zero, is when the session is finished from the
	// start of the run, whatever its tasks are doing. At zero a session
	// finishes once its work is done: every task of a group with a
	// duration has run and every stage is complete.
	FinishAt time.Duration
	// Durations says how long each task of a group runs, by group name.
	// The tasks of a group that is not in the map run until the session
	// finishes (Spark executors, services).
	Durations map[string]Dist
	// Stages is a Spark session's work, run one stage after the other on
	// its executors. Only spark sessions have stages.
	Stages []Stage
	// Dynamic is a Spark session's dynamic allocation; nil for a fixed
	// number of executors.
	Dynamic *DynamicAllocation
}

// Stage is one Spark stage: Tasks tasks, each running for a duration drawn
// from Duration on a free executor slot.
type Stage struct {
	Tasks    int
	Duration Dist
}

// DynamicAllocation is Spark's dynamic allocation of executors
// (spark.dynamicAllocation.*): the executor group starts with Initial
// tasks, grows while tasks have waited longer than BacklogTimeout, up to
// Max, and releases executors idle for IdleTimeout, down to Min.
type DynamicAllocation struct {
	// Group is the executor group the allocation manages.
	Group          string
	Min            int
	Initial        int
	Max            int
	IdleTimeout    time.Duration
	BacklogTimeout time.Duration
}

// Dynamic allocation defaults, Spark's own.
const (
	DefaultIdleTimeout    = 60 * time.Second
	DefaultBacklogTimeout = time.Second
)

// Error is a problem with a scenario file, located: the file, the line
// and the field. Every error Parse and Validate return is an *Error and
// wraps api.ErrInvalid.
type Error struct {
	File string
	// Line is 1-based; 0 when the problem has no line (a Scenario built
	// in code).
	Line int
	// Field is the path of the field, as in
	// "sessions[2].groups[0].cpus"; empty for a YAML syntax error.
	Field string
	Err   error
}

// Error formats the error as "file:line: field: what is wrong".
func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s = fmt.Sprintf("%s:%d", s, e.Line)
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns what is wrong.
func (e *Error) Unwrap() error { return e.Err }

// sources maps the expanded consumers, agents and sessions back to the
// entries of the file they came from, and fields to lines.
type sources struct {
	consumers []string // path of each consumer's entry
	agents    []string // path of each agent's group
	sessions  []string // path of each session's entry
	lines     map[string]int
}
