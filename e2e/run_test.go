//go:build linux

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/isolators/cgroups"
)

func TestRunOutputAndExitCodes(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"stdout", []string{"run", "--rm", "--rootfs", e.rootfs, "echo", "hello"}, 0, "hello\n", ""},
		{"stderr", []string{"run", "--rm", "--rootfs", e.rootfs, "sh", "-c", "echo oops >&2"}, 0, "", "oops\n"},
		{"own exit code", []string{"run", "--rm", "--rootfs", e.rootfs, "sh", "-c", "exit 3"}, 3, "", ""},
		{"missing command", []string{"run", "--rm", "--rootfs", e.rootfs, "nosuchcommand"}, 127, "", ""},
		{"not executable", []string{"run", "--rm", "--rootfs", e.rootfs, "/etc/passwd"}, 126, "", ""},
		{"directory as command", []string{"run", "--rm", "--rootfs", e.rootfs, "/etc"}, 126, "", ""},
		{"bad memory", []string{"run", "--rm", "-m", "lots", "--rootfs", e.rootfs, "true"}, 125, "", ""},
		{"bad cpus", []string{"run", "--rm", "--cpus", "-1", "--rootfs", e.rootfs, "true"}, 125, "", ""},
		{"too many cpus", []string{"run", "--rm", "--cpus", "4096", "--rootfs", e.rootfs, "true"}, 125, "", ""},
		{"missing rootfs", []string{"run", "--rm", "--rootfs", "/nonexistent/rootfs", "true"}, 125, "", ""},
		{"rootfs is a file", []string{"run", "--rm", "--rootfs", "/etc/passwd", "true"}, 125, "", ""},
		{"host root as rootfs", []string{"run", "--rm", "--rootfs", "/", "true"}, 125, "", ""},
		{"missing image", []string{"run", "--rm", "oci:/nonexistent/layout", "true"}, 125, "", ""},
		{"no command", []string{"run", "--rm", "--rootfs", e.rootfs}, 125, "", ""},
		{"unknown user", []string{"run", "--rm", "-u", "nosuchuser", "--rootfs", e.rootfs, "true"}, 125, "", ""},
		{"relative workdir", []string{"run", "--rm", "-w", "tmp", "--rootfs", e.rootfs, "true"}, 125, "", ""},
		{"bad name", []string{"run", "--rm", "--name", "no/slash", "--rootfs", e.rootfs, "true"}, 125, "", ""},
		{"unknown network", []string{"run", "--rm", "--network", "bridge", "--rootfs", e.rootfs, "true"}, 125, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.caisson(tc.args...)
			if r.code != tc.wantCode {
				t.Fatalf("exit code: %s; want %d", r, tc.wantCode)
			}
			if tc.wantCode < 125 {
				if r.stdout != tc.wantStdout || r.stderr != tc.wantStderr {
					t.Errorf("output: %s; want stdout %q stderr %q", r, tc.wantStdout, tc.wantStderr)
				}
			} else if !strings.HasPrefix(r.stderr, "caisson: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("want one line starting with \"caisson: \", got %q", r.stderr)
			}
			if left := e.leftovers(); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestInteractiveStdin(t *testing.T) {
	e := newEnv(t)
	cmd := e.cmd("run", "--rm", "-i", "--rootfs", e.rootfs, "sh", "-c", "tr a-z A-Z; echo done")
	cmd.Stdin = strings.NewReader("piped in\n")
	out, err := cmd.Output()
	if err != nil || string(out) != "PIPED IN\ndone\n" {
		t.Fatalf("run -i: %v, stdout %q", err, out)
	}
	// Without -i the container reads nothing.
	cmd = e.cmd("run", "--rm", "--rootfs", e.rootfs, "sh", "-c", "cat; echo end")
	cmd.Stdin = strings.NewReader("not for the container\n")
	if out, err := cmd.Output(); err != nil || string(out) != "end\n" {
		t.Fatalf("run without -i: %v, stdout %q", err, out)
	}
}

func TestDuplicateName(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "-d", "--name", "web", "--rootfs", e.rootfs, "sleep", "1000")
	r := e.caisson("run", "--name", "web", "--rootfs", e.rootfs, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "already in use") {
		t.Fatalf("second container named web: %s", r)
	}
	if n := len(strings.Fields(e.ok("ps", "-aq"))); n != 1 {
		t.Fatalf("ps -aq lists %d containers, want 1", n)
	}
}

func TestProcessSettings(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"user by name", []string{"-u", "app", "id"}, "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)"},
		{"user numeric", []string{"-u", "4242:4242", "id", "-u"}, "4242"},
		{"workdir", []string{"-w", "/var/work", "pwd"}, "/var/work"},
		{"env", []string{"-e", "FOO=bar", "sh", "-c", "echo $FOO"}, "bar"},
		{"home", []string{"-u", "app", "sh", "-c", "echo $HOME"}, "/home/app"},
		{"hostname", []string{"-h", "box1", "hostname"}, "box1"},
		{"network none has only loopback", []string{"sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"}, "lo"},
		{"no new privileges", []string{"sh", "-c", "grep NoNewPrivs /proc/self/status | tr -d '\\t '"}, "NoNewPrivs:1"},
		{"default capabilities", []string{"sh", "-c", "grep CapBnd /proc/self/status | tr -d '\\t '"}, "CapBnd:00000000a80425fb"},
		{"pid namespace", []string{"sh", "-c", "echo $$"}, "1"},
		{"masked kcore", []string{"sh", "-c", "head -c 1 /proc/kcore | wc -c"}, "0"},
		{"read-only proc/sys", []string{"sh", "-c", "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo writable || echo readonly"}, "readonly"},
		{"devices denied", []string{"sh", "-c", "mknod /tmp/disk b 8 0 && (head -c 1 /tmp/disk >/dev/null 2>&1 && echo readable || echo denied)"}, "denied"},
		{"dev/null allowed", []string{"sh", "-c", "echo x > /dev/null && echo ok"}, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--rm", "--rootfs", e.rootfs}, tc.args...)
			r := e.caisson(args...)
			if r.code != 0 || strings.TrimSpace(r.stdout) != tc.want {
				t.Fatalf("%s; want stdout %q", r, tc.want)
			}
		})
	}
}

func TestRootfsIsNotModified(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "--rm", "--rootfs", e.rootfs, "sh", "-c", "echo data > /written && rm /bin/cat")
	if _, err := os.Stat(filepath.Join(e.rootfs, "written")); !os.IsNotExist(err) {
		t.Errorf("the container wrote into the --rootfs directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(e.rootfs, "bin", "cat")); err != nil {
		t.Errorf("the container deleted from the --rootfs directory: %v", err)
	}
}

func TestNoImageHostFilesystem(t *testing.T) {
	e := newEnv(t)
	r := e.caisson("run", "--rm", "--no-image", "/bin/sh", "-c",
		`pwd; echo data > f && cat f; touch /etc/caisson-test 2>/dev/null && echo etc-writable || echo etc-readonly; `+
			`touch /usr/caisson-test 2>/dev/null && echo usr-writable || echo usr-readonly; touch /tmp/x && echo tmp-writable; `+
			`ls `+e.root+` 2>/dev/null | wc -l`)
	want := "/mnt/sandbox\ndata\netc-readonly\nusr-readonly\ntmp-writable\n0\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("%s; want stdout %q", r, want)
	}
	if _, err := os.Stat("/etc/caisson-test"); err == nil {
		_ = os.Remove("/etc/caisson-test")
		t.Fatal("a --no-image container wrote to the host's /etc")
	}
}

func TestOOMKill(t *testing.T) {
	e := newEnv(t)
	r := e.caisson("run", "--name", "hog", "-m", "32m", "--rootfs", e.rootfs, "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1")
	if r.code != 137 {
		t.Fatalf("memory hog: %s; want exit 137", r)
	}
	if !strings.Contains(r.stderr, "memory limit") {
		t.Errorf("stderr %q does not say the memory limit was exceeded", r.stderr)
	}
	c := e.inspect("hog")
	if c.State != api.StateExited || c.Termination == nil || c.Termination.Reason != api.ReasonOOM || c.Termination.ExitCode != 137 {
		t.Fatalf("inspect: state %s, termination %+v; want exited, oom-killed, 137", c.State, c.Termination)
	}
	if st := e.ok("ps", "-a"); !strings.Contains(st, "oom-killed") {
		t.Errorf("ps -a does not show the OOM:\n%s", st)
	}
}

// A CPU limit under half a CPU reaches the runtime as the same share of a
// one-second period, so that the runtime's own init is not throttled by
// it, and is set over the standard 100 ms period once the container runs;
// its bundle says where it came from.
func TestSmallCPUQuota(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "-d", "--name", "small", "--cpus", "0.1", "--rootfs", e.rootfs, "sh", "-c", "echo ready && exec sleep 1000")
	e.waitForLine("small", "ready")
	c := e.inspect("small")
	if c.State != api.StateRunning || c.Spec.Resources.CPUs != 0.1 {
		t.Fatalf("inspect: state %s, resources %+v", c.State, c.Spec.Resources)
	}
	if got := readCgroupFile(t, c.CgroupPath, "cpu", "cpu.cfs_quota_us"); got != "10000" {
		t.Errorf("cpu.cfs_quota_us = %s, want 10000 (10%% of a 100ms period)", got)
	}
	if got := readCgroupFile(t, c.CgroupPath, "cpu", "cpu.cfs_period_us"); got != "100000" {
		t.Errorf("cpu.cfs_period_us = %s, want 100000", got)
	}
	data, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if q := s.Linux.Resources.CPU; q == nil || q.Quota == nil || *q.Quota != 100000 || q.Period == nil || *q.Period != cgroups.StartPeriod ||
		s.Annotations[cgroups.AnnotationCPUQuota] != "10000" {
		t.Errorf("the runtime's spec: cpu %+v, annotations %v; want 100000 per %d, and %s=10000", q, s.Annotations, cgroups.StartPeriod, cgroups.AnnotationCPUQuota)
	}
	e.ok("rm", "-f", "small")
}

func TestLimitsAndUsage(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "-d", "--name", "worker", "--cpus", "0.5", "-m", "256m", "--memory-reservation", "200m", "--pids-limit", "50",
		"--shm-size", "128m", "--rootfs", e.rootfs,
		"sh", "-c", "head -c 67108864 /dev/zero > /dev/shm/hold && echo ready && exec sleep 1000")
	e.waitForLine("worker", "ready")
	c := e.inspect("worker")
	if c.State != api.StateRunning || c.Pid == 0 || c.CgroupPath == "" {
		t.Fatalf("inspect: %+v", c)
	}
	if got := readCgroupFile(t, c.CgroupPath, "cpu", "cpu.cfs_quota_us"); got != "50000" {
		t.Errorf("cpu.cfs_quota_us = %s, want 50000 (50%% of a 100ms period)", got)
	}
	if got := readCgroupFile(t, c.CgroupPath, "cpu", "cpu.cfs_period_us"); got != "100000" {
		t.Errorf("cpu.cfs_period_us = %s, want 100000", got)
	}
	if got := readCgroupFile(t, c.CgroupPath, "memory", "memory.limit_in_bytes"); got != strconv.Itoa(256<<20) {
		t.Errorf("memory.limit_in_bytes = %s", got)
	}
	if got := readCgroupFile(t, c.CgroupPath, "memory", "memory.soft_limit_in_bytes"); got != strconv.Itoa(200<<20) {
		t.Errorf("memory.soft_limit_in_bytes = %s", got)
	}
	if got := readCgroupFile(t, c.CgroupPath, "pids", "pids.max"); got != "50" {
		t.Errorf("pids.max = %s", got)
	}

	var rows []struct {
		Usage api.Usage `json:"usage"`
	}
	if err := json.Unmarshal([]byte(e.ok("stats", "--format", "json", "worker")), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("stats json: %v", err)
	}
	u := rows[0].Usage
	const mib = 1 << 20
	if u.MemoryUsageBytes < 64*mib || u.MemoryUsageBytes > 80*mib {
		t.Errorf("memory usage %d MiB, want ≈64 MiB for a container holding 64 MiB", u.MemoryUsageBytes/mib)
	}
	if u.MemoryLimitBytes != 256*mib || u.Pids == 0 || u.PidsLimit != 50 {
		t.Errorf("usage: %+v", u)
	}
	if table := e.ok("stats", "worker"); !strings.Contains(table, "MEM USAGE / LIMIT") || !strings.Contains(table, "256MiB") {
		t.Errorf("stats table:\n%s", table)
	}

	e.ok("update", "--cpus", "1.5", "-m", "512m", "worker")
	if got := readCgroupFile(t, c.CgroupPath, "cpu", "cpu.cfs_quota_us"); got != "150000" {
		t.Errorf("after update cpu.cfs_quota_us = %s, want 150000", got)
	}
	if got := readCgroupFile(t, c.CgroupPath, "memory", "memory.limit_in_bytes"); got != strconv.Itoa(512<<20) {
		t.Errorf("after update memory.limit_in_bytes = %s", got)
	}
	if c := e.inspect("worker"); c.Spec.Resources.CPUs != 1.5 || c.Spec.Resources.MemoryBytes != 512<<20 {
		t.Errorf("inspect after update: %+v", c.Spec.Resources)
	}
	if r := e.caisson("update", "--cpus", "zero", "worker"); r.code != 125 {
		t.Errorf("update with a bad value: %s", r)
	}
	if r := e.caisson("rm", "worker"); r.code != 125 || !strings.Contains(r.stderr, "running") {
		t.Errorf("rm of a running container without -f: %s", r)
	}
	e.ok("rm", "-f", "worker")
}

func TestPidsLimitStopsForkLoop(t *testing.T) {
	e := newEnv(t)
	// The fork loop runs in a child shell, which busybox ash ends at the
	// first failed fork; the container's init then reads the count with a
	// builtin (no fork needed).
	script := `sh -c 'for i in $(seq 1 40); do sleep 1000 & done'; ` +
		`read n < /sys/fs/cgroup/pids/pids.current 2>/dev/null || read n < /sys/fs/cgroup/pids.current; echo $n`
	r := e.caisson("run", "--rm", "--pids-limit", "10", "--rootfs", e.rootfs, "sh", "-c", script)
	n, err := strconv.Atoi(strings.TrimSpace(r.stdout))
	if r.code != 0 || err != nil {
		t.Fatalf("%s", r)
	}
	if n > 10 || n < 8 {
		t.Errorf("%d processes in the container after the fork loop, want the limit of 10 reached (8 to 10 left)", n)
	}
	if !strings.Contains(r.stderr, "can't fork") {
		t.Errorf("the fork loop was not stopped: stderr %q", r.stderr)
	}
}

// A detached container survives the death of every caisson process but its
// monitor, and its exit code is kept.
func TestMonitorKeepsExitStatus(t *testing.T) {
	e := newEnv(t)
	cmd := e.cmd("run", "--name", "survivor", "--rootfs", e.rootfs, "sh", "-c",
		`trap 'exit 7' TERM; echo ready; while true; do sleep 1; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("foreground run did not print ready: %v", sc.Err())
	}
	// Kill the foreground caisson process: only the monitor is left.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	c := e.inspect("survivor")
	if c.State != api.StateRunning {
		t.Fatalf("after the caisson process died the container is %s, want running", c.State)
	}
	if !processAlive(c.MonitorPid) {
		t.Fatalf("monitor %d is not alive", c.MonitorPid)
	}
	if ps := e.ok("ps"); !strings.Contains(ps, "survivor") || !strings.Contains(ps, "Up") {
		t.Errorf("ps:\n%s", ps)
	}
	e.ok("kill", "-s", "TERM", "survivor")
	if got := strings.TrimSpace(e.ok("wait", "survivor")); got != "7" {
		t.Fatalf("wait printed %q, want 7", got)
	}
	c = e.inspect("survivor")
	if c.State != api.StateExited || c.Termination == nil || c.Termination.ExitCode != 7 || c.Termination.Reason != api.ReasonExited {
		t.Fatalf("inspect after exit: %s %+v", c.State, c.Termination)
	}
	if processAlive(c.MonitorPid) {
		t.Errorf("monitor %d still alive after the container exited", c.MonitorPid)
	}
}

func TestKillReports137(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.ok("run", "-d", "--rootfs", e.rootfs, "sleep", "1000"))
	e.ok("kill", id[:12])
	if got := strings.TrimSpace(e.ok("wait", id)); got != "137" {
		t.Fatalf("exit after kill = %s, want 137", got)
	}
	if c := e.inspect(id); c.Termination.Reason != api.ReasonKilled {
		t.Errorf("reason = %s, want killed", c.Termination.Reason)
	}
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "-d", "--name", "talker", "--rootfs", e.rootfs, "sh", "-c", "echo out1; echo err1 >&2; echo out2")
	e.ok("wait", "talker")
	r := e.caisson("logs", "talker")
	if r.code != 0 || r.stdout != "out1\nout2\n" || r.stderr != "err1\n" {
		t.Fatalf("logs: %s", r)
	}
	r = e.caisson("logs", "-t", "talker")
	if !strings.Contains(r.stdout, "Z out1\n") {
		t.Errorf("logs -t: %s", r)
	}
	if r := e.caisson("logs", "nosuch"); r.code != 125 {
		t.Errorf("logs of an unknown container: %s", r)
	}
}

func TestPsAndInspectJSON(t *testing.T) {
	e := newEnv(t)
	e.ok("run", "-d", "--name", "ps-up", "--rootfs", e.rootfs, "sleep", "1000")
	e.ok("run", "--name", "ps-done", "--rootfs", e.rootfs, "true")
	var list []api.Container
	if err := json.Unmarshal([]byte(e.ok("ps", "--format", "json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "ps-up" {
		t.Fatalf("ps lists %d containers, want only the running one", len(list))
	}
	if err := json.Unmarshal([]byte(e.ok("ps", "-a", "--format", "json")), &list); err != nil || len(list) != 2 {
		t.Fatalf("ps -a: %v, %d containers", err, len(list))
	}
	b := e.inspect("ps-done")
	if b.State != api.StateExited || b.Termination == nil || b.Termination.ExitCode != 0 || b.Termination.Reason != api.ReasonExited {
		t.Errorf("inspect b: %+v", b)
	}
	if r := e.caisson("ps", "--format", "yaml"); r.code != 125 {
		t.Errorf("ps with a bad format: %s", r)
	}
	e.ok("rm", "ps-done")
	if r := e.caisson("inspect", "ps-done"); r.code != 125 {
		t.Errorf("inspect of a removed container: %s", r)
	}
}

// Two hundred create/destroy cycles leave nothing behind.
func TestManyCyclesLeaveNothing(t *testing.T) {
	e := newEnv(t)
	n := 200
	if testing.Short() {
		n = 20
	}
	for i := 0; i < n; i++ {
		args := []string{"run", "--rm", "--cpus", "0.5", "-m", "64m", "--pids-limit", "20", "--rootfs", e.rootfs, "true"}
		if i%2 == 1 {
			args = []string{"run", "--name", fmt.Sprintf("c%d", i), "-m", "64m", "--rootfs", e.rootfs, "true"}
		}
		e.ok(args...)
		if i%2 == 1 {
			e.ok("rm", fmt.Sprintf("c%d", i))
		}
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Fatalf("after %d cycles, left behind:\n%s", n, strings.Join(left, "\n"))
	}
}

func TestCrun(t *testing.T) {
	e := newEnv(t)
	e.extraEnv = []string{"CAISSON_RUNTIME=crun"}
	r := e.caisson("run", "--rm", "-m", "64m", "--cpus", "0.5", "--rootfs", e.rootfs, "sh", "-c", "echo via crun; exit 4")
	if r.code != 4 || r.stdout != "via crun\n" {
		t.Fatalf("crun: %s", r)
	}
	if r := e.caisson("run", "--rm", "--rootfs", e.rootfs, "nosuchcommand"); r.code != 127 {
		t.Errorf("crun, missing command: %s", r)
	}
	r = e.caisson("run", "--name", "hog", "-m", "32m", "--rootfs", e.rootfs, "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1")
	if r.code != 137 || e.inspect("hog").Termination.Reason != api.ReasonOOM {
		t.Fatalf("crun OOM: %s", r)
	}
}
