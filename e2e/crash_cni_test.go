//go:build linux

package e2e

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/caisson/caisson/internal/cnitest"
	"github.com/caisson/caisson/internal/testutil"
)

// crashPlugins are the plugins of the chain `network create` writes, and
// host-local, the IPAM plugin bridge runs.
var crashPlugins = []string{"bridge", "host-local", "portmap", "firewall", "bandwidth", "loopback"}

// pluginWrapper is a CNI plugin that runs the real one and, in the ADD of
// the target plugin, kills (SIGKILL) the caisson process up the chain:
// "before" the real plugin runs, which then runs on as an orphan (as
// plugins do when caisson is killed), or "after" it has done its work and
// written its result, which caisson never reads. Every wrapper holds a
// shared lock on the lock file while it runs, so the test can wait for the
// orphans; the marker file records that the kill happened.
const pluginWrapper = `#!/bin/sh
exec 9>>'%[1]s'
flock -s 9
if [ "$CNI_COMMAND" != ADD ] || [ '%[3]s' != target ]; then exec '%[2]s'; fi
kill_caisson() {
	pid=$PPID
	while [ "$pid" -gt 1 ] && [ "$(cat /proc/$pid/comm)" != caisson ]; do
		pid=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$pid/status)
	done
	[ "$pid" -gt 1 ] || exit 1
	echo "$pid" >'%[5]s'
	kill -9 "$pid"
}
in=$(mktemp)
trap 'rm -f "$in" "$in.out"' EXIT
cat >"$in"
case '%[4]s' in
before)
	kill_caisson
	'%[2]s' <"$in"
	;;
after)
	'%[2]s' <"$in" >"$in.out"
	rc=$?
	kill_caisson
	cat "$in.out"
	exit $rc
	;;
esac
`

// writeCrashPlugins fills dir with a wrapper of every plugin of real
// (symlinks would not hold the lock); target's ADD crashes at point.
func writeCrashPlugins(t *testing.T, dir, real, target, point, lock, marker string) {
	t.Helper()
	entries, err := os.ReadDir(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		role := "pass"
		if en.Name() == target {
			role = "target"
		}
		script := fmt.Sprintf(pluginWrapper, lock, filepath.Join(real, en.Name()), role, point, marker)
		if err := os.WriteFile(filepath.Join(dir, en.Name()), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// waitForPlugins blocks until no wrapper (and so no orphaned plugin) holds
// the lock file.
func waitForPlugins(t *testing.T, lock string) {
	t.Helper()
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
}

// randomSubnet returns a /24 of 10.233.0.0/16 no interface of the host has
// an address in, as "10.233.N.".
func randomSubnet(t *testing.T) string {
	t.Helper()
	for range 20 {
		n, err := rand.Int(rand.Reader, big.NewInt(256))
		if err != nil {
			t.Fatal(err)
		}
		prefix := fmt.Sprintf("10.233.%d.", n.Int64())
		_, subnet, _ := net.ParseCIDR(prefix + "0/24")
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			t.Fatal(err)
		}
		free := true
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && subnet.Contains(ipn.IP) {
				free = false
			}
		}
		if free {
			return prefix
		}
	}
	t.Fatal("no free /24 in 10.233.0.0/16")
	return ""
}

// ifbName is the bandwidth plugin's ifb device of a container on a network.
func ifbName(network, containerID string) string {
	sum := sha512.Sum512([]byte(network + containerID))
	return ("bwp" + hex.EncodeToString(sum[:]))[:15]
}

// TestCrashInsideCNIPlugins kills `caisson run --network ...` inside the ADD
// of each plugin of the default chain (and of host-local, which bridge
// runs), before the plugin does its work and after, with Debian's plugins
// at cniVersion 1.0.0 and the newer ones at 1.1.0. `recover` and `rm -f`
// must then leave nothing of the container: no iptables or nftables rule
// naming its address or ID (the firewall plugin's CNI-FORWARD rules carry
// only the address), veth, lease, libcni cache entry, namespace or ifb
// device.
func TestCrashInsideCNIPlugins(t *testing.T) {
	testutil.RequiresRoot(t)
	requiresCNI(t)
	testutil.LookPath(t, "flock") // the wrappers' lock
	debian, newer := cnitest.RequirePlugins(t)
	for _, set := range []struct{ name, dir, version string }{
		{"debian-1.0.0", debian, "1.0.0"},
		{cnitest.NewPluginsVersion + "-1.1.0", newer, "1.1.0"},
	} {
		for _, plugin := range crashPlugins {
			for _, point := range []string{"before", "after"} {
				t.Run(set.name+"/"+plugin+"/"+point, func(t *testing.T) {
					crashInsidePlugin(t, set.dir, set.version, plugin, point)
				})
			}
		}
	}
}

func crashInsidePlugin(t *testing.T, plugins, cniVersion, target, point string) {
	e := newEnv(t)
	e.extraEnv = append(e.extraEnv, "CAISSON_CNI_PATH="+plugins)
	prefix := randomSubnet(t)
	var ids []string
	t.Cleanup(func() {
		if err := cnitest.RemoveRules(ids, prefix); err != nil {
			t.Error(err)
		}
	})
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	bridge, network := "cc"+hex.EncodeToString(b), "crash"+hex.EncodeToString(b[:2])
	e.bridges = append(e.bridges, bridge)
	e.ok("network", "create", "--subnet", prefix+"0/24", "--bridge", bridge, "--cni-version", cniVersion, network)

	dir := t.TempDir()
	wrappers, lock, marker := filepath.Join(dir, "plugins"), filepath.Join(dir, "lock"), filepath.Join(dir, "killed")
	if err := os.Mkdir(wrappers, 0o755); err != nil {
		t.Fatal(err)
	}
	writeCrashPlugins(t, wrappers, plugins, target, point, lock, marker)
	crash := *e
	crash.extraEnv = append(append([]string(nil), e.extraEnv...), "CAISSON_CNI_PATH="+wrappers)
	r := crash.caisson("run", "-d", "--name", "victim", "--network", network, "-p", fmt.Sprintf("%d:80", cnitest.FreePort(t)),
		"--ingress-rate", "10mbit", "--egress-rate", "10mbit", "--rootfs", e.rootfs, "sleep", "1000")
	waitForPlugins(t, lock)
	if r.code != 137 {
		t.Fatalf("the launch was not killed inside %s's ADD: %s", target, r)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the %s wrapper did not kill caisson: %v", target, err)
	}
	entries, _ := os.ReadDir(filepath.Join(e.root, "containers"))
	for _, en := range entries {
		ids = append(ids, en.Name())
	}
	if len(ids) != 1 {
		t.Fatalf("%d containers recorded by the killed launch, want 1", len(ids))
	}

	e.ok("recover")
	if left := strings.Fields(e.ok("ps", "-aq")); len(left) > 0 {
		e.ok(append([]string{"rm", "-f"}, left...)...)
	}
	leaks := e.networkLeaks()
	leaks = append(leaks, cnitest.Leaks(t, ids, bridge, filepath.Join(e.root, "cni", "networks", network),
		filepath.Join(e.root, "cni", "cache"), prefix, filepath.Join(e.run, "cni", "netns"))...)
	if _, err := net.InterfaceByName(ifbName(network, ids[0])); err == nil {
		leaks = append(leaks, "ifb device "+ifbName(network, ids[0]))
	}
	if len(leaks) > 0 {
		t.Fatalf("after a crash %s %s's ADD, recover and rm -f left:\n  %s", point, target, strings.Join(leaks, "\n  "))
	}
}
