package cgroups

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
)

// testParent returns a fresh cgroup parent, removed with everything below
// it, from every hierarchy, when the test ends.
func testParent(t *testing.T) string {
	t.Helper()
	parent := fmt.Sprintf("/caisson-test-%016x", rand.Uint64())
	t.Cleanup(func() { removeEverywhere(t, parent) })
	return parent
}

// removeEverywhere kills what runs in cgroup p and removes it from every
// cgroup filesystem mounted under /sys/fs/cgroup.
func removeEverywhere(t *testing.T, p string) {
	t.Helper()
	sweeper := &Isolator{mountpoint: DefaultMountpoint, host: Host{Mode: V1}, log: testutil.Logger(t)}
	if fsMagic(DefaultMountpoint) == unix.CGROUP2_SUPER_MAGIC {
		sweeper.host.Mode = V2
	}
	if err := sweeper.destroy(context.Background(), p); err != nil {
		t.Errorf("removing test cgroup %s: %v", p, err)
	}
}

// cgroupDirs lists the directories of cgroup p in every cgroup filesystem
// under /sys/fs/cgroup.
func cgroupDirs(t *testing.T, p string) []string {
	t.Helper()
	var out []string
	roots := []string{DefaultMountpoint}
	if fsMagic(DefaultMountpoint) != unix.CGROUP2_SUPER_MAGIC {
		entries, err := os.ReadDir(DefaultMountpoint)
		if err != nil {
			t.Fatal(err)
		}
		roots = nil
		for _, e := range entries {
			roots = append(roots, filepath.Join(DefaultMountpoint, e.Name()))
		}
	}
	for _, r := range roots {
		if m := fsMagic(r); m != unix.CGROUP_SUPER_MAGIC && m != unix.CGROUP2_SUPER_MAGIC {
			continue
		}
		if d := filepath.Join(r, p); dirExists(d) {
			out = append(out, d)
		}
	}
	return out
}

// v1Everything is a cgroup1 hierarchy of every v1 filesystem mounted under
// /sys/fs/cgroup that the library knows, the named systemd one included: what
// runc creates a container's cgroup in.
func v1Everything() ([]cgroup1.Subsystem, error) {
	root := DefaultMountpoint
	all := []cgroup1.Subsystem{
		cgroup1.NewCpu(root), cgroup1.NewCpuacct(root), cgroup1.NewMemory(root), cgroup1.NewPids(root),
		cgroup1.NewFreezer(root), cgroup1.NewCpuset(root), cgroup1.NewBlkio(root), cgroup1.NewDevices(root),
		cgroup1.NewNetCls(root), cgroup1.NewNetPrio(root), cgroup1.NewPerfEvent(root),
		cgroup1.NewNamed(root, "systemd"),
	}
	var out []cgroup1.Subsystem
	for _, s := range all {
		if fsMagic(filepath.Join(root, string(s.Name()))) == unix.CGROUP_SUPER_MAGIC {
			out = append(out, s)
		}
	}
	return out, nil
}

// requireV1 skips unless the host's resource controllers are on cgroup v1,
// and returns an isolator for a fresh test parent.
func requireV1(t *testing.T) *Isolator {
	t.Helper()
	testutil.RequiresLinux(t)
	testutil.RequiresRoot(t)
	if fsMagic(filepath.Join(DefaultMountpoint, "memory")) != unix.CGROUP_SUPER_MAGIC {
		t.Skip("this host has no cgroup v1 memory hierarchy (it is a cgroup v2 host)")
	}
	iso, err := New(Config{Parent: testParent(t), Mode: V1})
	if err != nil {
		t.Fatal(err)
	}
	return iso
}

// newV1Cgroup does what runc does for a container whose spec has res: it
// creates cgroup p in every v1 hierarchy (and, on a hybrid host, in the
// unified one) and writes the limits.
func newV1Cgroup(t *testing.T, p string, res *specs.LinuxResources) cgroup1.Cgroup {
	t.Helper()
	if res == nil {
		res = &specs.LinuxResources{}
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(p), res, cgroup1.WithHierarchy(v1Everything))
	if err != nil {
		t.Fatalf("create cgroup %s: %v", p, err)
	}
	if u := filepath.Join(DefaultMountpoint, "unified"); fsMagic(u) == unix.CGROUP2_SUPER_MAGIC {
		if err := os.MkdirAll(filepath.Join(u, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return cg
}

// joinV1 moves pid into cgroup p everywhere newV1Cgroup made it.
func joinV1(t *testing.T, cg cgroup1.Cgroup, p string) func(int) {
	return func(pid int) {
		t.Helper()
		if err := cg.AddProc(uint64(pid)); err != nil {
			t.Fatalf("move %d into %s: %v", pid, p, err)
		}
		if u := filepath.Join(DefaultMountpoint, "unified", p); dirExists(u) {
			if err := os.WriteFile(filepath.Join(u, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
				t.Fatalf("move %d into %s: %v", pid, u, err)
			}
		}
	}
}

// joinDir moves pid into the cgroup at dir (a v2 cgroup).
func joinDir(t *testing.T, dir string) func(int) {
	return func(pid int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatalf("move %d into %s: %v", pid, dir, err)
		}
	}
}

type proc struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	once   sync.Once
	err    error
}

// wait waits for the process to exit and returns its wait error; it may be
// called more than once.
func (p *proc) wait() error {
	p.once.Do(func() { p.err = p.cmd.Wait() })
	return p.err
}

// start runs script with busybox sh, moved into a cgroup by join before it
// does anything: the shell waits for a line on stdin that is written only
// once join returned. $BB in script is busybox. The process is killed and
// reaped when the test ends.
func start(t *testing.T, join func(pid int), script string) *proc {
	t.Helper()
	bb := testutil.LookPath(t, "busybox")
	cmd := exec.Command(bb, "sh", "-c", "read _ && "+script)
	cmd.Env = []string{"BB=" + bb, "PATH=/nonexistent"}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdout: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = p.wait()
	})
	join(cmd.Process.Pid)
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	_ = stdin.Close()
	return p
}

// killedBy reports whether a wait error says the process died of sig.
func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func readKey(t *testing.T, file, key string) uint64 {
	t.Helper()
	kv, err := readKV(file)
	if err != nil {
		t.Fatal(err)
	}
	return kv[key]
}

// usage calls Usage and fails the test on error.
func usage(t *testing.T, iso *Isolator, id string) api.Usage {
	t.Helper()
	var u api.Usage
	if err := iso.Usage(context.Background(), &isolators.UsageRequest{ContainerID: id}, &u); err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

// noSwap skips the test when the host has swap: the kernel could then
// reclaim anonymous memory the test means to pin.
func noSwap(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/proc/swaps")
	if err == nil && len(strings.Split(strings.TrimSpace(string(b)), "\n")) > 1 {
		t.Skip("the host has swap, so the kernel can reclaim the test's anonymous memory")
	}
}
