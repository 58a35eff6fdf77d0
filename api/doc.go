// Package api holds the wire and domain types shared by the CLI, the agent and
// the scheduler: container requests and statuses, resources, usage statistics,
// and the sentinel errors every layer wraps. It imports only the standard
// library, so every other package can depend on it.
package api
