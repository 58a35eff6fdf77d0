// Package isolatorstest is the conformance suite every isolator's tests call:
//
//	func TestConformance(t *testing.T) {
//		isolatorstest.Run(t, func(t *testing.T) isolators.Isolator { return New(...) })
//	}
//
// It checks the parts of the contract that hold for every isolator, whatever
// it isolates: a stable name, Cleanup that is idempotent and accepts unknown
// IDs, Prepare followed by Cleanup leaving the isolator able to prepare the
// same ID again, not-found errors for unknown containers, and Recover with no
// containers.
package isolatorstest

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/oci"
)

// Factory returns a fresh isolator for one subtest. It registers its own
// cleanup with t.Cleanup.
type Factory func(t *testing.T) isolators.Isolator

// Options tune the suite for isolators that need more than an ID to prepare.
type Options struct {
	// Request, when set, returns the PrepareRequest used by the lifecycle
	// checks; the default has only a container ID and a small spec.
	Request func(t *testing.T, id string) *isolators.PrepareRequest
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+(/[a-z0-9][a-z0-9._-]*)+$`)

// Run runs the conformance suite.
func Run(t *testing.T, newIsolator Factory, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Request == nil {
		o.Request = func(t *testing.T, id string) *isolators.PrepareRequest {
			return &isolators.PrepareRequest{ContainerID: id, Spec: api.ContainerSpec{Command: []string{"true"}}}
		}
	}
	ctx := context.Background()

	t.Run("Name", func(t *testing.T) {
		iso := newIsolator(t)
		name := iso.Name()
		if !nameRE.MatchString(name) {
			t.Fatalf("Name() = %q, want kind/name in lower case", name)
		}
		if again := iso.Name(); again != name {
			t.Fatalf("Name() changed from %q to %q", name, again)
		}
	})

	t.Run("CleanupUnknown", func(t *testing.T) {
		c, ok := newIsolator(t).(isolators.Cleaner)
		if !ok {
			t.Skip("not a Cleaner")
		}
		for i := 0; i < 2; i++ {
			if err := c.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: "conformance-unknown"}); err != nil {
				t.Fatalf("Cleanup(unknown) #%d: %v", i+1, err)
			}
		}
	})

	t.Run("PrepareCleanupTwice", func(t *testing.T) {
		iso := newIsolator(t)
		p, ok := iso.(isolators.Preparer)
		if !ok {
			t.Skip("not a Preparer")
		}
		id := "conformance-prep"
		for round := 0; round < 2; round++ {
			var resp isolators.PrepareResponse
			if err := p.Prepare(ctx, o.Request(t, id), &resp); err != nil {
				t.Fatalf("Prepare round %d: %v", round+1, err)
			}
			// The response must apply cleanly to the default spec.
			s := oci.Default()
			if err := oci.Apply(s, resp.SpecOpts...); err != nil {
				t.Fatalf("applying SpecOpts: %v", err)
			}
			if c, ok := iso.(isolators.Cleaner); ok {
				for i := 0; i < 2; i++ {
					if err := c.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: id, Spec: s}); err != nil {
						t.Fatalf("Cleanup #%d after Prepare: %v", i+1, err)
					}
				}
			}
		}
	})

	t.Run("UnknownContainer", func(t *testing.T) {
		iso := newIsolator(t)
		id := "conformance-never-prepared"
		if u, ok := iso.(isolators.UsageReporter); ok {
			var usage api.Usage
			if err := u.Usage(ctx, &isolators.UsageRequest{ContainerID: id}, &usage); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Usage(unknown) = %v, want an error wrapping api.ErrNotFound", err)
			}
		}
		if u, ok := iso.(isolators.Updater); ok {
			err := u.Update(ctx, &isolators.UpdateRequest{ContainerID: id, Resources: api.Resources{CPUs: 1}})
			if !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Update(unknown) = %v, want an error wrapping api.ErrNotFound", err)
			}
		}
		if w, ok := iso.(isolators.Watcher); ok {
			wctx, cancel := context.WithCancel(ctx)
			cancel()
			lim, err := w.Watch(wctx, &isolators.WatchRequest{ContainerID: id})
			if lim != nil {
				t.Errorf("Watch(unknown) reported limitation %+v", lim)
			}
			if err != nil && !errors.Is(err, api.ErrNotFound) {
				t.Errorf("Watch(unknown, cancelled) = %v, want nil or api.ErrNotFound", err)
			}
		}
	})

	t.Run("RecoverEmpty", func(t *testing.T) {
		r, ok := newIsolator(t).(isolators.Recoverer)
		if !ok {
			t.Skip("not a Recoverer")
		}
		for i := 0; i < 2; i++ {
			if err := r.Recover(ctx, &isolators.RecoverRequest{}); err != nil {
				t.Fatalf("Recover(no containers) #%d: %v", i+1, err)
			}
		}
	})
}
