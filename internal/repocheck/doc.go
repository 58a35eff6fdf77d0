// Package repocheck has no code of its own. Its tests check the lists the
// Makefile keeps by hand against the sources, so that they cannot drift:
// every native fuzz target (func FuzzXxx(*testing.F)) is run by `make
// fuzz`, and every package that starts goroutines (a go statement in its
// code or its tests) is run under the race detector by `make test-race`.
// They run with the other tests (make test-unit), so CI fails on a new fuzz
// target or a new concurrent package that the Makefile does not name.
package repocheck
