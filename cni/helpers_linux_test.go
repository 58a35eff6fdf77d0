package cni

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
)

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "bridge" {
		os.Exit(collectingBridge()) // this binary stands in for a plugin
	}
	var host *cnitest.HostState
	if os.Geteuid() == 0 && !testutil.Pure() {
		var err error
		if host, err = cnitest.Snapshot(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if host != nil {
		if err := host.Restore(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// subnets hands each test environment its own /24 of 10.231.0.0/16,
// counting from a random start so that test processes running at once
// seldom meet (Create refuses a subnet another one's bridge has).
var subnets = func() *atomic.Int32 {
	var n atomic.Int32
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	n.Store(int32(b[0]) % 160)
	return &n
}()

// env is an isolator over temporary dirs with one bridge network.
type env struct {
	iso                      *Isolator
	dir, confDir, pluginDir  string
	net, bridge, subnet, pfx string
	ids                      []string
}

// newEnv makes an isolator whose plugins are in pluginDir and one network
// at cniVersion with a /prefix subnet (24 or 29).
func newEnv(t *testing.T, pluginDir, cniVersion string, prefix int) *env {
	t.Helper()
	testutil.RequiresRoot(t)
	cnitest.RequirePlugins(t)
	n := subnets.Add(1)
	e := &env{dir: t.TempDir(), pluginDir: pluginDir, net: fmt.Sprintf("t%d", n), bridge: "ct" + randHex(5)}
	e.pfx = fmt.Sprintf("10.231.%d.", n)
	e.subnet = fmt.Sprintf("10.231.%d.0/%d", n, prefix)
	e.confDir = filepath.Join(e.dir, "net.d")
	iso, err := New(Config{
		ConfDir: e.confDir, PluginDirs: []string{pluginDir},
		StateDir: filepath.Join(e.dir, "state"), RunDir: filepath.Join(e.dir, "run"),
		HostResolvConf: filepath.Join(e.dir, "resolv.conf"),
		Logger:         testutil.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.iso = iso
	if err := os.WriteFile(iso.cfg.HostResolvConf, []byte("nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := iso.Create(CreateOptions{Name: e.net, Subnet: e.subnet, Bridge: e.bridge, CNIVersion: cniVersion}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, id := range e.ids {
			if err := iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: id}); err != nil {
				t.Errorf("cleanup %s: %v", id, err)
			}
		}
		if leaks := e.leaks(t); len(leaks) > 0 {
			t.Errorf("left behind:\n%s", strings.Join(leaks, "\n"))
		}
		if err := cnitest.RemoveRules(e.ids, e.pfx); err != nil {
			t.Error(err)
		}
		_ = exec.Command("ip", "link", "delete", "dev", e.bridge).Run()
		_ = unix.Unmount(filepath.Join(iso.cfg.RunDir, "netns"), unix.MNT_DETACH)
	})
	return e
}

// sibling is the isolator of another work dir on this host: its own state
// and run dirs, this env's config dir, plugins and resolver file, as
// another caisson root that shares the config dir sees it. Its containers
// are cleaned up before the env's.
func (e *env) sibling(t *testing.T) *env {
	t.Helper()
	s := &env{dir: t.TempDir(), confDir: e.confDir, pluginDir: e.pluginDir, net: e.net, bridge: e.bridge, subnet: e.subnet, pfx: e.pfx}
	iso, err := New(Config{
		ConfDir: e.confDir, PluginDirs: e.iso.cfg.PluginDirs,
		StateDir: filepath.Join(s.dir, "state"), RunDir: filepath.Join(s.dir, "run"),
		HostResolvConf: e.iso.cfg.HostResolvConf, Logger: e.iso.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.iso = iso
	t.Cleanup(func() {
		for _, id := range s.ids {
			if err := iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
				t.Errorf("cleanup %s: %v", id, err)
			}
		}
		if err := cnitest.RemoveRules(s.ids, ""); err != nil {
			t.Error(err)
		}
		_ = unix.Unmount(filepath.Join(iso.cfg.RunDir, "netns"), unix.MNT_DETACH)
	})
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n*2-1]
}

// leaks lists what is left of this env's containers.
func (e *env) leaks(t *testing.T) []string {
	leaks := cnitest.Leaks(t, e.ids, e.bridge, filepath.Join(e.iso.cfg.StateDir, "networks", e.net),
		filepath.Join(e.iso.cfg.StateDir, "cache"), e.pfx, filepath.Join(e.iso.cfg.RunDir, "netns"))
	if entries, _ := os.ReadDir(e.iso.containersDir()); len(entries) > 0 {
		for _, en := range entries {
			leaks = append(leaks, "checkpoint of "+en.Name())
		}
	}
	return leaks
}

// prepare attaches a new container to networks (this env's by default).
func (e *env) prepare(t *testing.T, spec api.ContainerSpec) (string, *isolators.PrepareResponse, error) {
	t.Helper()
	id := "c" + randHex(16)
	e.ids = append(e.ids, id)
	if spec.Networks == nil {
		spec.Networks = []string{e.net}
	}
	var resp isolators.PrepareResponse
	err := e.iso.Prepare(context.Background(), &isolators.PrepareRequest{ContainerID: id, Spec: spec, Hostname: "h-" + id[:6]}, &resp)
	return id, &resp, err
}

func (e *env) mustPrepare(t *testing.T, spec api.ContainerSpec) (string, *isolators.PrepareResponse) {
	t.Helper()
	id, resp, err := e.prepare(t, spec)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return id, resp
}

// status returns a container's attachments.
func (e *env) status(t *testing.T, id string) []api.NetworkStatus {
	t.Helper()
	var resp isolators.StatusResponse
	if err := e.iso.Status(context.Background(), &isolators.StatusRequest{ContainerID: id}, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Networks
}

// inNetns runs fn on a locked thread switched into the namespace at path
// (test code only: the isolator itself never does this).
func inNetns(t *testing.T, path string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// serveIn starts an HTTP server listening on port inside a namespace; the
// socket exists before serveIn returns, so clients need not wait.
func serveIn(t *testing.T, nsPath string, port int, body string) {
	t.Helper()
	var l net.Listener
	var err error
	inNetns(t, nsPath, func() { l, err = net.Listen("tcp", fmt.Sprintf(":%d", port)) })
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// linksIn lists the interfaces of a namespace.
func linksIn(t *testing.T, nsPath string) []string {
	t.Helper()
	var names []string
	inNetns(t, nsPath, func() {
		ifs, err := net.Interfaces()
		if err == nil {
			for _, i := range ifs {
				names = append(names, i.Name)
			}
		}
	})
	return names
}

func mustFail(t *testing.T, err error, target error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %v does not wrap %v", err, target)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}
