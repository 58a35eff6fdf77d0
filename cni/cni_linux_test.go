package cni

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
	"github.com/caisson/caisson/isolators/isolatorstest"
)

// matrix runs a test with Debian's plugins at cniVersion 1.0.0 and with the
// newer plugins at 1.1.0.
func matrix(t *testing.T, fn func(t *testing.T, plugins, version string)) {
	testutil.RequiresRoot(t)
	debian, newer := cnitest.RequirePlugins(t)
	t.Run("debian-1.0.0", func(t *testing.T) { fn(t, debian, "1.0.0") })
	t.Run(cnitest.NewPluginsVersion+"-1.1.0", func(t *testing.T) { fn(t, newer, "1.1.0") })
}

func TestConformance(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	var e *env
	isolatorstest.Run(t, func(t *testing.T) isolators.Isolator {
		e = newEnv(t, debian, "1.0.0", 24)
		return e.iso
	}, isolatorstest.Options{Request: func(t *testing.T, id string) *isolators.PrepareRequest {
		return &isolators.PrepareRequest{ContainerID: id, Spec: api.ContainerSpec{Networks: []string{e.net}}}
	}, Holds: func(t *testing.T, iso isolators.Isolator, id string) bool {
		_, err := iso.(*Isolator).loadState(id)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}})
}

// TestAttach attaches a container with a published port, checks it is
// reachable on its address and through the host port (on 127.0.0.1 and on
// the host's address), that its files and status are right, and that
// Cleanup leaves nothing.
func TestAttach(t *testing.T) {
	matrix(t, func(t *testing.T, plugins, version string) {
		e := newEnv(t, plugins, version, 24)
		port := cnitest.FreePort(t)
		id, resp := e.mustPrepare(t, api.ContainerSpec{Ports: []api.PortMapping{{HostPort: port, ContainerPort: 8080, Protocol: "tcp"}}})
		if len(resp.Namespaces) != 1 || resp.Namespaces[0].Path != e.iso.netnsPath(id) || !isNetns(resp.Namespaces[0].Path) {
			t.Fatalf("namespaces = %+v, want the pinned one", resp.Namespaces)
		}
		var dsts []string
		for _, m := range resp.Mounts {
			dsts = append(dsts, m.Destination)
		}
		if diff := cmp.Diff([]string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}, dsts); diff != "" {
			t.Errorf("mounts (-want +got):\n%s", diff)
		}
		st := e.status(t, id)
		if len(st) != 1 || st[0].Name != e.net || st[0].Interface != "eth0" || len(st[0].IPs) != 1 || !strings.HasPrefix(st[0].IPs[0], e.pfx) {
			t.Fatalf("status = %+v, want eth0 on %s with an address in %s", st, e.net, e.subnet)
		}
		ip := st[0].IPs[0]
		hosts, _ := os.ReadFile(filepath.Join(e.iso.containerDir(id), "hosts"))
		if !strings.Contains(string(hosts), ip+"\th-"+id[:6]) || !strings.Contains(string(hosts), "::1\tlocalhost") {
			t.Errorf("hosts file lacks the container's address or IPv6 localhost:\n%s", hosts)
		}
		resolv, _ := os.ReadFile(filepath.Join(e.iso.containerDir(id), "resolv.conf"))
		if strings.Contains(string(resolv), "nameserver 127.0.0.53") || !strings.Contains(string(resolv), "nameserver 192.0.2.53") {
			t.Errorf("resolv.conf should be the host's without loopback servers:\n%s", resolv)
		}
		if links := linksIn(t, resp.Namespaces[0].Path); !cmp.Equal(links, []string{"lo", "eth0"}) {
			t.Errorf("links in the namespace = %v, want lo and eth0", links)
		}

		serveIn(t, resp.Namespaces[0].Path, 8080, "hello from "+id)
		for _, url := range []string{
			fmt.Sprintf("http://%s:8080/", ip),
			fmt.Sprintf("http://127.0.0.1:%d/", port),
			fmt.Sprintf("http://%s:%d/", cnitest.HostIPv4(t), port),
		} {
			body, err := cnitest.HTTPGet(url)
			if err != nil || body != "hello from "+id {
				t.Errorf("GET %s = %q, %v", url, body, err)
			}
		}

		if version == "1.1.0" {
			if err := e.iso.Check(context.Background(), id); err != nil {
				t.Errorf("Check: %v", err)
			}
		}
		if err := e.iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
			t.Fatal(err)
		}
		if leaks := e.leaks(t); len(leaks) > 0 {
			t.Fatalf("after Cleanup:\n%s", strings.Join(leaks, "\n"))
		}
		if _, err := cnitest.HTTPGet(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
			t.Error("the host port still answers after Cleanup")
		}
	})
}

// TestCheckFails shows CHECK notices a broken attachment.
func TestCheckFails(t *testing.T) {
	testutil.RequiresRoot(t)
	_, newer := cnitest.RequirePlugins(t)
	e := newEnv(t, newer, "1.1.0", 24)
	id, resp := e.mustPrepare(t, api.ContainerSpec{})
	if err := e.iso.Check(context.Background(), id); err != nil {
		t.Fatalf("Check of a healthy attachment: %v", err)
	}
	if out, err := exec.Command("nsenter", "--net="+resp.Namespaces[0].Path, "ip", "link", "delete", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("delete eth0: %v: %s", err, out)
	}
	mustFail(t, e.iso.Check(context.Background(), id), nil, e.net, "eth0")
}

// TestTwoNetworks attaches eth0 and eth1, one per network.
func TestTwoNetworks(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	n := subnets.Add(1)
	second, bridge2 := fmt.Sprintf("t%d", n), "ct"+randHex(5)
	if _, err := e.iso.Create(CreateOptions{Name: second, Subnet: fmt.Sprintf("10.231.%d.0/24", n), Bridge: bridge2}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if leaks := cnitest.Leaks(t, nil, bridge2, filepath.Join(e.iso.cfg.StateDir, "networks", second), "", fmt.Sprintf("10.231.%d.", n), ""); len(leaks) > 0 {
			t.Errorf("second network left:\n%s", strings.Join(leaks, "\n"))
		}
		_ = exec.Command("ip", "link", "delete", "dev", bridge2).Run()
	})
	id, resp := e.mustPrepare(t, api.ContainerSpec{Networks: []string{e.net, second}})
	st := e.status(t, id)
	if len(st) != 2 || st[0].Interface != "eth0" || st[1].Interface != "eth1" ||
		!strings.HasPrefix(st[0].IPs[0], e.pfx) || !strings.HasPrefix(st[1].IPs[0], fmt.Sprintf("10.231.%d.", n)) {
		t.Fatalf("status = %+v, want eth0 on %s and eth1 on %s", st, e.net, second)
	}
	if links := linksIn(t, resp.Namespaces[0].Path); !cmp.Equal(links, []string{"lo", "eth0", "eth1"}) {
		t.Errorf("links = %v", links)
	}
	if err := e.iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
		t.Fatal(err)
	}
}

// TestExhaustedSubnet fills a /29 (5 addresses): the 6th attach fails
// naming the network and the plugin, and leaves no veth, lease, namespace
// or checkpoint.
func TestExhaustedSubnet(t *testing.T) {
	matrix(t, func(t *testing.T, plugins, version string) {
		e := newEnv(t, plugins, version, 29)
		for i := 0; i < 5; i++ {
			e.mustPrepare(t, api.ContainerSpec{})
		}
		id, _, err := e.prepare(t, api.ContainerSpec{})
		mustFail(t, err, nil, fmt.Sprintf("network %q", e.net), `plugin type="bridge"`, "no IP addresses available")
		out, _ := exec.Command("ip", "-o", "link", "show", "master", e.bridge).Output()
		if n := strings.Count(string(out), "\n"); n != 5 {
			t.Errorf("%d veths on the bridge, want the 5 of the attached containers:\n%s", n, out)
		}
		if _, err := os.Stat(e.iso.containerDir(id)); !os.IsNotExist(err) {
			t.Errorf("checkpoint of the failed container is left: %v", err)
		}
		if _, err := os.Stat(e.iso.netnsPath(id)); !os.IsNotExist(err) {
			t.Errorf("namespace of the failed container is left: %v", err)
		}
		if entries, _ := os.ReadDir(filepath.Join(e.iso.cfg.StateDir, "cache", "results")); len(entries) != 5 {
			t.Errorf("%d libcni cache entries, want 5", len(entries))
		}
	})
}

// TestDelWithoutNamespace: after the namespace is gone (a reboot), DEL
// from the kept configuration still frees the lease and the port mapping.
func TestDelWithoutNamespace(t *testing.T) {
	matrix(t, func(t *testing.T, plugins, version string) {
		e := newEnv(t, plugins, version, 24)
		id, _ := e.mustPrepare(t, api.ContainerSpec{Ports: []api.PortMapping{{HostPort: cnitest.FreePort(t), ContainerPort: 80, Protocol: "tcp"}}})
		if err := unpin(e.iso.netnsPath(id)); err != nil {
			t.Fatal(err)
		}
		if err := e.iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
			t.Fatalf("Cleanup without the namespace: %v", err)
		}
	})
}

// TestConfigGoneAfterAdd: the network's file is removed while a container
// is attached; Cleanup DELs with the kept configuration and the port
// mapping read back from the libcni cache.
func TestConfigGoneAfterAdd(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	id, _ := e.mustPrepare(t, api.ContainerSpec{Ports: []api.PortMapping{{HostPort: cnitest.FreePort(t), ContainerPort: 80, Protocol: "tcp"}}})
	if err := os.Remove(filepath.Join(e.confDir, e.net+".conflist")); err != nil {
		t.Fatal(err)
	}
	if err := e.iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverGC: a container whose checkpoint is lost (only the libcni
// cache knows it) is freed by Recover's GC pass; a live one is kept.
func TestRecoverGC(t *testing.T) {
	matrix(t, func(t *testing.T, plugins, version string) {
		e := newEnv(t, plugins, version, 24)
		ctx := context.Background()
		lost, _ := e.mustPrepare(t, api.ContainerSpec{Ports: []api.PortMapping{{HostPort: cnitest.FreePort(t), ContainerPort: 80, Protocol: "tcp"}}})
		live, _ := e.mustPrepare(t, api.ContainerSpec{})
		orphan, _ := e.mustPrepare(t, api.ContainerSpec{})
		if err := os.RemoveAll(e.iso.containerDir(lost)); err != nil {
			t.Fatal(err)
		}
		if err := e.iso.Recover(ctx, &isolators.RecoverRequest{Containers: []isolators.RecoveredContainer{{ID: live}}}); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		if st := e.status(t, live); len(st) != 1 || len(st[0].IPs) != 1 || !isNetns(e.iso.netnsPath(live)) {
			t.Fatalf("the live container lost its network: %+v", st)
		}
		for _, id := range []string{lost, orphan} {
			if st := e.status(t, id); len(st) != 0 {
				t.Errorf("container %s still attached: %+v", id, st)
			}
		}
		e.ids = []string{live} // the env's cleanup checks the others left nothing
		leases, _ := os.ReadDir(filepath.Join(e.iso.cfg.StateDir, "networks", e.net))
		if n := len(leases) - 2; n != 1 { // lock and last_reserved_ip.0
			t.Errorf("%d leases after GC, want the live container's only", n)
		}
		if out, _ := exec.Command("sh", "-c", "iptables-save; nft list ruleset").Output(); strings.Contains(string(out), lost) {
			t.Errorf("rules of the lost container remain")
		}
	})
}

// TestBadInput: each bad request fails with a clear error and leaves
// nothing.
func TestBadInput(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(e.confDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("50-broken.conflist", `{"cniVersion": "1.0.0", "name": "broken", "plugins": [{"bridge": "x"}]}`)
	write("60-garbage.conflist", `{"cniVersion": `)
	write("70-missing.conflist", `{"cniVersion": "1.0.0", "name": "missing", "plugins": [{"type": "nosuchplugin"}]}`)
	write("80-newer.conflist", fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "newer", "plugins": [{"type": "bridge", "bridge": "%s", "ipam": {"type": "host-local", "subnet": "%s"}}]}`, e.bridge, e.subnet))
	write("90-noportmap.conflist", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "noportmap", "plugins": [{"type": "bridge", "bridge": "%s", "ipam": {"type": "host-local", "subnet": "%s"}}]}`, e.bridge, e.subnet))

	taken, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	published := cnitest.FreePort(t)
	e.mustPrepare(t, api.ContainerSpec{Ports: []api.PortMapping{{HostPort: published, ContainerPort: 80, Protocol: "tcp"}}})

	for _, tc := range []struct {
		name   string
		spec   api.ContainerSpec
		target error
		parts  []string
		field  string // of the FieldError, if the spec is at fault
	}{
		{"unknown network", api.ContainerSpec{Networks: []string{"nosuch"}}, api.ErrNotFound, []string{`network "nosuch" not found`, "60-garbage.conflist is not valid JSON"}, ""},
		{"malformed conflist", api.ContainerSpec{Networks: []string{"broken"}}, api.ErrInvalid, []string{`network "broken"`, "50-broken.conflist"}, ""},
		{"missing plugin", api.ContainerSpec{Networks: []string{"missing"}}, api.ErrInvalid, []string{`network "missing"`, `plugin "nosuchplugin" not found`}, ""},
		{"version too new for the plugins", api.ContainerSpec{Networks: []string{"newer"}}, api.ErrInvalid, []string{`network "newer"`, `plugin "bridge"`}, ""},
		{"port taken on the host", api.ContainerSpec{Ports: []api.PortMapping{{HostPort: takenPort, ContainerPort: 80, Protocol: "tcp"}}}, api.ErrConflict, []string{fmt.Sprintf("host port %d/tcp is already in use", takenPort)}, "ports"},
		{"port published by another container", api.ContainerSpec{Ports: []api.PortMapping{{HostIP: "127.0.0.1", HostPort: published, ContainerPort: 81, Protocol: "tcp"}}}, api.ErrConflict, []string{fmt.Sprintf("host port %d/tcp is already published by container", published)}, "ports"},
		{"no port mapping plugin", api.ContainerSpec{Networks: []string{"noportmap"}, Ports: []api.PortMapping{{HostPort: cnitest.FreePort(t), ContainerPort: 80, Protocol: "tcp"}}}, api.ErrInvalid, []string{`network "noportmap" cannot publish ports`}, "ports"},
		{"no bandwidth plugin", api.ContainerSpec{Networks: []string{"noportmap"}, Bandwidth: &api.Bandwidth{IngressRate: 1e6, IngressBurst: 1e6}}, api.ErrInvalid, []string{`network "noportmap" cannot limit bandwidth`}, "bandwidth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			veths, _ := exec.Command("ip", "-o", "link", "show", "master", e.bridge).Output()
			id, _, err := e.prepare(t, tc.spec)
			mustFail(t, err, tc.target, tc.parts...)
			var fe *api.FieldError
			if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
				t.Errorf("prepare = %v, want a FieldError about %s", err, tc.field)
			}
			if _, err := os.Stat(e.iso.containerDir(id)); !os.IsNotExist(err) {
				t.Errorf("checkpoint left: %v", err)
			}
			if _, err := os.Stat(e.iso.netnsPath(id)); !os.IsNotExist(err) {
				t.Errorf("namespace left: %v", err)
			}
			if after, _ := exec.Command("ip", "-o", "link", "show", "master", e.bridge).Output(); strings.Count(string(after), "\n") != strings.Count(string(veths), "\n") {
				t.Errorf("veths on the bridge went from\n%s\nto\n%s", veths, after)
			}
		})
	}
}

// TestTimeout: a plugin that hangs is killed after the timeout, and the
// attachment is undone.
func TestTimeout(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	dir := t.TempDir()
	script := "#!/bin/sh\nif [ \"$CNI_COMMAND\" = ADD ]; then exec sleep 600; fi\necho '{\"cniVersion\":\"1.0.0\"}'\n"
	if err := os.WriteFile(filepath.Join(dir, "hang"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.confDir, "hang.conflist"), []byte(`{"cniVersion":"1.0.0","name":"hang","plugins":[{"type":"hang"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.iso.cfg.PluginDirs = []string{dir, debian}
	e.iso.cni.Path = e.iso.cfg.PluginDirs
	e.iso.cfg.Timeout = 300 * time.Millisecond
	id, _, err := e.prepare(t, api.ContainerSpec{Networks: []string{"hang"}})
	mustFail(t, err, api.ErrTimeout, `network "hang"`, "timed out")
	if _, err := os.Stat(e.iso.containerDir(id)); !os.IsNotExist(err) {
		t.Errorf("checkpoint left: %v", err)
	}
}

// TestDefaultNetwork: the default network is written on first use and
// works; it refuses a subnet that overlaps this host's addresses.
func TestDefaultNetwork(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	n := subnets.Add(1)
	bridge := "ct" + randHex(5)
	e.iso.cfg.DefaultSubnet = fmt.Sprintf("10.231.%d.0/24", n)
	e.iso.cfg.DefaultBridge = bridge
	t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", "dev", bridge).Run() })
	id, _ := e.mustPrepare(t, api.ContainerSpec{Networks: []string{DefaultNetworkName}})
	def, err := e.iso.Network(DefaultNetworkName)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bridge", "portmap", "firewall", "bandwidth", "loopback"}
	if !cmp.Equal(def.Plugins, want) || def.CNIVersion != "1.0.0" || def.Bridge != bridge {
		t.Errorf("default network = %+v, want plugins %v at 1.0.0 on %s", def, want, bridge)
	}
	if st := e.status(t, id); len(st) != 1 || !strings.HasPrefix(st[0].IPs[0], fmt.Sprintf("10.231.%d.", n)) {
		t.Errorf("status = %+v", st)
	}
	if err := e.iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
		t.Fatal(err)
	}
	if err := e.iso.Remove(DefaultNetworkName); err != nil {
		t.Fatal(err)
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Error("Remove left the bridge")
	}
	_, err = e.iso.Create(CreateOptions{Name: "overlap", Subnet: cnitest.HostIPv4(t) + "/24"})
	mustFail(t, err, api.ErrConflict, "overlaps")
}

// TestRemoveRefusedWhileAttached: a network with attachments cannot be
// removed.
func TestRemoveRefusedWhileAttached(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	id, _ := e.mustPrepare(t, api.ContainerSpec{})
	mustFail(t, e.iso.Remove(e.net), api.ErrConflict, "1 attachment", id[:12])
	if _, err := e.iso.Network(e.net); err != nil {
		t.Fatalf("the network is gone after a refused Remove: %v", err)
	}
}

// TestBandwidth: the limits reach the bandwidth plugin, which puts a token
// bucket on the host side of the veth.
func TestBandwidth(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	ifbs := func() string {
		out, _ := exec.Command("ip", "-o", "link", "show", "type", "ifb").Output()
		return string(out)
	}
	before := ifbs()
	id, _ := e.mustPrepare(t, api.ContainerSpec{Bandwidth: &api.Bandwidth{
		IngressRate: 8_000_000, IngressBurst: 8_000_000, EgressRate: 4_000_000, EgressBurst: 4_000_000,
	}})
	out, err := exec.Command("tc", "qdisc", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// Ingress: a token bucket on the host side of the veth; egress: one on
	// the ifb device the veth's ingress is redirected to.
	for _, rate := range []string{"rate 8Mbit", "rate 4Mbit"} {
		if !strings.Contains(string(out), rate) {
			t.Errorf("no token bucket with %s:\n%s", rate, out)
		}
	}
	if err := e.iso.Cleanup(context.Background(), &isolators.CleanupRequest{ContainerID: id}); err != nil {
		t.Fatal(err)
	}
	if after := ifbs(); after != before {
		t.Errorf("ifb devices before:\n%s\nafter Cleanup:\n%s", before, after)
	}
}

// TestFailedChainLeavesNoRules: a plugin that fails after the firewall
// plugin's ADD leaves no libcni cache entry behind, so the undo's DEL gets
// the addresses from the checkpoint: the firewall's CNI-FORWARD rules,
// which name only the address, go with the rest.
func TestFailedChainLeavesNoRules(t *testing.T) {
	matrix(t, func(t *testing.T, plugins, version string) {
		e := newEnv(t, plugins, version, 24)
		dir := t.TempDir()
		script := `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":999,"msg":"refused by the test"}'; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
esac
`
		if err := os.WriteFile(filepath.Join(dir, "refuse"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf(`{"cniVersion": %q, "name": "failing", "plugins": [
			{"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true,
			 "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}},
			{"type": "portmap", "capabilities": {"portMappings": true}},
			{"type": "firewall"},
			{"type": "refuse"}]}`, version, e.bridge, e.subnet, filepath.Join(e.iso.cfg.StateDir, "networks"))
		if err := os.WriteFile(filepath.Join(e.confDir, "failing.conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		e.iso.cfg.PluginDirs = []string{dir, plugins}
		e.iso.cni.Path = e.iso.cfg.PluginDirs
		id, _, err := e.prepare(t, api.ContainerSpec{Networks: []string{"failing"},
			Ports: []api.PortMapping{{HostPort: cnitest.FreePort(t), ContainerPort: 80, Protocol: "tcp"}}})
		mustFail(t, err, nil, `network "failing"`)
		// The plugin's own error, as it printed it.
		var plugin *types.Error
		if !errors.As(err, &plugin) || plugin.Code != 999 || plugin.Msg != "refused by the test" {
			t.Errorf("error %v does not carry the plugin's error", err)
		}
		if leaks := cnitest.Leaks(t, []string{id}, e.bridge, filepath.Join(e.iso.cfg.StateDir, "networks", "failing"),
			filepath.Join(e.iso.cfg.StateDir, "cache"), e.pfx, filepath.Join(e.iso.cfg.RunDir, "netns")); len(leaks) > 0 {
			t.Fatalf("the undone attachment left:\n%s", strings.Join(leaks, "\n"))
		}
	})
}
