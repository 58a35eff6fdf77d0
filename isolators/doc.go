// Package isolators defines the contract between the containerizer and the
// isolators it composes.
//
// Every isolator has a Name. Each lifecycle point is a separate one-method
// interface, found by type assertion, so an isolator implements only the
// points it cares about:
//
//	            ┌──────────── Recover (after a restart: rebuild state, clean orphans)
//	            ▼
//	Prepare ──▶ runtime create ──▶ Isolate(pid) ──▶ runtime start ──▶ Started(pid) ──▶ Watch ┐
//	(in order;                      (in order)                        (in order)        Usage  │ while it runs
//	 return spec changes)                                                               Status │
//	                                                                                    Update ┘
//	                    runtime kill + delete ──▶ Cleanup (reverse order, idempotent)
//
// Prepare describes; the containerizer applies. A Preparer returns runtime-spec
// changes in a PrepareResponse and never calls the runtime itself. The
// containerizer merges the responses of all isolators with Merge, by the
// conflict rules documented on PrepareResponse: it records which isolator set
// each part of the spec, and a second setter gets a *ConflictError that names
// both.
//
// Cleanup is called at least once after Prepare was called, whether or not
// Prepare succeeded, and may be called for containers the isolator never saw:
// it must succeed for unknown IDs and when called twice.
//
// Every isolator's tests call isolatorstest.Run, the conformance suite.
package isolators
