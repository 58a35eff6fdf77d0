//go:build linux

package runc

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/containerizer"
	"github.com/caisson/caisson/internal/testutil"
)

// The fake runtime: a shell script that takes runc's global flags and leaves
// the subcommand in $sub, its arguments in "$@", the log file in $log and the
// root in $root, for the test's body to act on.
const fakePrelude = `#!/bin/sh
log=/dev/null
root=
while [ $# -gt 0 ]; do
	case "$1" in
	--root) root=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--log-format) shift 2 ;;
	*) break ;;
	esac
done
sub=$1
[ $# -gt 0 ] && shift
`

// fakeRuntime writes a fake runtime called name whose behaviour is body.
func fakeRuntime(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(fakePrelude+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// logLineSh is shell that appends a runtime log line at level with msg.
func logLineSh(level, msg string) string {
	line, err := json.Marshal(map[string]string{"level": level, "msg": msg, "time": "2024-01-01T00:00:00Z"})
	if err != nil {
		panic(err)
	}
	return `echo ` + shQuote(string(line)) + ` >>"$log"`
}

// failSh is shell that logs msg as the runtime's error and exits 1.
func failSh(msg string) string {
	return logLineSh("error", msg) + "; exit 1"
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// newFake returns a Runtime that runs a fake with body, whose root holds
// state for container c1 (so that Kill and Delete of c1 run it).
func newFake(t *testing.T, body string) *Runtime {
	t.Helper()
	return New(Config{Command: fakeRuntime(t, "runc", body), Root: rootWithC1(t), Logger: testutil.Logger(t)})
}

// rootWithC1 is a runtime root with a state directory for container c1.
func rootWithC1(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "c1"), 0o700); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestNameAndDefaults(t *testing.T) {
	for _, tc := range []struct{ command, want string }{
		{"", "runc"},
		{"runc", "runc"},
		{"/usr/bin/crun", "crun"},
	} {
		r := New(Config{Command: tc.command})
		if got := r.Name(); got != tc.want {
			t.Errorf("New(%q).Name() = %q, want %q", tc.command, got, tc.want)
		}
		if r.timeout != DefaultTimeout || r.createTimeout != DefaultCreateTimeout {
			t.Errorf("timeouts %s, %s; want the defaults", r.timeout, r.createTimeout)
		}
	}
}

// The messages are those runc 1.1.5 and crun 1.8.1 log for a busybox bundle.
func TestCreateMapsCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		want error // nil: neither command sentinel
	}{
		{"runc not in PATH", `runc create failed: unable to start container process: exec: "nosuch": executable file not found in $PATH`, api.ErrCommandNotFound},
		{"runc no such path", `runc create failed: unable to start container process: exec: "/nosuch": stat /nosuch: no such file or directory`, api.ErrCommandNotFound},
		{"runc dangling link", `runc create failed: unable to start container process: exec: "/bin/dangle": stat /bin/dangle: no such file or directory`, api.ErrCommandNotFound},
		{"runc directory", `runc create failed: unable to start container process: exec: "/etc": permission denied`, api.ErrCommandNotExecutable},
		{"runc not executable", `runc create failed: unable to start container process: exec: "/etc/passwd": permission denied`, api.ErrCommandNotExecutable},
		{"runc not a directory", `runc create failed: unable to start container process: exec: "/etc/passwd/x": stat /etc/passwd/x: not a directory`, api.ErrCommandNotExecutable},
		{"runc noexec mount", `runc create failed: unable to start container process: exec /nx/echo: permission denied`, api.ErrCommandNotExecutable},
		{"runc exec format", `exec /bin/garbage: exec format error`, api.ErrCommandNotExecutable},
		{"runc quoted quote", `runc create failed: unable to start container process: exec: "a\"b": executable file not found in $PATH`, api.ErrCommandNotFound},
		{"crun not in PATH", "executable file `nosuch` not found in $PATH: No such file or directory", api.ErrCommandNotFound},
		{"crun no such path", "executable file `/nosuch` not found in $PATH: No such file or directory", api.ErrCommandNotFound},
		{"crun not executable", "open executable: Permission denied", api.ErrCommandNotExecutable},
		{"crun directory", "open executable: Operation not permitted", api.ErrCommandNotExecutable},
		{"crun not a directory", "open executable: Not a directory", api.ErrCommandNotExecutable},
		{"crun exec format", "exec container process `/bin/garbage`: Exec format error", api.ErrCommandNotExecutable},
		{"crun no interpreter", "exec container process (missing dynamic library?) `/bin/x`: No such file or directory", api.ErrCommandNotFound},
		{"runc mount source", `runc create failed: unable to start container process: error during container init: error mounting "/nope" to rootfs at "/data": stat /nope: no such file or directory`, nil},
		{"runc bundle", `runc create failed: cannot allocate tty if runc will detach without setting console socket`, nil},
		{"crun hybrid cgroups", "cgroups in hybrid mode not supported, drop all controllers from cgroupv2", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A warning first: the error is the last error line, not the last line.
			r := newFake(t, `case $sub in create) `+logLineSh("warning", "some warning")+"; "+failSh(tc.msg)+` ;; esac`)
			_, err := r.Create(context.Background(), "c1", t.TempDir(), nil)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			for _, s := range []error{api.ErrCommandNotFound, api.ErrCommandNotExecutable} {
				if got, want := errors.Is(err, s), s == tc.want; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
				}
			}
			var exitErr *exec.ExitError
			if tc.want == nil && !errors.As(err, &exitErr) {
				t.Errorf("error %v does not wrap the runtime's exit error", err)
			}
		})
	}
}

// The fake's create writes a pid file and talks on the streams it was given.
const fakeCreate = `case $sub in
create)
	while [ $# -gt 0 ]; do
		case "$1" in
		--pid-file) pidfile=$2; shift 2 ;;
		--bundle) bundle=$2; shift 2 ;;
		*) id=$1; shift ;;
		esac
	done
	read line
	echo "out $line $id"
	echo "err $bundle" >&2
	echo 4242 >"$pidfile"
	;;
*) exit 1 ;;
esac`

func TestCreatePassesStreamsAndReadsPid(t *testing.T) {
	for _, pidFile := range []string{"", "given"} {
		t.Run("pidfile="+pidFile, func(t *testing.T) {
			r := newFake(t, fakeCreate)
			dir := t.TempDir()
			opts := &containerizer.CreateOpts{
				Stdin:  openFile(t, filepath.Join(dir, "in"), "hello\n"),
				Stdout: openFile(t, filepath.Join(dir, "out"), ""),
				Stderr: openFile(t, filepath.Join(dir, "err"), ""),
			}
			if pidFile != "" {
				opts.PidFile = filepath.Join(dir, "pid")
			}
			bundle := t.TempDir()
			pid, err := r.Create(context.Background(), "c1", bundle, opts)
			if err != nil {
				t.Fatal(err)
			}
			if pid != 4242 {
				t.Errorf("pid %d, want 4242", pid)
			}
			got := map[string]string{"out": readFile(t, filepath.Join(dir, "out")), "err": readFile(t, filepath.Join(dir, "err"))}
			want := map[string]string{"out": "out hello c1\n", "err": "err " + bundle + "\n"}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("streams (-want +got):\n%s", d)
			}
		})
	}
}

func TestCreateWithoutStreams(t *testing.T) {
	r := newFake(t, fakeCreate)
	pid, err := r.Create(context.Background(), "c1", t.TempDir(), nil)
	if err != nil || pid != 4242 {
		t.Fatalf("Create = %d, %v; want 4242", pid, err)
	}
}

func TestCreateBadPidFile(t *testing.T) {
	r := newFake(t, `case $sub in create) while [ "$1" != --pid-file ]; do shift; done; echo nonsense >"$2" ;; esac`)
	if _, err := r.Create(context.Background(), "c1", t.TempDir(), nil); err == nil {
		t.Fatal("Create succeeded with a pid file that holds no pid")
	}
}

func openFile(t *testing.T, path, content string) *os.File {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestState(t *testing.T) {
	r := newFake(t, `case $sub in state) echo '{"ociVersion":"1.0.2","id":"'$1'","pid":77,"status":"running","bundle":"/b","rootfs":"/b/rootfs","owner":""}' ;; esac`)
	got, err := r.State(context.Background(), "c1")
	if err != nil {
		t.Fatal(err)
	}
	want := &containerizer.RuntimeState{ID: "c1", Pid: 77, Status: "running", Bundle: "/b"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("State (-want +got):\n%s", d)
	}
}

func TestStateErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		notFound bool
	}{
		{"runc unknown", failSh("container does not exist"), true},
		{"crun unknown", failSh("error opening file `/run/crun/c1/status`: No such file or directory"), true},
		{"crun unknown dir", failSh("cannot open directory '/run/crun/c1': No such file or directory"), true},
		{"other runtime unknown", failSh("container `c1` does not exist"), true},
		{"unknown on stderr only", `echo 'time="2024-01-01T00:00:00Z" level=error msg="container does not exist"' >&2; exit 1`, true},
		{"another container's file", failSh("error opening file `/run/crun/c10/status`: No such file or directory"), false},
		{"other error", failSh("open /run/runc/c1/state.json: permission denied"), false},
		{"bad json", `echo '{'`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFake(t, tc.body)
			_, err := r.State(context.Background(), "c1")
			if err == nil {
				t.Fatal("State succeeded")
			}
			if got := errors.Is(err, api.ErrNotFound); got != tc.notFound {
				t.Errorf("errors.Is(%v, api.ErrNotFound) = %v, want %v", err, got, tc.notFound)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		want error
	}{
		{"runc unknown", "container does not exist", api.ErrNotFound},
		{"crun unknown", "error opening file `/r/c1/status`: No such file or directory", api.ErrNotFound},
		{"runc running", "cannot start an already running container", api.ErrWrongState},
		{"runc stopped", "cannot start a container that has stopped", api.ErrWrongState},
		{"crun running", "cannot open `/r/c1/exec.fifo`: No such file or directory", api.ErrWrongState},
		{"crun stopped", "container `c1` is not running", api.ErrWrongState},
		{"other", "something else", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFake(t, failSh(tc.msg))
			err := r.Start(context.Background(), "c1")
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, s := range []error{api.ErrNotFound, api.ErrWrongState} {
				if got, want := errors.Is(err, s), s == tc.want; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, s, got, want)
				}
			}
		})
	}
}

func TestKill(t *testing.T) {
	const stateRunning = `echo '{"id":"c1","pid":77,"status":"running","bundle":"/b"}'`
	const stateStopped = `echo '{"id":"c1","pid":0,"status":"stopped","bundle":"/b"}'`
	for _, tc := range []struct {
		name    string
		kill    string // the body of the fake's kill
		state   string // and of its state
		wantErr bool
	}{
		{"ok", "exit 0", stateRunning, false},
		{"runc unknown", failSh("container does not exist"), failSh("container does not exist"), false},
		{"crun unknown", failSh("error opening file `/run/crun/c1/status`: No such file or directory"), stateRunning, false},
		{"runc stopped", failSh("container not running"), stateStopped, false},
		{"crun stopped", failSh("kill container: No such process"), stateStopped, false},
		{"crun not running", failSh("container `c1` is not running"), stateStopped, false},
		{"unknown message, stopped", failSh("something odd"), stateStopped, false},
		{"unknown message, gone", failSh("something odd"), failSh("container does not exist"), false},
		{"unknown message, running", failSh("something odd"), stateRunning, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFake(t, "case $sub in kill) "+tc.kill+" ;; state) "+tc.state+" ;; esac")
			err := r.Kill(context.Background(), "c1", syscall.SIGKILL, false)
			if (err != nil) != tc.wantErr {
				t.Errorf("Kill = %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestKillArgs(t *testing.T) {
	for _, tc := range []struct {
		all  bool
		sig  syscall.Signal
		want string
	}{
		{false, syscall.SIGKILL, "c1 9"},
		{true, syscall.SIGTERM, "--all c1 15"},
	} {
		args := filepath.Join(t.TempDir(), "args")
		r := newFake(t, `echo "$@" >`+shQuote(args))
		if err := r.Kill(context.Background(), "c1", tc.sig, tc.all); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(readFile(t, args)); got != tc.want {
			t.Errorf("Kill(%v, all=%v) ran kill %q, want %q", tc.sig, tc.all, got, tc.want)
		}
	}
}

func TestDelete(t *testing.T) {
	for _, tc := range []struct {
		name  string
		body  string
		force bool
		want  error // nil: success; errAny: some error
	}{
		{"ok", `[ "$*" = "c1" ] || exit 9`, false, nil},
		{"force", `[ "$*" = "--force c1" ] || exit 9`, true, nil},
		{"runc unknown", failSh("container does not exist"), false, nil},
		{"crun unknown", failSh("cannot open directory '/run/crun/c1': No such file or directory"), false, nil},
		{"runc running", failSh("cannot delete container c1 that is not stopped: running"), false, api.ErrWrongState},
		{"crun running", failSh("the container `c1` is not in `created` or `stopped` state"), false, api.ErrWrongState},
		{"other", failSh("unable to remove cgroup"), true, errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFake(t, "case $sub in delete) "+tc.body+" ;; *) exit 1 ;; esac")
			err := r.Delete(context.Background(), "c1", tc.force)
			switch {
			case tc.want == nil && err != nil:
				t.Errorf("Delete = %v, want success", err)
			case tc.want != nil && err == nil:
				t.Errorf("Delete succeeded, want an error")
			case tc.want != nil && tc.want != errAny && !errors.Is(err, tc.want):
				t.Errorf("Delete = %v, want an error wrapping %v", err, tc.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestList(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  string
		want []containerizer.RuntimeState
	}{
		{"runc empty", "null", []containerizer.RuntimeState{}},
		{"crun empty", "[\n\n]", []containerizer.RuntimeState{}},
		{"two", `[{"id":"a","pid":1,"status":"created","bundle":"/a","created":"2024-01-01T00:00:00Z","owner":"root"},{"id":"b","pid":0,"status":"stopped","bundle":"/b"}]`,
			[]containerizer.RuntimeState{{ID: "a", Pid: 1, Status: "created", Bundle: "/a"}, {ID: "b", Status: "stopped", Bundle: "/b"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFake(t, `case $sub in list) [ "$*" = "--format json" ] || exit 9; echo `+shQuote(tc.out)+` ;; *) exit 1 ;; esac`)
			got, err := r.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("List (-want +got):\n%s", d)
			}
		})
	}
}

func TestListAbsentRoot(t *testing.T) {
	r := New(Config{
		Command: fakeRuntime(t, "runc", "exit 1"), // never run
		Root:    filepath.Join(t.TempDir(), "absent"),
	})
	got, err := r.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("List = %v, want none", got)
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		{"runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n", "1.1.5+ds1"},
		{"crun version 1.8.1\ncommit: f8a096be\n", "1.8.1"},
		{"something 2\n", "something 2"},
	} {
		// --version runs without --root and --log.
		r := newFake(t, `[ "$sub" = --version ] && [ -z "$root" ] && [ "$log" = /dev/null ] || exit 9; printf %s `+shQuote(tc.out))
		got, err := r.Version(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("Version = %q, want %q", got, tc.want)
		}
	}
}

func TestInvalidID(t *testing.T) {
	r := newFake(t, "exit 0")
	ctx := context.Background()
	for _, id := range []string{"", "-all", "a/b"} {
		calls := map[string]error{
			"start":  r.Start(ctx, id),
			"kill":   r.Kill(ctx, id, syscall.SIGKILL, true),
			"delete": r.Delete(ctx, id, true),
		}
		_, calls["create"] = r.Create(ctx, id, t.TempDir(), nil)
		_, calls["state"] = r.State(ctx, id)
		for name, err := range calls {
			if !errors.Is(err, api.ErrInvalid) {
				t.Errorf("%s(%q) = %v, want api.ErrInvalid", name, id, err)
			}
		}
	}
}

// everyCall runs each method of r once and returns their errors by name.
func everyCall(ctx context.Context, t *testing.T, r *Runtime) map[string]error {
	errs := map[string]error{
		"start":  r.Start(ctx, "c1"),
		"kill":   r.Kill(ctx, "c1", syscall.SIGKILL, false),
		"delete": r.Delete(ctx, "c1", true),
	}
	_, errs["create"] = r.Create(ctx, "c1", t.TempDir(), nil)
	_, errs["state"] = r.State(ctx, "c1")
	_, errs["list"] = r.List(ctx)
	_, errs["version"] = r.Version(ctx)
	return errs
}

func TestMissingBinaryIsUnavailable(t *testing.T) {
	notExecutable := filepath.Join(t.TempDir(), "runc")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, command := range []string{
		"caisson-no-such-runtime",
		filepath.Join(t.TempDir(), "nosuch", "runc"),
		notExecutable,
	} {
		r := New(Config{Command: command, Root: rootWithC1(t)})
		for name, err := range everyCall(context.Background(), t, r) {
			if !errors.Is(err, api.ErrUnavailable) {
				t.Errorf("%s with runtime %s = %v, want api.ErrUnavailable", name, command, err)
			}
		}
	}
}

// Kill and Delete of a container the runtime holds no state for need no
// runtime, so that a launch whose runtime cannot run is undone all the
// same; Check tells such a runtime before anything is made.
func TestRuntimeThatCannotRun(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "runc")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, command string
		runs          bool // Check cannot tell it fails
	}{
		{"not in PATH", "caisson-no-such-runtime", false},
		{"no such path", filepath.Join(dir, "nosuch", "runc"), false},
		{"not executable", notExecutable, false},
		{"directory", dir, false},
		{"fails", fakeRuntime(t, "runc", failSh("broken")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Config{Command: tc.command, Root: t.TempDir()})
			ctx := context.Background()
			if err := r.Kill(ctx, "c1", syscall.SIGKILL, true); err != nil {
				t.Errorf("Kill of an unknown container = %v, want success", err)
			}
			if err := r.Delete(ctx, "c1", true); err != nil {
				t.Errorf("Delete of an unknown container = %v, want success", err)
			}
			if err := r.Check(ctx); tc.runs != (err == nil) || !tc.runs && !errors.Is(err, api.ErrUnavailable) {
				t.Errorf("Check = %v, want api.ErrUnavailable: %v", err, !tc.runs)
			}
		})
	}
	if err := newFake(t, "exit 0").Check(context.Background()); err != nil {
		t.Errorf("Check of a runtime that runs = %v", err)
	}
}

// Undoing needs no more than the runtime needs: a timeout so short that a
// call fails does not bound Kill and Delete, which undo after it.
func TestCleanupOutlivesAShortTimeout(t *testing.T) {
	r := New(Config{Command: fakeRuntime(t, "runc", "sleep 0.2"), Root: rootWithC1(t), Timeout: time.Millisecond, Logger: testutil.Logger(t)})
	ctx := context.Background()
	if _, err := r.State(ctx, "c1"); !errors.Is(err, api.ErrTimeout) {
		t.Fatalf("State = %v, want api.ErrTimeout", err)
	}
	if err := r.Kill(ctx, "c1", syscall.SIGKILL, true); err != nil {
		t.Errorf("Kill = %v, want success", err)
	}
	if err := r.Delete(ctx, "c1", true); err != nil {
		t.Errorf("Delete = %v, want success", err)
	}
}

// TestTimeout runs a fake that never answers and leaves a child behind: each
// call must come back with api.ErrTimeout, the fake and its child killed.
func TestTimeout(t *testing.T) {
	becomeSubreaper(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	fake := fakeRuntime(t, "runc", `sleep 1000 & echo $! >`+shQuote(pidFile)+`; wait`)
	const timeout = 300 * time.Millisecond
	r := New(Config{Command: fake, Root: rootWithC1(t), Timeout: timeout, CreateTimeout: timeout, CleanupTimeout: timeout, Logger: testutil.Logger(t)})
	calls := map[string]func(context.Context) error{
		"create": func(ctx context.Context) error { _, err := r.Create(ctx, "c1", t.TempDir(), nil); return err },
		"start":  func(ctx context.Context) error { return r.Start(ctx, "c1") },
		"state":  func(ctx context.Context) error { _, err := r.State(ctx, "c1"); return err },
		"kill":   func(ctx context.Context) error { return r.Kill(ctx, "c1", syscall.SIGKILL, true) },
		"delete": func(ctx context.Context) error { return r.Delete(ctx, "c1", true) },
		"list":   func(ctx context.Context) error { _, err := r.List(ctx); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			os.Remove(pidFile)
			err := call(context.Background())
			if !errors.Is(err, api.ErrTimeout) {
				t.Errorf("%s = %v, want api.ErrTimeout", name, err)
			}
			requireGone(t, pidFile)
		})
	}
}

// requireGone checks that the process whose pid is in pidFile has exited.
func requireGone(t *testing.T, pidFile string) {
	t.Helper()
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		t.Log("the fake was killed before it started its child")
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file holds %q", data)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return // gone and reaped
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// A pidfd becomes readable when the process exits. The limit is a safety
	// net against hanging, not the synchronisation.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 30_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("the fake's child %d still runs after the timeout", pid)
		}
		break
	}
	// Reap it: this process is its subreaper.
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, unix.WNOHANG, nil)
}

func TestContext(t *testing.T) {
	becomeSubreaper(t)
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	r := newFake(t, `sleep 1000 & echo $! >`+shQuote(pidFile)+`; wait`)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for name, err := range everyCall(canceled, t, r) {
		if !errors.Is(err, context.Canceled) || errors.Is(err, api.ErrTimeout) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", name, err)
		}
	}

	// The caller's deadline ends the call as the runtime's own timeout would.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := r.State(ctx, "c1")
	if !errors.Is(err, api.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("State past the caller's deadline = %v, want api.ErrTimeout and context.DeadlineExceeded", err)
	}
	requireGone(t, pidFile)
}

// becomeSubreaper makes the test process the reaper of the orphans that the
// fakes' killed children become, so that requireGone can collect them.
func becomeSubreaper(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		if testutil.Pure() {
			// qemu-user does not emulate this prctl.
			t.Skipf("cannot become a child subreaper under emulation: %v", err)
		}
		t.Fatalf("become a child subreaper: %v", err)
	}
}
