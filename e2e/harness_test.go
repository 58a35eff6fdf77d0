//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/testutil"
)

var caissonBin string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 || testutil.Pure() {
		os.Exit(m.Run()) // every test skips (or fails in CI) through RequiresRoot
	}
	// The CNI plugins add chains and tables every container shares; what
	// the tests made of those goes at the end.
	host, err := cnitest.Snapshot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := runTests(m)
	if err := host.Restore(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func runTests(m *testing.M) int {
	// A prebuilt binary, where there is no Go toolchain (the cgroup v2 VM).
	if bin := os.Getenv("CAISSON_E2E_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "CAISSON_E2E_BIN:", err)
			return 1
		}
		caissonBin = abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "caisson-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	caissonBin = filepath.Join(dir, "caisson")
	build := exec.Command("go", "build", "-o", caissonBin, "../cmd/caisson")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build caisson:", err)
		return 1
	}
	// The NVML helper is the one cgo binary; caisson finds it next to itself.
	build = exec.Command("go", "build", "-o", filepath.Join(dir, "caisson-nvml"), "../cmd/caisson-nvml")
	build.Env = append(os.Environ(), "CGO_ENABLED=1", "CGO_CFLAGS=-Wno-deprecated-declarations")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build caisson-nvml:", err)
		return 1
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	return code
}

// env is one test's private caisson installation, with its own CNI config
// dir, and a default network on a subnet and bridge of its own.
type env struct {
	t            testing.TB
	root, run    string
	cgroupParent string
	rootfs       string
	extraEnv     []string

	cniConf       string
	subnetPrefix  string   // "10.232.N." of the default network
	bridges       []string // made by this test's networks, deleted at teardown
	subnetOctet   int
	defaultBridge string

	// siblings are other work dirs sharing this env's cgroup parent (see
	// sibling); teardown removes their containers before this env's.
	siblings []*env
}

// subnet returns the prefix ("10.232.N.") of the env's k-th /24 (0 is the
// default network's; k < 4).
func (e *env) subnet(k int) string { return fmt.Sprintf("10.232.%d.", e.subnetOctet+k) }

// subnetCounter gives each env a /24 of 10.232.0.0/16 for its default
// network; networks the test creates take e.subnet(k).
var subnetCounter atomic.Int32

// noCNI reports that this machine has no CNI plugins: the cgroup v2 VM
// (scripts/cgroup2-vm.sh sets CAISSON_E2E_NO_CNI=1) carries none. Everywhere
// else the plugins are required, and a test that needs them fails without.
func noCNI() bool { return os.Getenv("CAISSON_E2E_NO_CNI") == "1" }

// requiresCNI skips t where the machine has no CNI plugins (noCNI).
func requiresCNI(t *testing.T) {
	t.Helper()
	if noCNI() {
		t.Skip("no CNI plugins on this machine (the cgroup v2 VM)")
	}
}

func newEnv(t testing.TB) *env {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.LookPath(t, "runc")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	base := t.TempDir()
	n := int(subnetCounter.Add(1)) * 4 % 256
	e := &env{
		t:             t,
		root:          filepath.Join(base, "lib"),
		run:           filepath.Join(base, "run"),
		cgroupParent:  "/caisson-e2e-" + hex.EncodeToString(b),
		rootfs:        filepath.Join(base, "busybox"),
		cniConf:       filepath.Join(base, "net.d"),
		subnetOctet:   n,
		subnetPrefix:  fmt.Sprintf("10.232.%d.", n),
		defaultBridge: "ce" + hex.EncodeToString(b),
	}
	e.bridges = []string{e.defaultBridge}
	e.extraEnv = []string{
		"CAISSON_CNI_CONFIG_DIR=" + e.cniConf,
		"CAISSON_CNI_PATH=" + cnitest.DebianPlugins,
		"CAISSON_DEFAULT_NETWORK_SUBNET=" + e.subnetPrefix + "0/24",
		"CAISSON_DEFAULT_NETWORK_BRIDGE=" + e.defaultBridge,
	}
	testutil.MakeBusyboxRootfs(t, e.rootfs)
	t.Cleanup(e.teardown)
	return e
}

// result is what one caisson invocation did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

func (e *env) cmd(args ...string) *exec.Cmd {
	full := append([]string{"--root", e.root, "--run-root", e.run}, args...)
	cmd := exec.Command(caissonBin, full...)
	// The cgroup parent is not a flag of every command (gpu, node): the
	// environment gives it to those that use it.
	cmd.Env = append(append(os.Environ(), "CAISSON_LOG_LEVEL=warn", "CAISSON_CGROUP_PARENT="+e.cgroupParent), e.extraEnv...)
	return cmd
}

// caisson runs the binary and returns what it did; it never fails the test.
func (e *env) caisson(args ...string) result {
	e.t.Helper()
	cmd := e.cmd(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		e.t.Fatalf("caisson %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs caisson and fails the test unless it exits 0.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	r := e.caisson(args...)
	if r.code != 0 {
		e.t.Fatalf("caisson %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

func (e *env) inspect(ref string) api.Container {
	e.t.Helper()
	var cs []api.Container
	if err := json.Unmarshal([]byte(e.ok("inspect", ref)), &cs); err != nil || len(cs) != 1 {
		e.t.Fatalf("inspect %s: %v (%d containers)", ref, err, len(cs))
	}
	return cs[0]
}

// waitForLine follows a detached container's log until a line equal to want
// appears (the container prints it when it is ready), so tests synchronise on
// what the container says rather than on time.
func (e *env) waitForLine(ref, want string) {
	e.t.Helper()
	followUntil(e.t, e.cmd("logs", "-f", ref), want)
}

// followUntil runs follow, a caisson logs -f, until it prints a line equal
// to want, and stops it there.
func followUntil(t testing.TB, follow *exec.Cmd, want string) {
	t.Helper()
	out, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follow.Process.Kill(); _ = follow.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == want {
			return
		}
	}
	t.Fatalf("%s ended without printing %q", strings.Join(follow.Args, " "), want)
}

// cgroupMounts lists the v1 hierarchies and the v2 mount on this host.
func cgroupMounts(t testing.TB) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		for i, x := range f {
			if x == "-" && i+1 < len(f) && (f[i+1] == "cgroup" || f[i+1] == "cgroup2") {
				out = append(out, f[4])
			}
		}
	}
	return out
}

// leftovers lists everything this env's containers could have left on the
// host: container directories, runtime state, cgroups under the parent,
// mounts under the state dirs, and live processes started from them.
func (e *env) leftovers() []string {
	var out []string
	if entries, err := os.ReadDir(filepath.Join(e.root, "containers")); err == nil {
		for _, d := range entries {
			if d.IsDir() {
				out = append(out, "container dir "+d.Name())
			}
		}
	}
	for _, d := range []string{"owned", "trash"} {
		entries, _ := os.ReadDir(filepath.Join(e.root, d))
		for _, x := range entries {
			out = append(out, d+" "+x.Name())
		}
	}
	if rts, err := os.ReadDir(filepath.Join(e.run, "runtime")); err == nil {
		for _, rt := range rts {
			states, _ := os.ReadDir(filepath.Join(e.run, "runtime", rt.Name()))
			for _, s := range states {
				out = append(out, "runtime state "+rt.Name()+"/"+s.Name())
			}
		}
	}
	for _, m := range cgroupMounts(e.t) {
		children, _ := os.ReadDir(filepath.Join(m, e.cgroupParent))
		for _, c := range children {
			if c.IsDir() {
				out = append(out, "cgroup "+filepath.Join(m, e.cgroupParent, c.Name()))
			}
		}
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			// The shared mount of the namespace dir stays, as iproute2's
			// /run/netns does; the namespaces in it must not.
			if len(f) > 4 && (strings.HasPrefix(f[4], e.root) || strings.HasPrefix(f[4], e.run)) && f[4] != filepath.Join(e.run, "cni", "netns") {
				out = append(out, "mount "+f[4])
			}
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(e.root, "cni", "networks")); len(entries) > 0 {
		for _, n := range entries {
			out = append(out, cnitest.Leaks(e.t, nil, "", filepath.Join(e.root, "cni", "networks", n.Name()), "", "", "")...)
		}
	}
	for _, br := range e.bridges {
		out = append(out, cnitest.Leaks(e.t, nil, br, "", filepath.Join(e.root, "cni", "cache"), "", "")...)
	}
	for k := 0; k < 4; k++ {
		out = append(out, cnitest.Leaks(e.t, nil, "", "", "", e.subnet(k), "")...)
	}
	if recs, _ := filepath.Glob(filepath.Join(e.root, "volumes", "*.json")); len(recs) > 0 {
		for _, r := range recs {
			out = append(out, "volume record "+filepath.Base(r))
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.root, "gpu", "state.json")); err == nil {
		var s struct{ Allocations map[string]string }
		if json.Unmarshal(b, &s) == nil {
			for u, c := range s.Allocations {
				out = append(out, "GPU "+u+" allocated to "+c)
			}
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(e.root+"\x00")) {
			out = append(out, "process "+p.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// sibling returns another caisson installation with a work dir of its own
// that shares this env's cgroup parent, CNI configuration and rootfs, and
// with shareRun its run root too, as two work dirs on one host do by
// default. This env's teardown removes its containers and checks it too.
func (e *env) sibling(shareRun bool) *env {
	e.t.Helper()
	base := e.t.TempDir()
	s := *e
	s.root = filepath.Join(base, "lib")
	s.run = filepath.Join(base, "run")
	if shareRun {
		s.run = e.run
	}
	s.siblings = nil
	e.siblings = append(e.siblings, &s)
	return &s
}

// teardown removes every container, checks that nothing is left, and then
// removes by force whatever was, so a failing test cannot leak.
func (e *env) teardown() {
	for _, s := range e.siblings {
		if ids := strings.Fields(s.caisson("ps", "-aq").stdout); len(ids) > 0 {
			s.caisson(append([]string{"rm", "-f"}, ids...)...)
		}
		s.caisson("recover")
	}
	if ids := strings.Fields(e.caisson("ps", "-aq").stdout); len(ids) > 0 {
		e.caisson(append([]string{"rm", "-f"}, ids...)...)
	}
	e.caisson("recover")
	for _, s := range append([]*env{e}, e.siblings...) {
		if left := s.leftovers(); len(left) > 0 && !e.t.Failed() {
			e.t.Errorf("left behind after removing every container:\n  %s", strings.Join(left, "\n  "))
		}
	}
	for _, s := range e.siblings {
		s.forceClean()
	}
	e.forceClean()
}

func (e *env) forceClean() {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(e.root+"\x00")) {
			var pid int
			if _, err := fmt.Sscan(p.Name(), &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, m := range cgroupMounts(e.t) {
		dir := filepath.Join(m, e.cgroupParent)
		children, _ := os.ReadDir(dir)
		for _, c := range children {
			if !c.IsDir() {
				continue
			}
			if procs, err := os.ReadFile(filepath.Join(dir, c.Name(), "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(procs)) {
					var pid int
					if _, err := fmt.Sscan(f, &pid); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			for i := 0; i < 100; i++ {
				if err := os.Remove(filepath.Join(dir, c.Name())); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(10 * time.Millisecond) // cleanup of a failed test: let the kernel reap
			}
		}
		_ = os.Remove(dir)
	}
	for _, br := range e.bridges {
		_ = exec.Command("ip", "link", "delete", "dev", br).Run()
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		lines := strings.Split(string(data), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			f := strings.Fields(lines[i])
			if len(f) > 4 && (strings.HasPrefix(f[4], e.root) || strings.HasPrefix(f[4], e.run)) {
				_ = unix.Unmount(f[4], unix.MNT_DETACH)
			}
		}
	}
}

// v2Files maps each v1 file the tests read to the cgroup v2 file that holds
// the same value, and which of its space-separated fields (-1: all of it):
// cpu.max is "quota period", and the soft limit (--memory-reservation) is
// memory.high on v2.
var v2Files = map[string]struct {
	file  string
	field int
}{
	"cpu.cfs_quota_us":           {"cpu.max", 0},
	"cpu.cfs_period_us":          {"cpu.max", 1},
	"memory.limit_in_bytes":      {"memory.max", -1},
	"memory.soft_limit_in_bytes": {"memory.high", -1},
	"pids.max":                   {"pids.max", -1},
	"pids.current":               {"pids.current", -1},
}

// readCgroupFile reads a v1 file of a container's cgroup in the given v1
// controller's hierarchy. On a unified (cgroup v2) host it reads the v2 file
// that holds the same value instead (v2Files), as v1 would write it: a CPU
// quota of "max" is -1.
func readCgroupFile(t testing.TB, cgroupPath, controller, file string) string {
	t.Helper()
	const root = "/sys/fs/cgroup"
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		data, err := os.ReadFile(filepath.Join(root, controller, cgroupPath, file))
		if err != nil {
			t.Fatalf("cgroup v1 file: %v", err)
		}
		return strings.TrimSpace(string(data))
	}
	v2, ok := v2Files[file]
	if !ok {
		t.Fatalf("the test reads %s, which has no cgroup v2 file in v2Files", file)
	}
	data, err := os.ReadFile(filepath.Join(root, cgroupPath, v2.file))
	if err != nil {
		t.Fatalf("cgroup v2 file for %s: %v", file, err)
	}
	value := strings.TrimSpace(string(data))
	if v2.field >= 0 {
		fields := strings.Fields(value)
		if v2.field >= len(fields) {
			t.Fatalf("%s of %s is %q: no field %d for %s", v2.file, cgroupPath, value, v2.field, file)
		}
		value = fields[v2.field]
	}
	if file == "cpu.cfs_quota_us" && value == "max" {
		value = "-1"
	}
	return value
}

// processAlive reports whether pid runs (a zombie, whose parent has not
// reaped it yet, does not).
func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z' && s[i+2] != 'X'
}

func hostArch() string { return runtime.GOARCH }
