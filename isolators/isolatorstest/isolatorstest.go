// Package isolatorstest is the conformance suite every isolator's tests call
// (after containerd's snapshotter test suite):
//
//	func TestConformance(t *testing.T) {
//		isolatorstest.Run(t, func(t *testing.T) isolators.Isolator { return New(...) })
//	}
//
// It checks the parts of the contract that hold for every isolator, whatever
// it isolates:
//
//   - Name: stable, "kind/name" in lower case;
//   - PrepareCleanupTwice: Prepare followed by Cleanup (twice) leaves the
//     isolator able to prepare the same ID again, and releases what Prepare
//     held;
//   - PrepareMerges: the PrepareResponse goes through isolators.Merge into
//     the default spec, and everything it sets is in the merged spec;
//   - UnknownContainer: for every capability the isolator has, a call for a
//     container it never prepared does what the contract says (not found,
//     nothing to clean, no limitation...) and leaves a prepared container
//     alone;
//   - RecoverEmpty: Recover with no containers.
//
// Options.Holds, which tells the suite whether the isolator holds anything
// for a container, makes the checks see what the isolator keeps, not only
// what it answers.
package isolatorstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

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
	// Holds, when set, reports whether iso holds anything for the
	// container id (a record, a mount, an allocation): the checks then
	// assert that Cleanup releases it and that calls for other containers
	// leave it.
	Holds func(t *testing.T, iso isolators.Isolator, id string) bool
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+(/[a-z0-9][a-z0-9._-]*)+$`)

// IDs the suite uses.
const (
	preparedID = "conformance-prep"
	unknownID  = "conformance-never-prepared"
)

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

	t.Run("PrepareCleanupTwice", func(t *testing.T) {
		iso := newIsolator(t)
		if _, ok := iso.(isolators.Preparer); !ok {
			t.Skip("not a Preparer")
		}
		checkPrepareCleanup(ctx, t, t, iso, o)
	})

	t.Run("PrepareMerges", func(t *testing.T) {
		iso := newIsolator(t)
		p, ok := iso.(isolators.Preparer)
		if !ok {
			t.Skip("not a Preparer")
		}
		var resp isolators.PrepareResponse
		if err := p.Prepare(ctx, o.Request(t, preparedID), &resp); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		t.Cleanup(func() { cleanup(ctx, t, iso, preparedID) })
		checkMerges(t, p.Name(), &resp)
	})

	t.Run("UnknownContainer", func(t *testing.T) {
		checked := 0
		for _, c := range unknownChecks {
			t.Run(c.capability, func(t *testing.T) {
				iso := newIsolator(t)
				if !c.has(iso) {
					t.Skip("not a " + c.capability)
				}
				checked++
				c.check(ctx, t, t, iso, o)
			})
		}
		if checked == 0 {
			t.Errorf("%s has none of the capabilities the suite checks", newIsolator(t).Name())
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

// reporter is what the checks report to: a *testing.T, or the suite's own
// tests' recorder.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// cleanup cleans up id, if iso is a Cleaner.
func cleanup(ctx context.Context, r reporter, iso isolators.Isolator, id string) {
	r.Helper()
	if c, ok := iso.(isolators.Cleaner); ok {
		if err := c.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: id}); err != nil {
			r.Errorf("Cleanup(%s): %v", id, err)
		}
	}
}

func checkCleanupUnknown(ctx context.Context, r reporter, c isolators.Cleaner) {
	r.Helper()
	for i := 0; i < 2; i++ {
		if err := c.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: unknownID}); err != nil {
			r.Errorf("Cleanup(unknown) #%d: %v", i+1, err)
			return
		}
	}
}

// checkPrepareCleanup prepares one ID twice, cleaning it up twice after
// each, and checks that Cleanup releases what Prepare held.
func checkPrepareCleanup(ctx context.Context, t *testing.T, r reporter, iso isolators.Isolator, o Options) {
	r.Helper()
	p := iso.(isolators.Preparer)
	for round := 1; round <= 2; round++ {
		var resp isolators.PrepareResponse
		if err := p.Prepare(ctx, o.Request(t, preparedID), &resp); err != nil {
			r.Errorf("Prepare round %d: %v", round, err)
			return
		}
		// The response must apply cleanly to the default spec.
		s := oci.Default()
		if err := oci.Apply(s, resp.SpecOpts...); err != nil {
			r.Errorf("applying SpecOpts: %v", err)
			return
		}
		c, ok := iso.(isolators.Cleaner)
		if !ok {
			continue
		}
		for i := 1; i <= 2; i++ {
			if err := c.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: preparedID, Spec: s}); err != nil {
				r.Errorf("Cleanup #%d after Prepare: %v", i, err)
				return
			}
		}
		if o.Holds != nil && o.Holds(t, iso, preparedID) {
			r.Errorf("round %d: after Cleanup, the isolator still holds something for the container", round)
		}
	}
}

// checkMerges runs a PrepareResponse through the merge into the default
// spec, and checks that everything it sets is in the merged spec.
func checkMerges(r reporter, name string, resp *isolators.PrepareResponse) {
	r.Helper()
	s := oci.Default()
	if err := isolators.Merge(s, []isolators.Contribution{{Isolator: name, Response: resp}}, nil); err != nil {
		r.Errorf("the response does not merge into the default spec: %v", err)
		return
	}
	if _, err := json.Marshal(s); err != nil {
		r.Errorf("the merged spec cannot be written: %v", err)
	}
	for _, p := range missing(s, resp) {
		r.Errorf("the merged spec lacks what the response sets: %s", p)
	}
}

// missing lists what resp sets that the merged spec s lacks.
func missing(s *oci.Spec, resp *isolators.PrepareResponse) []string {
	var out []string
	for _, kv := range resp.Env {
		if !slices.Contains(s.Process.Env, kv) {
			out = append(out, "environment variable "+kv)
		}
	}
	for _, m := range resp.Mounts {
		if !slices.ContainsFunc(s.Mounts, func(got specs.Mount) bool { return reflect.DeepEqual(got, m) }) {
			out = append(out, "mount "+m.Destination)
		}
	}
	for _, n := range resp.Namespaces {
		if !slices.Contains(s.Linux.Namespaces, n) {
			out = append(out, fmt.Sprintf("%s namespace %q", n.Type, n.Path))
		}
	}
	for _, d := range resp.Devices {
		if !slices.ContainsFunc(s.Linux.Devices, func(got specs.LinuxDevice) bool {
			return got.Path == d.Path && got.Major == d.Major && got.Minor == d.Minor
		}) {
			out = append(out, "device "+d.Path)
		}
	}
	for _, rule := range resp.DeviceRules {
		if !slices.ContainsFunc(s.Linux.Resources.Devices, func(got specs.LinuxDeviceCgroup) bool { return reflect.DeepEqual(got, rule) }) {
			out = append(out, fmt.Sprintf("device rule %+v", rule))
		}
	}
	if resp.CgroupsPath != "" && s.Linux.CgroupsPath != resp.CgroupsPath {
		out = append(out, "cgroup path "+resp.CgroupsPath)
	}
	if res := resp.Resources; res != nil {
		got := s.Linux.Resources
		if res.CPU != nil && !reflect.DeepEqual(got.CPU, res.CPU) {
			out = append(out, "cpu resources")
		}
		if res.Memory != nil && !reflect.DeepEqual(got.Memory, res.Memory) {
			out = append(out, "memory resources")
		}
		if res.Pids != nil && !reflect.DeepEqual(got.Pids, res.Pids) {
			out = append(out, "pids resources")
		}
		for k, v := range res.Unified {
			if got.Unified[k] != v {
				out = append(out, "cgroup file "+k)
			}
		}
	}
	for k, v := range resp.Annotations {
		if s.Annotations[k] != v {
			out = append(out, "annotation "+k)
		}
	}
	return out
}

// unknownCheck is what UnknownContainer checks of isolators with one
// capability.
type unknownCheck struct {
	capability string
	has        func(isolators.Isolator) bool
	// check reports to r; t is what Options' functions get.
	check func(ctx context.Context, t *testing.T, r reporter, iso isolators.Isolator, o Options)
}

func is[T any](iso isolators.Isolator) bool { _, ok := iso.(T); return ok }

// unknownChecks cover every capability of the contract: each asserts
// something of an isolator that has it.
var unknownChecks = []unknownCheck{
	{"Preparer", is[isolators.Preparer], func(ctx context.Context, t *testing.T, r reporter, iso isolators.Isolator, o Options) {
		checkLeavesPrepared(ctx, t, r, iso, o)
	}},
	{"PidIsolator", is[isolators.PidIsolator], func(ctx context.Context, _ *testing.T, r reporter, iso isolators.Isolator, _ Options) {
		checkIsolateUnknown(ctx, r, iso.(isolators.PidIsolator))
	}},
	{"StartedIsolator", is[isolators.StartedIsolator], func(ctx context.Context, _ *testing.T, r reporter, iso isolators.Isolator, _ Options) {
		checkStartedUnknown(ctx, r, iso.(isolators.StartedIsolator))
	}},
	{"Watcher", is[isolators.Watcher], func(ctx context.Context, _ *testing.T, r reporter, iso isolators.Isolator, _ Options) {
		checkWatchUnknown(ctx, r, iso.(isolators.Watcher))
	}},
	{"Updater", is[isolators.Updater], func(ctx context.Context, _ *testing.T, r reporter, iso isolators.Isolator, _ Options) {
		checkUpdateUnknown(ctx, r, iso.(isolators.Updater))
	}},
	{"UsageReporter", is[isolators.UsageReporter], func(ctx context.Context, _ *testing.T, r reporter, iso isolators.Isolator, _ Options) {
		checkUsageUnknown(ctx, r, iso.(isolators.UsageReporter))
	}},
	{"StatusReporter", is[isolators.StatusReporter], func(ctx context.Context, _ *testing.T, r reporter, iso isolators.Isolator, _ Options) {
		checkStatusUnknown(ctx, r, iso.(isolators.StatusReporter))
	}},
	{"Cleaner", is[isolators.Cleaner], func(ctx context.Context, _ *testing.T, r reporter, iso isolators.Isolator, _ Options) {
		checkCleanupUnknown(ctx, r, iso.(isolators.Cleaner))
	}},
	{"Recoverer", is[isolators.Recoverer], func(ctx context.Context, _ *testing.T, r reporter, iso isolators.Isolator, _ Options) {
		checkRecoverUnknown(ctx, r, iso.(isolators.Recoverer))
	}},
}

// checkIsolateUnknown: Isolate of a container never prepared acts on
// nothing; it succeeds or says the container is not found.
func checkIsolateUnknown(ctx context.Context, r reporter, pi isolators.PidIsolator) {
	r.Helper()
	err := pi.Isolate(ctx, &isolators.IsolateRequest{ContainerID: unknownID})
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		r.Errorf("Isolate(unknown) = %v, want nil or an error wrapping api.ErrNotFound", err)
	}
}

// checkStartedUnknown: Started of a container never prepared acts on
// nothing; it succeeds or says the container is not found.
func checkStartedUnknown(ctx context.Context, r reporter, si isolators.StartedIsolator) {
	r.Helper()
	err := si.Started(ctx, &isolators.IsolateRequest{ContainerID: unknownID})
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		r.Errorf("Started(unknown) = %v, want nil or an error wrapping api.ErrNotFound", err)
	}
}

// checkWatchUnknown: a Watch of a container never prepared, whose context
// is done, reports no limitation.
func checkWatchUnknown(ctx context.Context, r reporter, w isolators.Watcher) {
	r.Helper()
	wctx, cancel := context.WithCancel(ctx)
	cancel()
	lim, err := w.Watch(wctx, &isolators.WatchRequest{ContainerID: unknownID})
	if lim != nil {
		r.Errorf("Watch(unknown) reported limitation %+v", lim)
	}
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		r.Errorf("Watch(unknown, cancelled) = %v, want nil or api.ErrNotFound", err)
	}
}

func checkUpdateUnknown(ctx context.Context, r reporter, u isolators.Updater) {
	r.Helper()
	err := u.Update(ctx, &isolators.UpdateRequest{ContainerID: unknownID, Resources: api.Resources{CPUs: 1}})
	if !errors.Is(err, api.ErrNotFound) {
		r.Errorf("Update(unknown) = %v, want an error wrapping api.ErrNotFound", err)
	}
}

func checkUsageUnknown(ctx context.Context, r reporter, u isolators.UsageReporter) {
	r.Helper()
	var usage api.Usage
	if err := u.Usage(ctx, &isolators.UsageRequest{ContainerID: unknownID}, &usage); !errors.Is(err, api.ErrNotFound) {
		r.Errorf("Usage(unknown) = %v, want an error wrapping api.ErrNotFound", err)
	}
}

// checkStatusUnknown: the status of a container never prepared has no
// networks and no GPUs (it may say where its cgroup would be).
func checkStatusUnknown(ctx context.Context, r reporter, s isolators.StatusReporter) {
	r.Helper()
	var resp isolators.StatusResponse
	err := s.Status(ctx, &isolators.StatusRequest{ContainerID: unknownID}, &resp)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		r.Errorf("Status(unknown) = %v, want nil or an error wrapping api.ErrNotFound", err)
	}
	if len(resp.Networks) > 0 || len(resp.GPUs) > 0 {
		r.Errorf("Status(unknown) reported networks %+v and GPUs %+v, want none", resp.Networks, resp.GPUs)
	}
}

// checkRecoverUnknown: Recover that names a container it never saw, as a
// container or as an orphan, succeeds, twice.
func checkRecoverUnknown(ctx context.Context, r reporter, rc isolators.Recoverer) {
	r.Helper()
	for _, req := range []*isolators.RecoverRequest{
		{Orphans: []string{unknownID}},
		{Containers: []isolators.RecoveredContainer{{ID: unknownID}}},
	} {
		for i := 0; i < 2; i++ {
			if err := rc.Recover(ctx, req); err != nil {
				r.Errorf("Recover(%+v) #%d: %v", *req, i+1, err)
				return
			}
		}
	}
}

// checkLeavesPrepared prepares a container, makes every call the isolator
// has for a container it never prepared, and checks that the prepared one
// is as it was: still held, and still released by its Cleanup.
func checkLeavesPrepared(ctx context.Context, t *testing.T, r reporter, iso isolators.Isolator, o Options) {
	r.Helper()
	var resp isolators.PrepareResponse
	if err := iso.(isolators.Preparer).Prepare(ctx, o.Request(t, preparedID), &resp); err != nil {
		r.Errorf("Prepare: %v", err)
		return
	}
	held := o.Holds != nil && o.Holds(t, iso, preparedID)
	quiet := &discard{}
	if c, ok := iso.(isolators.Cleaner); ok {
		checkCleanupUnknown(ctx, quiet, c)
	}
	if rc, ok := iso.(isolators.Recoverer); ok {
		err := rc.Recover(ctx, &isolators.RecoverRequest{Containers: []isolators.RecoveredContainer{{ID: preparedID}}, Orphans: []string{unknownID}})
		if err != nil {
			r.Errorf("Recover(the prepared container, an unknown orphan): %v", err)
		}
	}
	if pi, ok := iso.(isolators.PidIsolator); ok {
		checkIsolateUnknown(ctx, quiet, pi)
	}
	if si, ok := iso.(isolators.StartedIsolator); ok {
		checkStartedUnknown(ctx, quiet, si)
	}
	if w, ok := iso.(isolators.Watcher); ok {
		checkWatchUnknown(ctx, quiet, w)
	}
	if u, ok := iso.(isolators.Updater); ok {
		checkUpdateUnknown(ctx, quiet, u)
	}
	if u, ok := iso.(isolators.UsageReporter); ok {
		checkUsageUnknown(ctx, quiet, u)
	}
	if s, ok := iso.(isolators.StatusReporter); ok {
		checkStatusUnknown(ctx, quiet, s)
	}
	if o.Holds != nil {
		if o.Holds(t, iso, preparedID) != held {
			r.Errorf("calls for an unknown container changed what the isolator holds for a prepared one (held before: %v)", held)
		}
		if o.Holds(t, iso, unknownID) {
			r.Errorf("calls for an unknown container made the isolator hold something for it")
		}
	}
	cleanup(ctx, r, iso, preparedID)
	if o.Holds != nil && o.Holds(t, iso, preparedID) {
		r.Errorf("after Cleanup, the isolator still holds something for the prepared container")
	}
}

// discard is a reporter that forgets: the checks it is given are the
// other subtests', run here only for what they do.
type discard struct{}

func (*discard) Helper()               {}
func (*discard) Errorf(string, ...any) {}
