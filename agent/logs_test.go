package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/pki"
	"github.com/caisson/caisson/internal/tailbuf"
	"github.com/caisson/caisson/internal/testutil"
)

// logsPath is the API path of a task's log.
func logsPath(task string, follow bool) string {
	p := "/v1/containers/" + strings.ReplaceAll(task, "/", "%2F") + "/logs"
	if follow {
		p += "?follow=true"
	}
	return p
}

// keptFiles are the names of the files under the kept logs' directory.
func keptFiles(t *testing.T, stateDir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(stateDir, logsDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// checkLog checks the answers to a task's log, followed or not.
func checkLog(t *testing.T, ra *runningAgent, c *http.Client, task string, status int, body string) {
	t.Helper()
	for _, follow := range []bool{false, true} {
		gotStatus, got := ra.get(t, c, logsPath(task, follow))
		if gotStatus != status {
			t.Errorf("log of %s (follow %v): status %d, want %d (%s)", task, follow, gotStatus, status, got)
			continue
		}
		if status == http.StatusOK && got != body {
			t.Errorf("log of %s (follow %v): %q, want %q", task, follow, got, body)
		}
	}
}

func TestEndedTaskLogs(t *testing.T) {
	e := newEnv(t)
	ra := e.start(t)
	_, st := e.connected(t)
	master := e.apiClient(t, pki.RoleMaster)
	for i, tc := range []struct {
		name  string
		print string
		end   func(cid, task string)
		state string
	}{
		{
			name: "finished", print: "step 1\nstep 2\ndone\n", state: api.TaskFinished,
			end: func(cid, _ string) { e.containers.exit(cid, api.Termination{Reason: api.ReasonExited}) },
		},
		{
			name: "failed", print: "reading input\nerror: bad input\n", state: api.TaskFailed,
			end: func(cid, _ string) { e.containers.exit(cid, api.Termination{ExitCode: 3, Reason: api.ReasonExited}) },
		},
		{
			name: "reclaimed", print: "working\ngot SIGTERM, saving\n", state: api.TaskKilled,
			end: func(_, task string) {
				st.send(api.AgentMessage{Kill: &api.TaskKill{Task: task, Reason: "reclaimed", Deadline: e.clock.Now()}})
			},
		},
		{
			name: "a partial last line", print: "percent: 1\npercent: 2", state: api.TaskFinished,
			end: func(cid, _ string) { e.containers.exit(cid, api.Termination{Reason: api.ReasonExited}) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := launchOf(fmt.Sprintf("s1/batch/%d", i))
			cid := e.run(t, st, l)
			e.containers.print(cid, tc.print)
			status, running := ra.get(t, master, logsPath(l.Task, false))
			if status != http.StatusOK || running != "output of "+cid+"\n"+tc.print {
				t.Fatalf("log while it runs: %d %q", status, running)
			}
			tc.end(cid, l.Task)
			if u := e.master.nextOf(t, l.Task); u.State != tc.state {
				t.Errorf("update %+v, want %s", u, tc.state)
			}
			e.waitForgotten(t, l.Task)
			if list, _ := e.containers.List(context.Background()); slices.ContainsFunc(list, func(c api.Container) bool { return c.ID == cid }) {
				t.Fatalf("container %s not removed", cid)
			}
			checkLog(t, ra, master, l.Task, http.StatusOK, running)
		})
	}

	t.Run("its container gone while the agent has its record", func(t *testing.T) {
		// The removal fails, so the agent keeps the task's record and
		// container ID; then the container goes behind its back.
		e.containers.mu.Lock()
		e.containers.removeErr = fmt.Errorf("device busy: %w", api.ErrWrongState)
		e.containers.mu.Unlock()
		l := launchOf("s1/gone/0")
		cid := e.run(t, st, l)
		e.containers.print(cid, "still here\n")
		e.containers.exit(cid, api.Termination{Reason: api.ReasonExited})
		for e.containers.nextCall(t, "remove").id != cid { // earlier tasks' first
		}
		e.containers.vanish(cid)
		e.containers.mu.Lock()
		e.containers.removeErr = nil
		e.containers.mu.Unlock()
		checkLog(t, ra, master, l.Task, http.StatusOK, "output of "+cid+"\nstill here\n")
	})
	t.Run("unknown task", func(t *testing.T) {
		checkLog(t, ra, master, "s1/batch/99", http.StatusNotFound, "")
	})
	t.Run("a launch that failed", func(t *testing.T) {
		l := launchOf("s1/bad/0")
		e.containers.mu.Lock()
		e.containers.failLaunch[l.Task] = fmt.Errorf("no such image: %w", api.ErrNotFound)
		e.containers.mu.Unlock()
		st.send(api.AgentMessage{Launch: l})
		e.waitForgotten(t, l.Task)
		checkLog(t, ra, master, l.Task, http.StatusNotFound, "")
	})
	if files := keptFiles(t, e.stateDir); len(files) != 5 {
		t.Errorf("kept logs %v, want the 5 ended tasks'", files)
	}
}

// runToEnd runs a task whose container prints out and exits 0, until the
// agent forgets it; it returns the task's whole log.
func (e *env) runToEnd(t *testing.T, st *fakeStream, task, out string) string {
	t.Helper()
	cid := e.run(t, st, launchOf(task))
	e.containers.print(cid, out)
	e.containers.exit(cid, api.Termination{Reason: api.ReasonExited})
	e.waitForgotten(t, task)
	return "output of " + cid + "\n" + out
}

func TestKeptLogsBound(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.KeptLogs = 2
	ra := e.startWith(t, cfg)
	_, st := e.connected(t)
	master := e.apiClient(t, pki.RoleMaster)
	tasks := []string{"s1/b/0", "s1/b/1", "s1/b/2"}
	logs := map[string]string{}
	for _, task := range tasks {
		logs[task] = e.runToEnd(t, st, task, "I am "+task+"\n")
	}
	checkLog(t, ra, master, tasks[0], http.StatusNotFound, "")
	checkLog(t, ra, master, tasks[1], http.StatusOK, logs[tasks[1]])
	checkLog(t, ra, master, tasks[2], http.StatusOK, logs[tasks[2]])
	ra.stop(t)

	// A smaller bound at the next start drops the oldest again; what a
	// keep cut short left is deleted.
	tmp := filepath.Join(e.stateDir, logsDir, ".00000000000000000009-s1%2Fb%2F3.log.tmp-1")
	if err := os.WriteFile(tmp, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.KeptLogs = 1
	ra = e.startWith(t, cfg)
	checkLog(t, ra, master, tasks[1], http.StatusNotFound, "")
	checkLog(t, ra, master, tasks[2], http.StatusOK, logs[tasks[2]])
	if files := keptFiles(t, e.stateDir); len(files) != 1 || !strings.HasSuffix(files[0], "-s1%2Fb%2F2.log") {
		t.Errorf("kept logs %v, want the last task's only", files)
	}
}

func TestKeptLogSizeBound(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cfg.MaxKeptLog = 14
	ra := e.startWith(t, cfg)
	_, st := e.connected(t)
	master := e.apiClient(t, pki.RoleMaster)
	// "output of c01\n" (14 bytes), then 3 lines of 9: the last 14 bytes
	// start in the middle of the second of them.
	e.runToEnd(t, st, "s1/b/0", "line one\nline two\nline 333\n")
	want := fmt.Sprintf(truncatedLine, 32, 9) + "line 333\n"
	checkLog(t, ra, master, "s1/b/0", http.StatusOK, want)
}

func TestKept(t *testing.T) {
	trunc := func(dropped int, kept string) string { return fmt.Sprintf(truncatedLine, dropped, len(kept)) + kept }
	for _, tc := range []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{name: "fits", max: 16, writes: []string{"abc\n", "def\n"}, want: "abc\ndef\n"},
		{name: "just fits", max: 8, writes: []string{"abc\n", "def\n"}, want: "abc\ndef\n"},
		{name: "nothing", max: 8, want: ""},
		{name: "cut at a line's end", max: 18, writes: []string{"line one\n", "line two\n", "line 333\n"}, want: trunc(9, "line two\nline 333\n")},
		{name: "cut in a line", max: 22, writes: []string{"line one\n", "line two\n", "line 333\n"}, want: trunc(9, "line two\nline 333\n")},
		{name: "cut in the last line", max: 5, writes: []string{"line one\n", "line two\n"}, want: trunc(13, " two\n")},
		{name: "one long line", max: 4, writes: []string{"abcdefgh"}, want: trunc(4, "efgh")},
		{name: "a write beyond the bound", max: 5, writes: []string{"ab\n", "0123456789\n"}, want: trunc(9, "6789\n")},
		{name: "a write of the bound", max: 5, writes: []string{"ab\n", "0123\n"}, want: trunc(3, "0123\n")},
		{name: "many small writes", max: 8, writes: slices.Repeat([]string{"x\n"}, 100), want: trunc(192, "x\nx\nx\nx\n")},
		{name: "a partial line at the end", max: 10, writes: []string{"first\n", "second\n", "thi"}, want: trunc(6, "second\nthi")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &tailbuf.Buffer{Max: tc.max}
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if d := cmp.Diff(tc.want, string(kept(b))); d != "" {
				t.Errorf("kept (-want +got):\n%s", d)
			}
		})
	}
}

func TestKeptLogsSurviveRestart(t *testing.T) {
	master := func(e *env) *http.Client { return e.apiClient(t, pki.RoleMaster) }
	t.Run("ended before", func(t *testing.T) {
		e := newEnv(t)
		ra := e.start(t)
		_, st := e.connected(t)
		want := e.runToEnd(t, st, "s1/b/0", "bye\n")
		ra.stop(t)
		ra = e.start(t)
		checkLog(t, ra, master(e), "s1/b/0", http.StatusOK, want)
	})

	t.Run("crash between keeping and removing", func(t *testing.T) {
		e := newEnv(t)
		e.containers.removeErr = fmt.Errorf("device busy: %w", api.ErrWrongState)
		ra := e.start(t)
		_, st := e.connected(t)
		l := launchOf("s1/b/0")
		cid := e.run(t, st, l)
		e.containers.print(cid, "bye\n")
		e.containers.exit(cid, api.Termination{Reason: api.ReasonExited})
		e.master.nextOf(t, l.Task)
		e.containers.nextCall(t, "remove") // it fails: the task's record stays
		ra.stop(t)
		if files := keptFiles(t, e.stateDir); len(files) != 1 {
			t.Fatalf("kept logs before the restart: %v, want the task's", files)
		}
		e.containers.mu.Lock()
		e.containers.removeErr = nil
		e.containers.mu.Unlock()

		ra = e.start(t)
		e.waitForgotten(t, l.Task)
		if list, _ := e.containers.List(context.Background()); len(list) > 0 {
			t.Errorf("containers left: %v", list)
		}
		checkLog(t, ra, master(e), l.Task, http.StatusOK, "output of "+cid+"\nbye\n")
		if files := keptFiles(t, e.stateDir); len(files) != 1 {
			t.Errorf("kept logs after the restart: %v, want one", files)
		}
	})

	t.Run("ended while the agent was down", func(t *testing.T) {
		e := newEnv(t)
		ra := e.start(t)
		_, st := e.connected(t)
		l := launchOf("s1/b/0")
		cid := e.run(t, st, l)
		ra.stop(t)
		e.containers.print(cid, "the agent missed this\n")
		e.containers.exit(cid, api.Termination{ExitCode: 1, Reason: api.ReasonExited})
		ra = e.start(t)
		e.waitForgotten(t, l.Task)
		if u := e.master.nextOf(t, l.Task); u.State != api.TaskFailed {
			t.Errorf("update %+v, want failed", u)
		}
		checkLog(t, ra, master(e), l.Task, http.StatusOK, "output of "+cid+"\nthe agent missed this\n")
	})
}

// TestEndedTaskLogWithRunc reads the log of a real container's task
// after the agent removed the container.
func TestEndedTaskLogWithRunc(t *testing.T) {
	cz := runcContainerizer(t)
	rootfs := testutil.BusyboxRootfs(t)
	e := newEnv(t)
	cfg := e.config(t)
	cfg.Containers = NewContainers(cz)
	ra := e.startWith(t, cfg)
	_, st := e.connected(t)
	l := launchOf("s1/batch/0")
	l.Container = api.ContainerSpec{Rootfs: rootfs, Command: []string{"sh", "-c", "echo one; echo oops >&2; echo two; exit 3"}}
	cid := e.run(t, st, l)
	if u := e.master.nextOf(t, l.Task); u.State != api.TaskFailed {
		t.Errorf("update %+v, want failed", u)
	}
	e.waitForgotten(t, l.Task)
	if _, err := cz.Inspect(context.Background(), cid); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("the container after the task's end: %v, want it removed", err)
	}
	for _, follow := range []bool{false, true} {
		status, body := ra.get(t, e.apiClient(t, pki.RoleMaster), logsPath(l.Task, follow))
		// stdout in order, stderr in order, not ordered between them.
		lines := strings.SplitAfter(body, "\n")
		slices.Sort(lines)
		if status != http.StatusOK || !cmp.Equal([]string{"", "one\n", "oops\n", "two\n"}, lines) || strings.Index(body, "one") > strings.Index(body, "two") {
			t.Errorf("log (follow %v): %d %q, want the task's output", follow, status, body)
		}
	}
}
