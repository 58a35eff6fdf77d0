//go:build linux

package containerizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators"
)

// The launch's lifecycle on the scripted fakes: what is called, in which
// order and in which process, when everything works, when one call fails,
// and when the process crashes at a crash point. None of it needs root.

// twoIsolators are a plain isolator and one that acts on the created
// process (so that the runtime creates and starts in two calls).
func twoIsolators() []fakeIsolatorSpec {
	return []fakeIsolatorSpec{{Name: "test/a"}, {Name: "test/b", Isolates: true}}
}

// undone is what undoing a launch calls, in the launcher: the runtime's
// container goes, every isolator cleans up, in reverse order, and the root
// filesystem is released.
var undone = []string{"runtime delete", "test/b cleanup", "test/a cleanup", "release"}

func command(args ...string) api.ContainerSpec {
	return api.ContainerSpec{Command: args}
}

// A launch calls every isolator at each of its lifecycle points, in
// order, and its monitor cleans each up once, in reverse order, after the
// exit; with AutoRemove it then releases the root filesystem.
func TestLaunchLifecycle(t *testing.T) {
	for _, autoRemove := range []bool{false, true} {
		t.Run(fmt.Sprintf("rm=%v", autoRemove), func(t *testing.T) {
			ctx := context.Background()
			e := newFakeEnv(t, fakeScript{Isolators: twoIsolators()})
			spec := command("exit", "3")
			spec.AutoRemove = autoRemove
			l, err := e.c.Launch(ctx, spec, LaunchOptions{Attach: true})
			if err != nil {
				t.Fatal(err)
			}
			term, err := l.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&api.Termination{ExitCode: 3, Reason: api.ReasonExited}, term, ignoreTime); diff != "" {
				t.Errorf("termination (-want +got):\n%s", diff)
			}
			want := []string{"runtime check", "provision", "test/a prepare", "test/b prepare", "test/b isolate", "runtime start"}
			if diff := cmp.Diff(want, e.since(0, roleLauncher)); diff != "" {
				t.Errorf("the launcher's calls (-want +got):\n%s", diff)
			}
			want = []string{"runtime create", "runtime delete", "test/b cleanup", "test/a cleanup", "unmount"}
			if autoRemove {
				want = append(want, "release")
			}
			if diff := cmp.Diff(want, e.since(0, roleMonitor)); diff != "" {
				t.Errorf("the monitor's calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"test/a watch", "test/b watch"}, e.watches(0)); diff != "" {
				t.Errorf("watches (-want +got):\n%s", diff)
			}
			if !autoRemove {
				mustDo(t, e.c.Remove(ctx, l.Container.ID, false))
			}
			if left := e.left(); len(left) > 0 {
				t.Errorf("left after the removal: %v", left)
			}
		})
	}
}

// ignoreTime leaves out a termination's time.
var ignoreTime = cmp.Comparer(func(a, b *api.Termination) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.FinishedAt = y.FinishedAt
	return x == y
})

// A failure at any point of a launch undoes every step before it, in
// reverse order, and leaves nothing behind: no directory, no ledger entry,
// no runtime state, no process.
func TestLaunchFailureUndoes(t *testing.T) {
	prefix := []string{"runtime check", "provision", "test/a prepare", "test/b prepare"}
	conflicting := func(name string) fakeIsolatorSpec {
		return fakeIsolatorSpec{Name: name, Prepare: &isolators.PrepareResponse{Env: []string{"OWNER=" + name}}}
	}
	for _, tc := range []struct {
		name      string
		isolators []fakeIsolatorSpec
		rule      fakeRule
		spec      api.ContainerSpec
		want      error
		launcher  []string // the launcher's calls until the failure
		monitor   []string
	}{
		{name: "runtime check", rule: fakeRule{Call: "runtime check", Err: "unavailable"}, want: api.ErrUnavailable,
			launcher: []string{"runtime check"}},
		{name: "provision", rule: fakeRule{Call: "provision", Err: "fake"}, want: errFake,
			launcher: append(prefix[:2:2], undone...)},
		{name: "first prepare", rule: fakeRule{Call: "test/a prepare", Err: "fake"}, want: errFake,
			launcher: append(prefix[:3:3], undone...)},
		{name: "second prepare", rule: fakeRule{Call: "test/b prepare", Err: "fake"}, want: errFake,
			launcher: append(prefix[:4:4], undone...)},
		{name: "conflicting prepares", isolators: []fakeIsolatorSpec{conflicting("test/a"), {Name: "test/b", Isolates: true, Prepare: conflicting("test/b").Prepare}},
			want: api.ErrConflict, launcher: append(prefix[:4:4], undone...)},
		{name: "network nobody attaches", spec: api.ContainerSpec{Networks: []string{"web"}}, want: api.ErrInvalid,
			launcher: append(prefix[:4:4], undone...)},
		{name: "volume nobody mounts", spec: api.ContainerSpec{Volumes: []api.VolumeMount{{Driver: "local", Name: "v", Target: "/v"}}}, want: api.ErrInvalid,
			launcher: append(prefix[:4:4], undone...)},
		{name: "runtime create", rule: fakeRule{Call: "runtime create", Err: "command-not-found"}, want: api.ErrCommandNotFound,
			launcher: append(prefix[:4:4], undone...), monitor: []string{"runtime create"}},
		{name: "isolate", rule: fakeRule{Call: "test/b isolate", Err: "fake"}, want: errFake,
			launcher: append(append(prefix[:4:4], "test/b isolate"), undone...), monitor: []string{"runtime create"}},
		{name: "runtime start", rule: fakeRule{Call: "runtime start", Err: "fake"}, want: errFake,
			launcher: append(append(prefix[:4:4], "test/b isolate", "runtime start"), undone...), monitor: []string{"runtime create"}},
		{name: "started", isolators: []fakeIsolatorSpec{{Name: "test/a"}, {Name: "test/b", Started: true}},
			rule: fakeRule{Call: "test/b started", Err: "fake"}, want: errFake,
			launcher: append(append(prefix[:4:4], "test/b started"), undone...), monitor: []string{"runtime create"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isos := tc.isolators
			if isos == nil {
				isos = twoIsolators()
			}
			e := newFakeEnv(t, fakeScript{Isolators: isos, Rules: []fakeRule{tc.rule}})
			spec := tc.spec
			spec.Command = []string{"wait"}
			_, err := e.c.Launch(context.Background(), spec, LaunchOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("launch = %v, want an error wrapping %v", err, tc.want)
			}
			e.checkUndone(tc.launcher, tc.monitor)
		})
	}
}

// checkUndone checks what a failed launch called, in the launcher and in
// its monitor, and that it left nothing.
func (e *fakeEnv) checkUndone(launcher, monitor []string) {
	e.t.Helper()
	if diff := cmp.Diff(launcher, e.since(0, roleLauncher)); diff != "" {
		e.t.Errorf("the launcher's calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(monitor, e.since(0, roleMonitor)); diff != "" {
		e.t.Errorf("the monitor's calls (-want +got):\n%s", diff)
	}
	if left := e.left(); len(left) > 0 {
		e.t.Errorf("left after the failed launch: %v", left)
	}
}

// PrepareMonitor is called once before each monitor starts, and by
// nothing else (a listing, a recovery, a removal); when it fails, the
// launch fails before the monitor starts and is undone.
func TestPrepareMonitor(t *testing.T) {
	ctx := context.Background()
	t.Run("once per launch", func(t *testing.T) {
		calls := 0
		e := newFakeEnv(t, fakeScript{Isolators: twoIsolators()}, Config{PrepareMonitor: func() error { calls++; return nil }})
		if _, err := e.c.List(ctx); err != nil {
			t.Fatal(err)
		}
		mustDo(t, e.c.Recover(ctx, true))
		if calls != 0 {
			t.Fatalf("prepared %d monitors before any launch", calls)
		}
		l, err := e.c.Launch(ctx, command("exit", "0"), LaunchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		mustDo(t, e.c.Remove(ctx, l.Container.ID, false))
		if calls != 1 {
			t.Errorf("prepared %d monitors for one launch", calls)
		}
	})
	t.Run("fails", func(t *testing.T) {
		e := newFakeEnv(t, fakeScript{Isolators: twoIsolators()}, Config{PrepareMonitor: func() error { return errFake }})
		if _, err := e.c.Launch(ctx, command("exit", "0"), LaunchOptions{}); !errors.Is(err, errFake) {
			t.Fatalf("launch = %v, want the failure to prepare the monitor", err)
		}
		if got := e.since(0, roleMonitor); len(got) > 0 {
			t.Errorf("a monitor ran: %v", got)
		}
		if left := e.left(); len(left) > 0 {
			t.Errorf("left after the failed launch: %v", left)
		}
	})
}

// Two isolators that set one part of the spec fail the launch with a
// conflict that names both, in their order.
func TestLaunchConflictNamesBothIsolators(t *testing.T) {
	cpu := func(shares uint64) *isolators.PrepareResponse {
		return &isolators.PrepareResponse{Resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares}}}
	}
	e := newFakeEnv(t, fakeScript{Isolators: []fakeIsolatorSpec{
		{Name: "test/a", Prepare: cpu(1)}, {Name: "test/between"}, {Name: "test/b", Prepare: cpu(2)},
	}})
	_, err := e.c.Launch(context.Background(), command("wait"), LaunchOptions{})
	var conflict *isolators.ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("launch = %v, want a *isolators.ConflictError", err)
	}
	want := &isolators.ConflictError{Field: isolators.FieldCPU, First: "test/a", Second: "test/b"}
	if diff := cmp.Diff(want, conflict); diff != "" {
		t.Errorf("conflict (-want +got):\n%s", diff)
	}
	if !errors.Is(err, api.ErrConflict) {
		t.Errorf("launch = %v, want an error wrapping api.ErrConflict", err)
	}
	if left := e.left(); len(left) > 0 {
		t.Errorf("left after the failed launch: %v", left)
	}
}

// After the start, the isolators' failures do not stop the container (the
// isolators here do not isolate, so that the runtime has started the
// container when the watches begin): a
// failing Watch is logged and the container runs on; a limitation a Watch
// reports ends it with that reason; a failing Cleanup after the exit is
// tried again by the next recovery (here Wait's); the other isolators are
// cleaned up all the same.
func TestFailuresAfterStart(t *testing.T) {
	cleanups := []string{"runtime delete", "test/b cleanup", "test/a cleanup", "unmount"}
	for _, tc := range []struct {
		name    string
		rule    fakeRule
		command []string
		want    *api.Termination
		// monitor and launcher are the calls after the start.
		monitor, launcher []string
	}{
		{name: "watch fails", rule: fakeRule{Call: "test/a watch", Err: "fake"}, command: []string{"exit", "4"},
			want: &api.Termination{ExitCode: 4, Reason: api.ReasonExited}, monitor: cleanups},
		{name: "limitation", rule: fakeRule{Call: "test/b watch", Limit: api.ReasonOOM}, command: []string{"wait"},
			want:    &api.Termination{ExitCode: 137, Signal: "SIGKILL", Reason: api.ReasonOOM, Message: "scripted limitation of test/b"},
			monitor: append([]string{"runtime kill"}, cleanups...)},
		{name: "cleanup fails", rule: fakeRule{Call: "test/b cleanup", Nth: 1, Err: "fake"}, command: []string{"exit", "0"},
			want: &api.Termination{ExitCode: 0, Reason: api.ReasonExited}, monitor: cleanups, launcher: cleanups},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			isos := []fakeIsolatorSpec{{Name: "test/a"}, {Name: "test/b"}}
			e := newFakeEnv(t, fakeScript{Isolators: isos, Rules: []fakeRule{tc.rule}})
			l, err := e.c.Launch(ctx, command(tc.command...), LaunchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			started := e.mark()
			term, err := l.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, term, ignoreTime); diff != "" {
				t.Errorf("termination (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(append([]string{"runtime create"}, tc.monitor...), e.since(0, roleMonitor)); diff != "" {
				t.Errorf("the monitor's calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.launcher, e.since(started, roleLauncher)); diff != "" {
				t.Errorf("the launcher's calls after the start (-want +got):\n%s", diff)
			}
			v, err := e.c.Inspect(ctx, l.Container.ID)
			if err != nil || v.State != api.StateExited {
				t.Fatalf("inspect = %+v, %v; want an exited container", v, err)
			}
			mustDo(t, e.c.Remove(ctx, l.Container.ID, false))
			if left := e.left(); len(left) > 0 {
				t.Errorf("left after the removal: %v", left)
			}
		})
	}
}

// An update that an isolator refuses puts back, in reverse order, the
// limits of those that took it, and changes nothing in the checkpoint.
// Usage and status join what every isolator says; a failing one is
// named.
func TestRunningContainerFailures(t *testing.T) {
	ctx := context.Background()
	isos := []fakeIsolatorSpec{{Name: "test/a"}, {Name: "test/b"}, {Name: "test/c"}}
	for _, tc := range []struct {
		name  string
		rule  fakeRule
		calls []string
	}{
		{"first", fakeRule{Call: "test/a update", Err: "fake"}, []string{"test/a update"}},
		{"second", fakeRule{Call: "test/b update", Err: "fake"}, []string{"test/a update", "test/b update", "test/a update"}},
		{"third", fakeRule{Call: "test/c update", Err: "fake"}, []string{"test/a update", "test/b update", "test/c update", "test/b update", "test/a update"}},
	} {
		t.Run("update refused by the "+tc.name, func(t *testing.T) {
			e := newFakeEnv(t, fakeScript{Isolators: isos, Rules: []fakeRule{tc.rule}})
			l, err := e.c.Launch(ctx, command("wait"), LaunchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.c.Remove(ctx, l.Container.ID, true) })
			before := e.mark()
			if err := e.c.Update(ctx, l.Container.ID, api.Resources{CPUs: 2}); !errors.Is(err, errFake) {
				t.Fatalf("update = %v, want the isolator's failure", err)
			}
			if diff := cmp.Diff(tc.calls, e.since(before, roleLauncher)); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			v, err := e.c.Inspect(ctx, l.Container.ID)
			mustDo(t, err)
			if v.Spec.Resources.CPUs != 0 {
				t.Errorf("a refused update changed the checkpoint: %+v", v.Spec.Resources)
			}
		})
	}
	t.Run("usage", func(t *testing.T) {
		e := newFakeEnv(t, fakeScript{Isolators: isos, Rules: []fakeRule{{Call: "test/b usage", Err: "not-found"}}})
		l, err := e.c.Launch(ctx, command("wait"), LaunchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.c.Remove(ctx, l.Container.ID, true) })
		u, err := e.c.Usage(ctx, l.Container.ID)
		if !errors.Is(err, api.ErrNotFound) {
			t.Errorf("usage = %v, want test/b's failure", err)
		}
		if u == nil || u.Pids != 2 {
			t.Errorf("usage = %+v, want what test/a and test/c reported", u)
		}
	})
	t.Run("status", func(t *testing.T) {
		e := newFakeEnv(t, fakeScript{Isolators: isos, Rules: []fakeRule{{Call: "test/a status", Err: "fake"}}})
		l, err := e.c.Launch(ctx, command("wait"), LaunchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.c.Remove(ctx, l.Container.ID, true) })
		v, err := e.c.Inspect(ctx, l.Container.ID)
		mustDo(t, err)
		want := []api.NetworkStatus{{Name: "test/b"}, {Name: "test/c"}}
		if diff := cmp.Diff(want, v.Networks); diff != "" {
			t.Errorf("inspect's networks (-want +got):\n%s", diff)
		}
	})
}

// crashed is what a crash point panics with, for the test to tell it from
// other panics.
type crashed string

// crashAt returns a CrashPoint that panics at step.
func crashAt(step string) func(string) {
	return func(s string) {
		if s == step {
			panic(crashed(s))
		}
	}
}

// survive runs f, which is to crash at a crash point, and reports
// whether it did.
func survive(t *testing.T, f func()) (didCrash bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crashed); !ok {
				panic(r)
			}
			didCrash = true
		}
	}()
	f()
	return false
}

// A launch that crashes at any crash point before the start is undone by
// the next recovery, by another containerizer over the same directories:
// every isolator is cleaned up in reverse order, the root filesystem is
// released, and nothing is left.
func TestCrashDuringLaunchRecovers(t *testing.T) {
	steps := []string{"reserved", "provisioned", "prepared:test/a", "prepared:test/b", "bundle", "created", "isolated"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			e := newFakeEnv(t, fakeScript{Isolators: twoIsolators()}, Config{CrashPoint: crashAt(step)})
			if !survive(t, func() { _, _ = e.c.Launch(ctx, command("wait"), LaunchOptions{}) }) {
				t.Fatalf("the launch did not crash at %s", step)
			}
			if len(e.left()) == 0 {
				t.Fatalf("the crash at %s left nothing to recover", step)
			}
			if slices.Index(steps, step) < slices.Index(steps, "bundle") {
				// Its checkpoint does not name the monitor, which
				// exits by itself.
				e.awaitProcesses()
			}
			crash := e.mark()
			if err := e.open(Config{}).Recover(ctx, false); err != nil {
				t.Fatalf("recover: %v", err)
			}
			want := append(append([]string(nil), undone...), "test/a recover", "test/b recover")
			if diff := cmp.Diff(want, e.since(crash, roleLauncher)); diff != "" {
				t.Errorf("recovery's calls (-want +got):\n%s", diff)
			}
			if left := e.left(); len(left) > 0 {
				t.Errorf("left after the recovery: %v", left)
			}
		})
	}
	t.Run("started", func(t *testing.T) {
		ctx := context.Background()
		e := newFakeEnv(t, fakeScript{Isolators: twoIsolators()}, Config{CrashPoint: crashAt("started")})
		var id string
		e.fx.onCall = func(c fakeCall) {
			if c.Call == "provision" {
				id = c.ID
			}
		}
		if !survive(t, func() { _, _ = e.c.Launch(ctx, command("wait"), LaunchOptions{}) }) {
			t.Fatal("the launch did not crash at started")
		}
		c := e.open(Config{})
		crash := e.mark()
		mustDo(t, c.Recover(ctx, false))
		if diff := cmp.Diff([]string{"test/a recover", "test/b recover"}, e.since(crash, roleLauncher)); diff != "" {
			t.Errorf("recovery's calls (-want +got):\n%s", diff)
		}
		v, err := c.Inspect(ctx, id)
		if err != nil || v.State != api.StateRunning {
			t.Fatalf("inspect = %+v, %v; want the container running", v, err)
		}
		mustDo(t, c.Remove(ctx, id, true))
		if left := e.left(); len(left) > 0 {
			t.Errorf("left after the removal: %v", left)
		}
	})
}

// A monitor that crashes after recording the exit, or half way through
// an automatic removal, leaves the rest to recovery, which keeps the exit
// status and cleans up every isolator.
func TestMonitorCrashRecovers(t *testing.T) {
	for _, tc := range []struct {
		step       string
		autoRemove bool
		// cleanups is how many times each isolator cleans up: a removal
		// that died before it forgot the container leaves an orphan, which
		// the next full recovery destroys as debris, cleanups included.
		cleanups int
	}{
		{"recorded", false, 1},
		{"recorded", true, 1},
		{"trashed", true, 1},
		{"removed", true, 2},
	} {
		t.Run(fmt.Sprintf("%s/rm=%v", tc.step, tc.autoRemove), func(t *testing.T) {
			ctx := context.Background()
			e := newFakeEnv(t, fakeScript{Isolators: twoIsolators(), MonitorCrashAt: tc.step})
			spec := command("exit", "5")
			spec.AutoRemove = tc.autoRemove
			l, err := e.c.Launch(ctx, spec, LaunchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			term, err := e.open(Config{}).Wait(ctx, l.Container.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.autoRemove {
				if diff := cmp.Diff(&api.Termination{ExitCode: 5, Reason: api.ReasonExited}, term, ignoreTime); diff != "" {
					t.Errorf("termination (-want +got):\n%s", diff)
				}
				mustDo(t, e.c.Remove(ctx, l.Container.ID, false))
			}
			mustDo(t, e.open(Config{}).Recover(ctx, false))
			for _, call := range []string{"test/a cleanup", "test/b cleanup"} {
				if got := e.count(call); got != tc.cleanups {
					t.Errorf("%d calls of %s, want %d", got, call, tc.cleanups)
				}
			}
			if left := e.left(); len(left) > 0 {
				t.Errorf("left after the recovery: %v", left)
			}
		})
	}
}

// A removal that crashes half way is finished by the next recovery.
func TestCrashDuringRemoveRecovers(t *testing.T) {
	for _, step := range []string{"trashed", "removed"} {
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			e := newFakeEnv(t, fakeScript{Isolators: twoIsolators()}, Config{CrashPoint: crashAt(step)})
			l, err := e.c.Launch(ctx, command("exit", "0"), LaunchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if !survive(t, func() { _ = e.c.Remove(ctx, l.Container.ID, false) }) {
				t.Fatalf("the removal did not crash at %s", step)
			}
			mustDo(t, e.open(Config{}).Recover(ctx, false))
			if left := e.left(); len(left) > 0 {
				t.Errorf("left after the recovery: %v", left)
			}
		})
	}
}

// An update that crashes between its intent and its commit is finished
// by the next recovery: the isolators apply it again and the checkpoint
// holds it.
func TestCrashDuringUpdateRecovers(t *testing.T) {
	for _, step := range []string{"update:intent", "update:applied"} {
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			e := newFakeEnv(t, fakeScript{Isolators: twoIsolators()}, Config{CrashPoint: crashAt(step)})
			l, err := e.c.Launch(ctx, command("wait"), LaunchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.c.Remove(ctx, l.Container.ID, true) })
			if !survive(t, func() { _ = e.c.Update(ctx, l.Container.ID, api.Resources{CPUs: 2}) }) {
				t.Fatalf("the update did not crash at %s", step)
			}
			crash := e.mark()
			c := e.open(Config{})
			mustDo(t, c.Recover(ctx, true))
			want := []string{"test/a update", "test/b update", "test/a recover", "test/b recover"}
			if diff := cmp.Diff(want, e.since(crash, roleLauncher)); diff != "" {
				t.Errorf("recovery's calls (-want +got):\n%s", diff)
			}
			v, err := c.Inspect(ctx, l.Container.ID)
			mustDo(t, err)
			if v.State != api.StateRunning || v.Spec.Resources.CPUs != 2 {
				t.Errorf("after recovery: %s with %+v, want running with 2 cpus", v.State, v.Spec.Resources)
			}
		})
	}
}

// phaseLog keeps the "phase" records a logger gets: the phase, its
// isolator, and whether it has a duration and failed.
type phaseLog struct {
	mu      sync.Mutex
	entries []phaseEntry
}

type phaseEntry struct {
	Phase, Isolator string
	Timed, Failed   bool
}

func (h *phaseLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *phaseLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *phaseLog) WithGroup(string) slog.Handler            { return h }

func (h *phaseLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "phase" || r.Level != slog.LevelDebug {
		return nil
	}
	var e phaseEntry
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "phase":
			e.Phase = a.Value.String()
		case "isolator":
			e.Isolator = a.Value.String()
		case "duration":
			e.Timed = a.Value.Kind() == slog.KindDuration
		case "failed":
			e.Failed = a.Value.Bool()
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries = append(h.entries, e)
	return nil
}

func (h *phaseLog) list() []phaseEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]phaseEntry(nil), h.entries...)
}

// monitorPhases reads the phases a monitor logged (as JSON) in its log.
func monitorPhases(t *testing.T, c *Containerizer, id string) []phaseEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.containerDir(id), "monitor.log"))
	mustDo(t, err)
	var out []phaseEntry
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r struct {
			Msg, Level, Phase, Isolator string
			Duration                    *int64
			Failed                      bool
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("monitor log line %q: %v", line, err)
		}
		if r.Msg == "phase" && r.Level == "DEBUG" {
			out = append(out, phaseEntry{Phase: r.Phase, Isolator: r.Isolator, Timed: r.Duration != nil, Failed: r.Failed})
		}
	}
	return out
}

// A StartedIsolator acts once the container runs, before the running
// checkpoint: without a PidIsolator the runtime creates and starts the
// container in one call, with no start phase; with one, it creates, the
// PidIsolator acts, it starts, and then the StartedIsolator acts.
func TestLaunchStartedIsolator(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		isolators   []fakeIsolatorSpec
		wantLaunch  []string
		wantPhases  []string
		wantStarted bool // by the create itself
	}{
		{name: "alone", isolators: []fakeIsolatorSpec{{Name: "test/a"}, {Name: "test/b", Started: true}},
			wantLaunch: []string{"runtime check", "provision", "test/a prepare", "test/b prepare", "test/b started"},
			wantPhases: []string{"create", "started", "running"}, wantStarted: true},
		{name: "after a pid isolator", isolators: []fakeIsolatorSpec{{Name: "test/a", Isolates: true}, {Name: "test/b", Started: true}},
			wantLaunch: []string{"runtime check", "provision", "test/a prepare", "test/b prepare", "test/a isolate", "runtime start", "test/b started"},
			wantPhases: []string{"create", "isolate", "start", "started", "running"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &phaseLog{}
			e := newFakeEnv(t, fakeScript{Isolators: tc.isolators}, Config{Logger: slog.New(log)})
			l, err := e.c.Launch(ctx, command("exit", "0"), LaunchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantLaunch, e.since(0, roleLauncher)); diff != "" {
				t.Errorf("the launcher's calls (-want +got):\n%s", diff)
			}
			var phases []string
			for _, p := range log.list() {
				switch p.Phase {
				case "create", "isolate", "start", "started", "running":
					phases = append(phases, p.Phase)
				}
			}
			if diff := cmp.Diff(tc.wantPhases, phases); diff != "" {
				t.Errorf("the launch's phases (-want +got):\n%s", diff)
			}
			if got := e.fx.startedByCreate(t, l.Container.ID); got != tc.wantStarted {
				t.Errorf("the runtime's create started the container: %v, want %v", got, tc.wantStarted)
			}
		})
	}
}

// Each phase of a launch logs one line at debug level, with its isolator
// and its duration; a failed phase says so and is the last. The monitor
// logs its own phases the same way.
func TestLaunchLogsPhases(t *testing.T) {
	ctx := context.Background()
	ok := func(phase, isolator string) phaseEntry {
		return phaseEntry{Phase: phase, Isolator: isolator, Timed: true}
	}
	full := []phaseEntry{
		ok("reserve", ""), ok("monitor", ""), ok("provision", ""), ok("spec", ""),
		ok("prepare", "test/a"), ok("prepare", "test/b"), ok("merge", ""), ok("bundle", ""),
		ok("create", ""), ok("isolate", "test/b"), ok("start", ""), ok("running", ""),
	}
	t.Run("launched", func(t *testing.T) {
		log := &phaseLog{}
		e := newFakeEnv(t, fakeScript{Isolators: twoIsolators()}, Config{Logger: slog.New(log)})
		l, err := e.c.Launch(ctx, command("exit", "0"), LaunchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(full, log.list()); diff != "" {
			t.Errorf("the launch's phases (-want +got):\n%s", diff)
		}
		want := []phaseEntry{ok("create", ""), ok("watch", ""), ok("cleanup", "")}
		if diff := cmp.Diff(want, monitorPhases(t, e.c, l.Container.ID)); diff != "" {
			t.Errorf("the monitor's phases (-want +got):\n%s", diff)
		}
	})
	t.Run("failed", func(t *testing.T) {
		log := &phaseLog{}
		e := newFakeEnv(t, fakeScript{Isolators: twoIsolators(), Rules: []fakeRule{{Call: "test/b prepare", Err: "fake"}}},
			Config{Logger: slog.New(log)})
		if _, err := e.c.Launch(ctx, command("exit", "0"), LaunchOptions{}); !errors.Is(err, errFake) {
			t.Fatalf("launch = %v, want the isolator's failure", err)
		}
		want := append(full[:5:5], phaseEntry{Phase: "prepare", Isolator: "test/b", Timed: true, Failed: true})
		if diff := cmp.Diff(want, log.list()); diff != "" {
			t.Errorf("the launch's phases (-want +got):\n%s", diff)
		}
	})
}

// Hooks run at their points, in order: CreateContainer after the
// isolators' Prepare and before the runtime creates the container, with
// its adjustment in the bundle and its labels on the container;
// PostStart once it runs; PostStop in the monitor after the cleanup, with
// the exit status and a last usage sample, before the exit is reported.
func TestLaunchHooks(t *testing.T) {
	ctx := context.Background()
	adj := &Adjustment{
		Env:         map[string]string{"RACK": "r1", "FROM": "admin"},
		Labels:      map[string]string{"team": "ml"},
		Annotations: map[string]string{"example.com/zone": "a"},
		Mounts:      []specs.Mount{{Source: "/srv", Destination: "/srv", Options: []string{"rbind", "ro"}}},
		OCIHooks:    &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/usr/bin/true"}}},
	}
	e := newFakeEnv(t, fakeScript{Isolators: twoIsolators(), Hooks: []fakeHookSpec{{Name: "test/h1", Adjust: adj}, {Name: "test/h2"}}})
	spec := command("exit", "3")
	spec.Env = []string{"FROM=user"}
	spec.Labels = map[string]string{"team": "web", "app": "x"}
	l, err := e.c.Launch(ctx, spec, LaunchOptions{Attach: true})
	if err != nil {
		t.Fatal(err)
	}
	id := l.Container.ID
	if _, err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"runtime check", "provision", "test/a prepare", "test/b prepare", "test/h1 create", "test/h2 create",
		"test/b isolate", "runtime start", "test/h1 poststart", "test/h2 poststart"}
	if diff := cmp.Diff(want, e.since(0, roleLauncher)); diff != "" {
		t.Errorf("the launcher's calls (-want +got):\n%s", diff)
	}
	want = []string{"runtime create", "test/a usage", "test/b usage", "runtime delete", "test/b cleanup", "test/a cleanup", "unmount",
		"test/h1 poststop exit 3 usage true", "test/h2 poststop exit 3 usage true"}
	if diff := cmp.Diff(want, e.since(0, roleMonitor)); diff != "" {
		t.Errorf("the monitor's calls (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile(filepath.Join(e.fx.script().Root, "containers", id, "bundle", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"RACK=r1", "FROM=admin"} {
		if !slices.Contains(s.Process.Env, kv) {
			t.Errorf("the bundle's environment %v lacks %s", s.Process.Env, kv)
		}
	}
	if slices.Contains(s.Process.Env, "FROM=user") {
		t.Errorf("the request's FROM=user is still in the environment: %v", s.Process.Env)
	}
	if s.Annotations["example.com/zone"] != "a" {
		t.Errorf("annotations %v lack example.com/zone=a", s.Annotations)
	}
	if !slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/srv" && m.Type == "bind" }) {
		t.Errorf("mounts %+v lack the hook's bind mount at /srv", s.Mounts)
	}
	if s.Hooks == nil || len(s.Hooks.CreateRuntime) != 1 || s.Hooks.CreateRuntime[0].Path != "/usr/bin/true" {
		t.Errorf("OCI hooks %+v, want the hook's createRuntime hook", s.Hooks)
	}
	c, err := e.c.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"team": "ml", "app": "x"}, c.Spec.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	mark := len(e.journal())
	mustDo(t, e.c.Remove(ctx, id, false))
	if diff := cmp.Diff([]string{"release", "test/h1 removed", "test/h2 removed"}, e.since(mark, roleLauncher)); diff != "" {
		t.Errorf("the removal's calls (-want +got):\n%s", diff)
	}

	// Attached with AutoRemove, the launcher tells the hooks once it
	// hears of the end.
	spec.AutoRemove = true
	l, err = e.c.Launch(ctx, spec, LaunchOptions{Attach: true})
	if err != nil {
		t.Fatal(err)
	}
	mark = len(e.journal())
	if _, err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.since(mark, roleLauncher); !slices.Equal(got, []string{"test/h1 removed", "test/h2 removed"}) {
		t.Errorf("the launcher's calls after the end of an auto-removed container: %v", got)
	}
}

// A hook that refuses the launch, fails, or asks for what it may not
// have, fails the launch with its name in the error, and the launch is
// undone: nothing is left.
func TestLaunchHookFailures(t *testing.T) {
	prefix := []string{"runtime check", "provision", "test/a prepare", "test/b prepare", "test/h create"}
	grant := fakeIsolatorSpec{Name: "test/a", Prepare: &isolators.PrepareResponse{
		Env: []string{"GPU=0"}, Annotations: map[string]string{"example.com/gpu": "0"}, Mounts: []specs.Mount{{Source: "/x", Destination: "/gpu"}},
	}}
	for _, tc := range []struct {
		name     string
		adjust   *Adjustment
		rule     fakeRule
		want     error
		message  string
		launcher []string
		monitor  []string
	}{
		{name: "veto", rule: fakeRule{Call: "test/h create", Err: "forbidden"}, want: api.ErrForbidden,
			launcher: append(slices.Clone(prefix), undone...)},
		{name: "create fails", rule: fakeRule{Call: "test/h create", Err: "unavailable"}, want: api.ErrUnavailable,
			launcher: append(slices.Clone(prefix), undone...)},
		{name: "an isolator's variable", adjust: &Adjustment{Env: map[string]string{"GPU": "1"}}, want: api.ErrConflict,
			message: "environment variable GPU is isolator test/a's", launcher: append(slices.Clone(prefix), undone...)},
		{name: "an isolator's annotation", adjust: &Adjustment{Annotations: map[string]string{"example.com/gpu": "1"}}, want: api.ErrConflict,
			launcher: append(slices.Clone(prefix), undone...)},
		{name: "an isolator's mount", adjust: &Adjustment{Mounts: []specs.Mount{{Source: "/y", Destination: "/gpu"}}}, want: api.ErrConflict,
			message: "mount /gpu is isolator test/a's", launcher: append(slices.Clone(prefix), undone...)},
		{name: "a reserved label", adjust: &Adjustment{Labels: map[string]string{"caisson.task": "x"}}, want: api.ErrInvalid,
			launcher: append(slices.Clone(prefix), undone...)},
		{name: "a reserved annotation", adjust: &Adjustment{Annotations: map[string]string{"io.caisson.x": "1"}}, want: api.ErrInvalid,
			launcher: append(slices.Clone(prefix), undone...)},
		{name: "a relative mount", adjust: &Adjustment{Mounts: []specs.Mount{{Source: "/y", Destination: "y"}}}, want: api.ErrInvalid,
			launcher: append(slices.Clone(prefix), undone...)},
		{name: "post-start fails", rule: fakeRule{Call: "test/h poststart", Err: "unavailable"}, want: api.ErrUnavailable,
			launcher: append(append(slices.Clone(prefix), "test/b isolate", "runtime start", "test/h poststart"), undone...),
			monitor:  []string{"runtime create"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t, fakeScript{
				Isolators: []fakeIsolatorSpec{grant, {Name: "test/b", Isolates: true}},
				Hooks:     []fakeHookSpec{{Name: "test/h", Adjust: tc.adjust}}, Rules: []fakeRule{tc.rule},
			})
			_, err := e.c.Launch(context.Background(), command("wait"), LaunchOptions{})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "hook test/h") || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("launch = %v, want an error wrapping %v that names hook test/h and says %q", err, tc.want, tc.message)
			}
			e.checkUndone(tc.launcher, tc.monitor)
		})
	}
}

// Update hooks hear of a live update before the isolators apply it, and
// may refuse it (nothing changes), and once it is applied.
func TestUpdateHooks(t *testing.T) {
	ctx := context.Background()
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refused=%v", refuse), func(t *testing.T) {
			var rules []fakeRule
			if refuse {
				rules = []fakeRule{{Call: "test/h update 2", Err: "forbidden"}}
			}
			e := newFakeEnv(t, fakeScript{Isolators: []fakeIsolatorSpec{{Name: "test/a"}}, Hooks: []fakeHookSpec{{Name: "test/h"}}, Rules: rules})
			l, err := e.c.Launch(ctx, command("wait"), LaunchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.c.Remove(ctx, l.Container.ID, true) })
			before := e.mark()
			err = e.c.Update(ctx, l.Container.ID, api.Resources{CPUs: 2})
			want := []string{"test/h update 2", "test/a update", "test/h updated 2"}
			if refuse {
				want = want[:1]
				if !errors.Is(err, api.ErrForbidden) || !strings.Contains(err.Error(), "hook test/h") {
					t.Fatalf("update = %v, want the hook's refusal", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, e.since(before, roleLauncher)); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}
