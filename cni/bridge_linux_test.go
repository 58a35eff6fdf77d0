package cni

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/testutil"
	"github.com/caisson/caisson/isolators"
)

// ipLink runs `ip ARGS...`; it fails the test unless ip succeeds.
func ipLink(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newLink makes an interface of a unique name with `ip link add NAME
// ARGS...` and deletes it when the test ends; it skips when this kernel
// cannot make that kind of device.
func newLink(t *testing.T, args ...string) string {
	t.Helper()
	name := "cx" + randHex(5)
	out, err := exec.Command("ip", append([]string{"link", "add", name}, args...)...).CombinedOutput()
	if err != nil && strings.Contains(string(out), "Unknown device type") {
		t.Skipf("this kernel cannot make %v devices: %s", args, out)
	}
	if err != nil {
		t.Fatalf("ip link add %s %v: %v: %s", name, args, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", "dev", name).Run() })
	return name
}

// enslave makes the bridge br a port of a new device; a bridge can be a
// port of a VRF or a bond, not of a bridge. It skips when this kernel can
// make neither.
func enslave(t *testing.T, br string) {
	t.Helper()
	for _, kind := range [][]string{{"type", "vrf", "table", "4242"}, {"type", "bond"}} {
		outer := "cz" + randHex(5)
		out, err := exec.Command("ip", append([]string{"link", "add", outer}, kind...)...).CombinedOutput()
		if err != nil && strings.Contains(string(out), "Unknown device type") {
			continue
		}
		if err != nil {
			t.Fatalf("ip link add %s %v: %v: %s", outer, kind, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", "dev", outer).Run() })
		ipLink(t, "link", "set", br, "master", outer)
		return
	}
	t.Skip("this kernel can make neither VRF nor bond devices, which a bridge can be a port of")
}

// linkState is an interface's description and addresses, to see that
// caisson left it as it was.
func linkState(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "addr", "show", "dev", name).CombinedOutput()
	if err != nil {
		t.Fatalf("interface %s is gone: %v: %s", name, err, out)
	}
	link, _ := exec.Command("ip", "-o", "link", "show", "dev", name).Output()
	// The counters and the operational state move on their own.
	return strings.Fields(string(link))[1] + " " + string(out)
}

// hostInterface is the name of the interface that holds this host's
// IPv4 address.
func hostInterface(t *testing.T) string {
	t.Helper()
	ip := net.ParseIP(cnitest.HostIPv4(t))
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, itf := range ifs {
		addrs, _ := itf.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.Equal(ip) {
				return itf.Name
			}
		}
	}
	t.Fatalf("no interface holds %s", ip)
	return ""
}

// freshNetwork returns options for a network of a unique name on a /24 of
// its own, and the subnet's prefix; rules naming it go when the test ends.
func freshNetwork(t *testing.T, bridge string) (CreateOptions, string) {
	n := subnets.Add(1)
	prefix := fmt.Sprintf("10.231.%d.", n)
	t.Cleanup(func() {
		if err := cnitest.RemoveRules(nil, prefix); err != nil {
			t.Error(err)
		}
	})
	return CreateOptions{Name: fmt.Sprintf("o%d", n), Subnet: prefix + "0/24", Bridge: bridge}, prefix
}

// TestCreateRefusesUsedInterfaces: a network is not created on an interface
// that is not a bridge, or a bridge someone uses (addressed, with ports, a
// port itself); the interface is left as it was.
func TestCreateRefusesUsedInterfaces(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	for _, tc := range []struct {
		name string
		// iface returns the interface; gw is the network's gateway, as
		// ADDRESS/PREFIX.
		iface func(t *testing.T, gw string) string
	}{
		{"veth", func(t *testing.T, _ string) string {
			return newLink(t, "type", "veth", "peer", "name", "cy"+randHex(5))
		}},
		{"ifb", func(t *testing.T, _ string) string { return newLink(t, "type", "ifb") }},
		{"dummy", func(t *testing.T, _ string) string { return newLink(t, "type", "dummy") }},
		{"loopback", func(t *testing.T, _ string) string { return "lo" }},
		{"host interface", func(t *testing.T, _ string) string { return hostInterface(t) }},
		{"addressed bridge", func(t *testing.T, _ string) string {
			br := newLink(t, "type", "bridge")
			ipLink(t, "addr", "add", "198.51.100.7/32", "dev", br)
			return br
		}},
		{"bridge with an IPv4 link-local address", func(t *testing.T, _ string) string {
			br := newLink(t, "type", "bridge")
			ipLink(t, "addr", "add", "169.254.77.7/16", "dev", br)
			return br
		}},
		{"bridge with the gateway and another address", func(t *testing.T, gw string) string {
			br := newLink(t, "type", "bridge")
			ipLink(t, "addr", "add", gw, "dev", br)
			ipLink(t, "addr", "add", "198.51.100.7/32", "dev", br)
			return br
		}},
		{"bridge with a port", func(t *testing.T, _ string) string {
			br := newLink(t, "type", "bridge")
			port := newLink(t, "type", "veth", "peer", "name", "cy"+randHex(5))
			ipLink(t, "link", "set", port, "master", br)
			return br
		}},
		{"bridge that is a port", func(t *testing.T, _ string) string {
			br := newLink(t, "type", "bridge")
			enslave(t, br)
			return br
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, prefix := freshNetwork(t, "")
			o.Bridge = tc.iface(t, prefix+"1/24")
			before := linkState(t, o.Bridge)
			_, err := e.iso.Create(o)
			if !errors.Is(err, api.ErrConflict) {
				t.Fatalf("Create on %s (%s) = %v, want api.ErrConflict", o.Bridge, tc.name, err)
			}
			if _, err := e.iso.Network(o.Name); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("the refused network exists: %v", err)
			}
			if after := linkState(t, o.Bridge); after != before {
				t.Errorf("interface %s changed:\n%s\nthen\n%s", o.Bridge, before, after)
			}
		})
	}
}

// TestBridgeOwnership: `network rm` deletes the bridge caisson created (also
// when a later network took it over) and leaves a bridge someone else made,
// whether it existed when the network was created or appeared before its
// first use; an interface other than an unused bridge that takes the name
// before the first use is refused.
func TestBridgeOwnership(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	ctx := context.Background()
	// use attaches a container to the network, detaches it and removes the
	// network; it returns whether the bridge is still there.
	use := func(t *testing.T, o CreateOptions, prefix string) bool {
		t.Helper()
		id, _ := e.mustPrepare(t, api.ContainerSpec{Networks: []string{o.Name}})
		if st := e.status(t, id); len(st) != 1 || len(st[0].IPs) != 1 || !strings.HasPrefix(st[0].IPs[0], prefix) {
			t.Fatalf("status on %s = %+v", o.Name, st)
		}
		if err := e.iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: id}); err != nil {
			t.Fatal(err)
		}
		if err := e.iso.Remove(o.Name); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if leaks := cnitest.Leaks(t, []string{id}, o.Bridge, filepath.Join(e.iso.cfg.StateDir, "networks", o.Name), "", prefix, ""); len(leaks) > 0 {
			t.Errorf("left:\n%s", strings.Join(leaks, "\n"))
		}
		_, err := net.InterfaceByName(o.Bridge)
		return err == nil
	}
	cleanupBridge := func(t *testing.T, name string) {
		t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", "dev", name).Run() })
	}

	t.Run("created by caisson", func(t *testing.T) {
		o, prefix := freshNetwork(t, "cx"+randHex(5))
		cleanupBridge(t, o.Bridge)
		if _, err := e.iso.Create(o); err != nil {
			t.Fatal(err)
		}
		if use(t, o, prefix) {
			t.Error("network rm left the bridge caisson created")
		}
	})
	t.Run("created by caisson, killed before it recorded so", func(t *testing.T) {
		o, prefix := freshNetwork(t, "cx"+randHex(5))
		cleanupBridge(t, o.Bridge)
		if _, err := e.iso.Create(o); err != nil {
			t.Fatal(err)
		}
		// The kill, right after `ip link add`: the launch stops there,
		// and what it wrote so far stays.
		type killed struct{}
		e.iso.cfg.CrashPoint = func(step string) {
			if step == "cni:bridge" {
				panic(killed{})
			}
		}
		func() {
			defer func() {
				if r := recover(); r != (killed{}) {
					t.Fatalf("the launch did not reach cni:bridge: %v", r)
				}
			}()
			_, _, err := e.prepare(t, api.ContainerSpec{Networks: []string{o.Name}})
			t.Fatalf("Prepare returned %v", err)
		}()
		e.iso.cfg.CrashPoint = nil
		if _, err := net.InterfaceByName(o.Bridge); err != nil {
			t.Fatalf("no bridge after the kill: %v", err)
		}
		if use(t, o, prefix) {
			t.Error("network rm left the bridge caisson created in a launch that was killed")
		}
	})
	t.Run("caisson's bridge taken over by a new network", func(t *testing.T) {
		o, prefix := freshNetwork(t, "cx"+randHex(5))
		cleanupBridge(t, o.Bridge)
		if _, err := e.iso.Create(o); err != nil {
			t.Fatal(err)
		}
		id, _ := e.mustPrepare(t, api.ContainerSpec{Networks: []string{o.Name}})
		if err := e.iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: id}); err != nil {
			t.Fatal(err)
		}
		// The file goes by hand: the bridge, with the gateway's address,
		// stays, and the same network is made again.
		if err := os.Remove(filepath.Join(e.confDir, o.Name+".conflist")); err != nil {
			t.Fatal(err)
		}
		if _, err := e.iso.Create(o); err != nil {
			t.Fatalf("Create on caisson's own bridge with the gateway's address: %v", err)
		}
		if use(t, o, prefix) {
			t.Error("network rm left the bridge caisson created for the earlier network")
		}
	})
	t.Run("foreign bridge at create", func(t *testing.T) {
		br := newLink(t, "type", "bridge")
		o, prefix := freshNetwork(t, br)
		if _, err := e.iso.Create(o); err != nil {
			t.Fatalf("Create on an unused bridge: %v", err)
		}
		if !use(t, o, prefix) {
			t.Error("network rm deleted a bridge caisson did not create")
		}
	})
	t.Run("foreign bridge before first use", func(t *testing.T) {
		o, prefix := freshNetwork(t, "cx"+randHex(5))
		if _, err := e.iso.Create(o); err != nil {
			t.Fatal(err)
		}
		ipLink(t, "link", "add", o.Bridge, "type", "bridge")
		cleanupBridge(t, o.Bridge)
		if !use(t, o, prefix) {
			t.Error("network rm deleted a bridge made by someone else after the network")
		}
	})
	t.Run("used foreign bridge before first use", func(t *testing.T) {
		// A bridge that appears after the network was created may be one
		// others use (with ports and addresses): caisson joins it, never
		// deletes it. (The bridge plugin itself refuses a bridge with
		// another address of the gateway's family.)
		o, prefix := freshNetwork(t, "cx"+randHex(5))
		if _, err := e.iso.Create(o); err != nil {
			t.Fatal(err)
		}
		ipLink(t, "link", "add", o.Bridge, "type", "bridge")
		cleanupBridge(t, o.Bridge)
		ipLink(t, "addr", "add", "2001:db8::9/128", "dev", o.Bridge)
		port := newLink(t, "type", "veth", "peer", "name", "cy"+randHex(5))
		ipLink(t, "link", "set", port, "master", o.Bridge)
		id, _ := e.mustPrepare(t, api.ContainerSpec{Networks: []string{o.Name}})
		if st := e.status(t, id); len(st) != 1 || len(st[0].IPs) != 1 || !strings.HasPrefix(st[0].IPs[0], prefix) {
			t.Fatalf("status on %s = %+v", o.Name, st)
		}
		if err := e.iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: id}); err != nil {
			t.Fatal(err)
		}
		if err := e.iso.Remove(o.Name); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if l, err := readLink(o.Bridge); err != nil || len(l.ports) != 1 || l.ports[0] != port {
			t.Errorf("network rm changed a bridge in use made by someone else after the network: %+v, %v", l, err)
		}
	})
	t.Run("bridge that is a port before first use", func(t *testing.T) {
		o, _ := freshNetwork(t, "cx"+randHex(5))
		if _, err := e.iso.Create(o); err != nil {
			t.Fatal(err)
		}
		ipLink(t, "link", "add", o.Bridge, "type", "bridge")
		cleanupBridge(t, o.Bridge)
		enslave(t, o.Bridge)
		before := linkState(t, o.Bridge)
		_, _, err := e.prepare(t, api.ContainerSpec{Networks: []string{o.Name}})
		mustFail(t, err, api.ErrConflict, o.Bridge, "is a port of")
		if err := e.iso.Remove(o.Name); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if after := linkState(t, o.Bridge); after != before {
			t.Errorf("interface %s changed:\n%s\nthen\n%s", o.Bridge, before, after)
		}
	})
	for _, kind := range [][]string{{"type", "veth", "peer", "name", "cy" + randHex(5)}, {"type", "ifb"}, {"type", "dummy"}} {
		t.Run(kind[1]+" before first use", func(t *testing.T) {
			o, _ := freshNetwork(t, "cx"+randHex(5))
			if _, err := e.iso.Create(o); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("ip", append([]string{"link", "add", o.Bridge}, kind...)...).CombinedOutput()
			if err != nil && strings.Contains(string(out), "Unknown device type") {
				t.Skipf("this kernel cannot make %s devices: %s", kind[1], out)
			}
			if err != nil {
				t.Fatalf("ip link add: %v: %s", err, out)
			}
			cleanupBridge(t, o.Bridge)
			before := linkState(t, o.Bridge)
			_, _, err = e.prepare(t, api.ContainerSpec{Networks: []string{o.Name}})
			mustFail(t, err, api.ErrConflict, o.Bridge, "not a bridge")
			if err := e.iso.Remove(o.Name); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if after := linkState(t, o.Bridge); after != before {
				t.Errorf("interface %s changed:\n%s\nthen\n%s", o.Bridge, before, after)
			}
		})
	}
}

// TestBridgeOfSiblingRoot: a network created by one work dir is first used
// by another, whose bridge plugin makes the bridge; the creator's own
// containers then join that bridge (its ports and the gateway's address are
// the sibling's containers, no reason to refuse), and the creator's
// `network rm` leaves it, since caisson did not create it.
func TestBridgeOfSiblingRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	debian, _ := cnitest.RequirePlugins(t)
	e := newEnv(t, debian, "1.0.0", 24)
	s := e.sibling(t)
	ctx := context.Background()
	theirs, _ := s.mustPrepare(t, api.ContainerSpec{})
	if _, err := net.InterfaceByName(e.bridge); err != nil {
		t.Fatalf("the sibling's first container did not make the bridge: %v", err)
	}
	for i := range 2 { // the first launch drops the record; the second finds none
		ours, _, err := e.prepare(t, api.ContainerSpec{})
		if err != nil {
			t.Fatalf("launch %d on the bridge the sibling's container uses: %v", i, err)
		}
		if st := e.status(t, ours); len(st) != 1 || len(st[0].IPs) != 1 || !strings.HasPrefix(st[0].IPs[0], e.pfx) {
			t.Fatalf("status = %+v", st)
		}
		if err := e.iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: ours}); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.status(t, theirs); len(st) != 1 || len(st[0].IPs) != 1 {
		t.Errorf("the sibling's container after ours came and went: %+v", st)
	}
	if err := s.iso.Cleanup(ctx, &isolators.CleanupRequest{ContainerID: theirs}); err != nil {
		t.Fatal(err)
	}
	if err := e.iso.Remove(e.net); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := net.InterfaceByName(e.bridge); err != nil {
		t.Errorf("network rm deleted the bridge the sibling's plugin made: %v", err)
	}
}
