package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/containerizer/image"
	"github.com/caisson/caisson/containerizer/runc"
	"github.com/caisson/caisson/internal/testutil"
)

// monitorArg has this test binary play a container's monitor, as
// caisson monitor does: TestMain runs monitorMain.
const monitorArg = "-agent-test-monitor"

func TestMain(m *testing.M) {
	if len(os.Args) == 5 && os.Args[1] == monitorArg {
		os.Exit(monitorMain(os.Args[2], os.Args[3], os.Args[4]))
	}
	os.Exit(m.Run())
}

// realContainerizer is the containerizer with runc and the image store,
// without isolators, its state under root and runRoot.
func realContainerizer(root, runRoot string) (*containerizer.Containerizer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	store, err := image.New(image.Config{Root: filepath.Join(root, "images"), HideHostPaths: []string{root, runRoot}})
	if err != nil {
		return nil, err
	}
	return containerizer.New(containerizer.Config{
		Root: root, RunRoot: runRoot,
		Runtime:        runc.New(runc.Config{Root: filepath.Join(runRoot, "runc")}),
		Provisioner:    store,
		MonitorCommand: []string{self, monitorArg, root, runRoot},
	})
}

// runcContainerizer is a real containerizer for a test, with runc; what
// it holds at the test's end is removed.
func runcContainerizer(t *testing.T) *containerizer.Containerizer {
	t.Helper()
	testutil.RequiresLinux(t)
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "runc")
	dir := t.TempDir()
	cz, err := realContainerizer(filepath.Join(dir, "root"), filepath.Join(dir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := cz.List(ctx)
		if err != nil {
			t.Errorf("list: %v", err)
		}
		for _, ct := range list {
			if err := cz.Remove(ctx, ct.ID, true); err != nil {
				t.Errorf("remove %s: %v", ct.ID, err)
			}
		}
	})
	return cz
}

func monitorMain(root, runRoot, id string) int {
	cz, err := realContainerizer(root, runRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	syncFD, err1 := strconv.Atoi(os.Getenv("CAISSON_MONITOR_SYNC_FD"))
	controlFD, err2 := strconv.Atoi(os.Getenv("CAISSON_MONITOR_CONTROL_FD"))
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sync, control := os.NewFile(uintptr(syncFD), "sync"), os.NewFile(uintptr(controlFD), "control")
	defer sync.Close()
	defer control.Close()
	if err := cz.Monitor(context.Background(), id, sync, control); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestNewContainersWithRunc runs a task's container through the adapter
// over the real containerizer and runc: launch, wait, logs, remove.
func TestNewContainersWithRunc(t *testing.T) {
	cz := runcContainerizer(t)
	dir := t.TempDir()
	c := NewContainers(cz)
	ctx := context.Background()
	rootfs := testutil.BusyboxRootfs(t)

	l := launchOf("s1/web/0")
	l.Container = api.ContainerSpec{Rootfs: rootfs, Command: []string{"sh", "-c", `echo "$CAISSON_TASK_ID $CAISSON_SESSION_ID $PORT0"; echo oops >&2; exit 3`}}
	spec, err := containerSpec("agent-t", l)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Launch(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(ct api.Container) bool { return ct.ID == id })
	if i < 0 {
		t.Fatalf("container %s not listed", id)
	}
	if got := list[i].Spec.Labels; got[LabelTask] != l.Task || got[LabelAgent] != "agent-t" || got[LabelSession] != "s1" {
		t.Errorf("labels %v, want the task's", got)
	}
	term, err := c.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&api.Termination{ExitCode: 3, Reason: api.ReasonExited}, term, cmpopts.IgnoreFields(api.Termination{}, "FinishedAt", "Message")); d != "" {
		t.Errorf("termination (-want +got):\n%s", d)
	}
	var out bytes.Buffer
	if err := c.Logs(ctx, id, true, &out); err != nil {
		t.Fatal(err)
	}
	// stdout and stderr, each in order; not ordered between them.
	lines := strings.SplitAfter(out.String(), "\n")
	slices.Sort(lines)
	if d := cmp.Diff([]string{"", "oops\n", "s1/web/0 s1 31001\n"}, lines); d != "" {
		t.Errorf("logs (-want +got):\n%s", d)
	}
	if err := c.Kill(ctx, id, 15); !errors.Is(err, api.ErrWrongState) {
		t.Errorf("kill of an exited container: %v, want wrong state", err)
	}
	if err := c.Remove(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if list, err := c.List(ctx); err != nil || len(list) > 0 {
		t.Errorf("containers left: %v, %v", list, err)
	}

	// A launch that fails leaves nothing.
	l.Container.Rootfs = filepath.Join(dir, "no-such-rootfs")
	spec, err = containerSpec("agent-t", l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Launch(ctx, spec, nil); err == nil {
		t.Fatal("a launch from a missing root filesystem succeeded")
	}
	if list, err := c.List(ctx); err != nil || len(list) > 0 {
		t.Errorf("containers left by a failed launch: %v, %v", list, err)
	}
}

// TestAgentWithRunc runs tasks through an agent over the real
// containerizer: one to its end, one across a restart of the agent (its
// container runs on), then killed.
func TestAgentWithRunc(t *testing.T) {
	cz := runcContainerizer(t)
	ctx := context.Background()
	rootfs := testutil.BusyboxRootfs(t)
	e := newEnv(t)
	cfg := e.config(t)
	cfg.Containers = NewContainers(cz)
	ra := e.startWith(t, cfg)
	_, st := e.connected(t)

	done := launchOf("s1/batch/0")
	done.Container = api.ContainerSpec{Rootfs: rootfs, Command: []string{"sh", "-c", "echo done"}}
	cid := e.run(t, st, done)
	e.checkUpdate(t, e.master.nextOf(t, done.Task), api.StatusUpdate{Task: done.Task, State: api.TaskFinished, Container: cid, ExitCode: intp(0)})

	long := launchOf("s1/serve/0")
	long.Container = api.ContainerSpec{Rootfs: rootfs, Command: []string{"sh", "-c", "trap 'exit 7' TERM; echo up; sleep 1000 & wait"}}
	cid = e.run(t, st, long)
	ra.stop(t)
	if ct, err := cz.Inspect(ctx, cid); err != nil || ct.State != api.StateRunning {
		t.Fatalf("the task's container after the agent stopped: %v, %v; want running", ct, err)
	}

	e.startWith(t, cfg)
	reg, st := e.connected(t)
	if d := cmp.Diff([]api.AgentTask{{ID: long.Task, Container: cid, State: api.TaskRunning}}, reg.Tasks); d != "" {
		t.Errorf("registered tasks (-want +got):\n%s", d)
	}
	st.send(api.AgentMessage{Kill: &api.TaskKill{Task: long.Task, Reason: "reclaimed", Grace: api.Duration(time.Hour)}})
	u := e.master.nextOf(t, long.Task)
	e.checkUpdate(t, u, api.StatusUpdate{Task: long.Task, State: api.TaskKilled, Reason: "reclaimed", Container: cid, ExitCode: intp(7), Message: u.Message})
	e.waitForgotten(t, long.Task)
	if list, err := cz.List(ctx); err != nil || len(list) > 0 {
		t.Errorf("containers left: %v, %v", list, err)
	}
}
