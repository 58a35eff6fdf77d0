// Package api holds the wire and domain types shared by the CLI, the agent and
// the scheduler: container requests and statuses, resources, usage statistics,
// and the sentinel errors every layer wraps. A FieldError says which field of
// a request is at fault, in the request's own terms, for each front end to
// name as it does (the CLI by its flag). It imports only the standard
// library, so every other package can depend on it.
package api
