//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/cnitest"
)

// netEnv is an env with a web root in its busybox root filesystem.
func netEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	cnitest.RequirePlugins(t)
	if err := os.MkdirAll(filepath.Join(e.rootfs, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.rootfs, "www", "index.html"), []byte("hello from caisson\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// createNetwork makes a bridge network on the env's k-th subnet.
func (e *env) createNetwork(name string, k int, prefix int, extra ...string) string {
	e.t.Helper()
	bridge := fmt.Sprintf("%s%d", e.defaultBridge, k)
	e.bridges = append(e.bridges, bridge)
	args := append([]string{"network", "create", "--subnet", fmt.Sprintf("%s0/%d", e.subnet(k), prefix), "--bridge", bridge}, extra...)
	e.ok(append(args, name)...)
	return bridge
}

// networkLeaks lists what the env's containers left of their networks.
func (e *env) networkLeaks() []string {
	out := e.leftovers()
	if entries, _ := os.ReadDir(filepath.Join(e.run, "cni", "netns")); len(entries) > 0 {
		for _, n := range entries {
			out = append(out, "namespace file "+n.Name())
		}
	}
	return out
}

// startWeb starts a detached busybox httpd; it prints "ready" once httpd
// has bound its port and gone to the background.
func (e *env) startWeb(name string, args ...string) api.Container {
	e.t.Helper()
	run := append([]string{"run", "-d", "--name", name}, args...)
	run = append(run, "--rootfs", e.rootfs, "sh", "-c", "httpd -p 80 -h /www && echo ready && exec sleep 100000")
	e.ok(run...)
	e.waitForLine(name, "ready")
	return e.inspect(name)
}

func containerIP(t *testing.T, c api.Container, network string) string {
	t.Helper()
	for _, n := range c.Networks {
		if n.Name == network && len(n.IPs) > 0 {
			return n.IPs[0]
		}
	}
	t.Fatalf("container %s has no address on %s: %+v", c.Name, network, c.Networks)
	return ""
}

// TestNetworkHTTPD: a busybox httpd on the default network answers from
// the host on its address and on the published port (127.0.0.1 and the
// host's address); another container reaches it; stats count its traffic;
// the network cannot be removed while it is attached.
func TestNetworkHTTPD(t *testing.T) {
	e := netEnv(t)
	port := cnitest.FreePort(t)
	web := e.startWeb("web", "-p", fmt.Sprintf("%d:80", port))
	ip := containerIP(t, web, "caisson")
	if !strings.HasPrefix(ip, e.subnet(0)) {
		t.Fatalf("address %s is not on the default network's subnet %s0/24", ip, e.subnet(0))
	}
	for _, url := range []string{
		"http://" + ip + "/",
		fmt.Sprintf("http://127.0.0.1:%d/", port),
		fmt.Sprintf("http://%s:%d/", cnitest.HostIPv4(t), port),
	} {
		if body, err := cnitest.HTTPGet(url); err != nil || body != "hello from caisson\n" {
			t.Errorf("GET %s = %q, %v", url, body, err)
		}
	}
	out := e.ok("run", "--rm", "--network", "caisson", "--rootfs", e.rootfs, "sh", "-c",
		"wget -qO- http://"+ip+"/ && hostname && grep -c \"$(hostname)\" /etc/hosts")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "hello from caisson" || lines[2] != "1" {
		t.Errorf("second container got %q, want the page, its hostname and one hosts entry for it", out)
	}

	var stats []struct {
		Usage api.Usage `json:"usage"`
	}
	if err := json.Unmarshal([]byte(e.ok("stats", "--format", "json", "web")), &stats); err != nil || len(stats) != 1 {
		t.Fatalf("stats: %v", err)
	}
	u := stats[0].Usage
	if u.NetRxPackets == 0 || u.NetTxBytes == 0 || len(u.Interfaces) != 2 {
		t.Errorf("network counters after serving pages = %+v", u)
	}

	if r := e.caisson("network", "rm", "caisson"); r.code != 125 || !strings.Contains(r.stderr, "1 attachment") {
		t.Errorf("network rm with a container attached: %s", r)
	}
	if ls := e.ok("network", "ls"); !strings.Contains(ls, "caisson") || !strings.Contains(ls, e.subnet(0)+"0/24") {
		t.Errorf("network ls:\n%s", ls)
	}
	e.ok("rm", "-f", "web")
	if _, err := cnitest.HTTPGet(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		t.Error("the published port still answers after rm")
	}
	e.ok("network", "rm", "caisson")
	if _, err := net.InterfaceByName(e.defaultBridge); err == nil {
		t.Error("network rm left the bridge")
	}
	if left := e.networkLeaks(); len(left) > 0 {
		t.Errorf("left:\n%s", strings.Join(left, "\n"))
	}
}

// TestNetworkTwoNetworks: a container on two networks has eth0 and eth1
// with an address from each; a network on the newer plugins at 1.1.0 passes
// CHECK.
func TestNetworkTwoNetworks(t *testing.T) {
	e := netEnv(t)
	_, newer := cnitest.RequirePlugins(t)
	// The newer plugins first on the search path: both networks use them.
	e.extraEnv = append(e.extraEnv, "CAISSON_CNI_PATH="+newer)
	e.createNetwork("front", 1, 24, "--cni-version", "1.1.0")
	e.createNetwork("back", 2, 24, "--cni-version", "1.1.0")
	out := e.ok("run", "--rm", "--network", "front", "--network", "back", "--rootfs", e.rootfs, "sh", "-c",
		"ip -4 addr show dev eth0; ip -4 addr show dev eth1")
	for k, itf := range map[int]string{1: "eth0", 2: "eth1"} {
		if !strings.Contains(out, "inet "+e.subnet(k)) || !strings.Contains(out, itf) {
			t.Errorf("no %s address from %s0/24 in:\n%s", itf, e.subnet(k), out)
		}
	}
	e.startWeb("checked", "--network", "front", "--network", "back")
	if out := e.ok("network", "check", "checked"); !strings.Contains(out, "ok") {
		t.Errorf("network check: %q", out)
	}
	e.ok("rm", "-f", "checked")
	if left := e.networkLeaks(); len(left) > 0 {
		t.Errorf("left:\n%s", strings.Join(left, "\n"))
	}
}

// TestNetworkCycles launches and destroys containers with a published port
// again and again; nothing may accumulate.
func TestNetworkCycles(t *testing.T) {
	e := netEnv(t)
	n := 200
	if testing.Short() {
		n = 20
	}
	port := strconv.Itoa(cnitest.FreePort(t))
	for i := 0; i < n; i++ {
		if r := e.caisson("run", "--rm", "-p", port+":80", "--rootfs", e.rootfs, "true"); r.code != 0 {
			t.Fatalf("cycle %d: %s", i, r)
		}
	}
	if left := e.networkLeaks(); len(left) > 0 {
		t.Fatalf("after %d cycles:\n%s", n, strings.Join(left, "\n"))
	}
	leases, _ := os.ReadDir(filepath.Join(e.root, "cni", "networks", "caisson"))
	if len(leases) != 2 { // lock, last_reserved_ip.0
		t.Errorf("lease dir after %d cycles: %d entries", n, len(leases))
	}
}

// TestNetworkCrash kills the launch right after the ADD, before the
// checkpoint records its result (and right after the namespace is made, and
// right after caisson made the network's bridge); the next command's
// recovery DELs it and removes everything, and `network rm` then deletes
// the bridge caisson made.
func TestNetworkCrash(t *testing.T) {
	for _, step := range []string{"cni:bridge", "cni:netns", "cni:added"} {
		t.Run(step, func(t *testing.T) {
			e := netEnv(t)
			crash := *e
			crash.extraEnv = append(append([]string(nil), e.extraEnv...), "CAISSON_TEST_CRASH_AT="+step)
			r := crash.caisson("run", "-d", "-p", fmt.Sprintf("%d:80", cnitest.FreePort(t)), "--rootfs", e.rootfs, "sleep", "1000")
			if r.code != 137 {
				t.Fatalf("the crashed launch: %s", r)
			}
			e.ok("ps", "-a") // recovery
			if left := e.networkLeaks(); len(left) > 0 {
				t.Fatalf("after recovery:\n%s", strings.Join(left, "\n"))
			}
			e.ok("network", "rm", "caisson")
			if _, err := net.InterfaceByName(e.defaultBridge); err == nil {
				t.Error("network rm left the bridge caisson made")
			}
		})
	}
}

// TestNetworkExhausted fills a /29 (5 addresses): the 6th launch fails with
// exit 125, naming the network and the plugin, and leaves no veth.
func TestNetworkExhausted(t *testing.T) {
	e := netEnv(t)
	bridge := e.createNetwork("small", 1, 29)
	for i := 0; i < 5; i++ {
		e.ok("run", "-d", "--network", "small", "--rootfs", e.rootfs, "sleep", "100000")
	}
	r := e.caisson("run", "-d", "--network", "small", "--rootfs", e.rootfs, "sleep", "100000")
	if r.code != 125 || !strings.Contains(r.stderr, `network "small"`) || !strings.Contains(r.stderr, `plugin type="bridge"`) ||
		!strings.Contains(r.stderr, "no IP addresses available") {
		t.Fatalf("6th launch on a /29: %s", r)
	}
	out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output()
	if n := strings.Count(string(out), "\n"); n != 5 {
		t.Errorf("%d veths on the bridge, want 5:\n%s", n, out)
	}
	if ids := strings.Fields(e.ok("ps", "-aq")); len(ids) != 5 {
		t.Errorf("%d containers listed, want the 5 running ones", len(ids))
	}
}

// TestNetworkBadInput: each mistake fails with exit 125 and a message that
// names the network (and the plugin), leaving nothing.
func TestNetworkBadInput(t *testing.T) {
	e := netEnv(t)
	if err := os.MkdirAll(e.cniConf, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"10-broken.conflist":  `{"cniVersion":"1.0.0","name":"broken","plugins":[{"bridge":"x"}]}`,
		"20-missing.conflist": `{"cniVersion":"1.0.0","name":"missing","plugins":[{"type":"nosuchplugin"}]}`,
	} {
		if err := os.WriteFile(filepath.Join(e.cniConf, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	taken, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--network", "nosuch"}, []string{`network "nosuch" not found`}},
		{[]string{"--network", "broken"}, []string{`network "broken"`, "10-broken.conflist"}},
		{[]string{"--network", "missing"}, []string{`network "missing"`, `plugin "nosuchplugin" not found`}},
		{[]string{"-p", fmt.Sprintf("%d:80", port)}, []string{fmt.Sprintf("host port %d/tcp is already in use", port)}},
		{[]string{"-p", "80"}, []string{"a host port is required"}},
		{[]string{"--network", "host", "-p", "8080:80"}, []string{"publishing ports needs a CNI network"}},
		{[]string{"--network", "caisson", "--network", "none"}, []string{`"none" cannot be combined`}},
	} {
		args := append(append([]string{"run", "--rm"}, tc.args...), "--rootfs", e.rootfs, "true")
		r := e.caisson(args...)
		if r.code != 125 {
			t.Errorf("%v: %s, want exit 125", tc.args, r)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%v: stderr %q does not mention %q", tc.args, r.stderr, w)
			}
		}
	}
	if left := e.networkLeaks(); len(left) > 0 {
		t.Errorf("left:\n%s", strings.Join(left, "\n"))
	}
}
