// Package scenario reads the scenario files that `caisson sim` replays
// against the scheduler core in virtual time: a cluster of agents, a
// consumer tree, and sessions that arrive, run tasks for sampled
// durations, grow and shrink (Spark's dynamic allocation) and leave.
//
// A scenario file is YAML, versioned ("version: 1" first), and written by
// hand: groups of identical agents ("count: 48" expands into cpu-a-0001
// ... cpu-a-0048), a consumer tree written nested (children:) or flat
// (parent:), sizes as Kubernetes quantities (16Gi), cores as numbers or
// millicores (0.5, 500m), durations as Go durations (30s) or
// distributions ({dist: lognormal, median: 2s, sigma: 1}). The format is
// described field by field in examples/README.md; examples/sim-*.yaml are
// working scenarios.
//
//	file ──Parse──▶ YAML nodes ──walk──▶ Scenario ──Validate──▶ simulator
//	                (syntax)    (types, units,    (names, tree, shares,
//	                             unknown fields)   references)
//
// What the core knows is kept in scheduler types (ConsumerSpec,
// AgentSpec, SessionSpec); what only the simulator needs (submit and
// finish times, task durations, Spark stages and dynamic allocation)
// wraps them in Session.
//
// Load reads at most MaxFileBytes of a file (userfile.ReadFile): a FIFO
// works, /dev/zero or a directory is refused. Loading is all or nothing:
// the first problem, in file order, is returned as an *Error that reads
// "file:line: field: what is wrong" and wraps api.ErrInvalid, and no
// Scenario comes with it.
package scenario
