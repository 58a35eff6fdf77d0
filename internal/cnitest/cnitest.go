// Package cnitest helps tests that run real CNI plugins: it finds the two
// plugin sets (Debian's and the newer ones make builds), snapshots and
// restores what plugins change on the host outside any one container
// (shared iptables chains, nftables tables, IP forwarding), and counts what
// a container may leak (veths, leases, cache entries, rules, namespace
// mounts).
package cnitest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/caisson/caisson/internal/iptables"
)

// DebianPlugins is the directory of Debian's containernetworking-plugins
// (1.1.1 on Debian 12; spec 1.0.0 at most).
const DebianPlugins = "/usr/lib/cni"

// NewPluginsVersion is the plugins release `make cni-plugins` builds (spec
// 1.1.0: GC and STATUS).
const NewPluginsVersion = "v1.9.1"

// RequirePlugins fails the test when a plugin set is missing: make test
// installs Debian's and builds the newer one. It returns the two dirs.
func RequirePlugins(t testing.TB) (debian, newer string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(DebianPlugins, "bridge")); err != nil {
		t.Fatalf("Debian's CNI plugins are missing (%v): make deps installs containernetworking-plugins", err)
	}
	newer = os.Getenv("CAISSON_CNI_PLUGINS_NEW")
	if newer == "" {
		_, file, _, _ := runtime.Caller(0)
		newer = filepath.Join(filepath.Dir(file), "..", "..", ".cache", "cni-"+NewPluginsVersion)
	}
	if _, err := os.Stat(filepath.Join(newer, "bridge")); err != nil {
		t.Fatalf("CNI plugins %s are missing in %s (%v): make cni-plugins builds them", NewPluginsVersion, newer, err)
	}
	return DebianPlugins, newer
}

// HostState is what plugins change on the host for all containers.
type HostState struct {
	chains    map[string]bool // "iptables/nat/CNI-HOSTPORT-DNAT"
	nftTables map[string]bool // "ip cni_hostport"
	ipForward []byte
}

// Snapshot records the host's shared CNI state.
func Snapshot() (*HostState, error) {
	h := &HostState{chains: map[string]bool{}, nftTables: map[string]bool{}}
	for _, fam := range iptables.Families {
		chains, _, err := saveChains(fam)
		if err != nil {
			return nil, err
		}
		for c := range chains {
			h.chains[c] = true
		}
	}
	tables, err := nftTables()
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		h.nftTables[t] = true
	}
	h.ipForward, _ = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	return h, nil
}

// hostChain reports whether a chain is one Restore looks after: the CNI
// plugins' and those of the benchmark's dockerd.
func hostChain(c string) bool { return strings.HasPrefix(c, "CNI-") || strings.HasPrefix(c, "DOCKER") }

// saveChains returns a family's CNI-* chains ("fam/table/chain") and the
// rules that jump to them.
func saveChains(fam string) (map[string]bool, []iptables.Rule, error) {
	all, rules, err := iptables.Save(context.Background(), fam)
	if err != nil {
		return nil, nil, err
	}
	chains := map[string]bool{}
	for c := range all {
		if _, chain, _ := strings.Cut(c, "/"); hostChain(chain) {
			chains[fam+"/"+c] = true
		}
	}
	var jumps []iptables.Rule
	for _, r := range rules {
		if hostChain(r.Target()) {
			jumps = append(jumps, r)
		}
	}
	return chains, jumps, nil
}

func nftTables() ([]string, error) {
	bin, err := exec.LookPath("nft")
	if err != nil {
		return nil, nil
	}
	out, err := exec.Command(bin, "list", "tables").Output()
	if err != nil {
		return nil, fmt.Errorf("nft list tables: %w", err)
	}
	var tables []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables, nil
}

// Restore removes the CNI-* (and DOCKER*) chains and cni* nftables tables that appeared
// since the snapshot (and the rules that jump to them), and puts IP
// forwarding back.
func (h *HostState) Restore() error {
	ctx := context.Background()
	var errs []string
	for _, fam := range iptables.Families {
		chains, jumps, err := saveChains(fam)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, j := range jumps {
			target := fam + "/" + j.Table + "/" + j.Target()
			src := fam + "/" + j.Table + "/" + j.Chain()
			if !chains[target] || h.chains[target] || (chains[src] && !h.chains[src]) {
				continue // jump to an old chain, or from a chain about to go
			}
			if err := iptables.Delete(ctx, j); err != nil {
				errs = append(errs, err.Error())
			}
		}
		var gone []string
		for c := range chains {
			if !h.chains[c] {
				gone = append(gone, c)
			}
		}
		for _, c := range gone { // flush all first: they may jump to each other
			p := strings.SplitN(c, "/", 3)
			_ = exec.Command(fam, "-w", "-t", p[1], "-F", p[2]).Run()
		}
		for _, c := range gone {
			p := strings.SplitN(c, "/", 3)
			if err := iptables.DeleteChain(ctx, fam, p[1], p[2]); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	tables, err := nftTables()
	if err != nil {
		errs = append(errs, err.Error())
	}
	for _, t := range tables {
		if !h.nftTables[t] && strings.HasPrefix(strings.Fields(t)[1], "cni") {
			args := append([]string{"delete", "table"}, strings.Fields(t)...)
			if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Sprintf("nft %v: %v: %s", args, err, out))
			}
		}
	}
	if h.ipForward != nil {
		_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", h.ipForward, 0o644)
	}
	if len(errs) > 0 {
		return fmt.Errorf("restore host network state: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Leaks lists what is left of containers on a network: veths on the
// bridge, host-local leases in leaseDir (the network's lease directory),
// entries in the libcni cache dir, iptables and nftables rules that name
// one of the container IDs or an address with the subnet's prefix
// (subnetPrefix such as "10.231.7."), and network namespace mounts under
// netnsDir.
func Leaks(t testing.TB, ids []string, bridge, leaseDir, cacheDir, subnetPrefix, netnsDir string) []string {
	t.Helper()
	var leaks []string
	if bridge != "" {
		if out, err := exec.Command("ip", "-o", "link", "show", "master", bridge).CombinedOutput(); err == nil {
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if l != "" {
					leaks = append(leaks, "veth on "+bridge+": "+l)
				}
			}
		}
	}
	if entries, err := os.ReadDir(leaseDir); err == nil {
		for _, e := range entries {
			if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
				leaks = append(leaks, "host-local lease "+filepath.Join(leaseDir, n))
			}
		}
	}
	if entries, err := os.ReadDir(filepath.Join(cacheDir, "results")); err == nil {
		for _, e := range entries {
			leaks = append(leaks, "libcni cache entry "+e.Name())
		}
	}
	var rules bytes.Buffer
	for _, cmd := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		if _, err := exec.LookPath(cmd[0]); err == nil {
			out, _ := exec.Command(cmd[0], cmd[1:]...).Output()
			rules.Write(out)
		}
	}
	for _, l := range strings.Split(rules.String(), "\n") {
		hit := subnetPrefix != "" && strings.Contains(l, subnetPrefix)
		for _, id := range ids {
			hit = hit || strings.Contains(l, id)
		}
		if hit {
			leaks = append(leaks, "rule: "+strings.TrimSpace(l))
		}
	}
	if netnsDir != "" {
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], netnsDir+"/") {
				leaks = append(leaks, "namespace mount "+f[4])
			}
		}
	}
	return leaks
}

// RemoveRules deletes the iptables rules (both families; the nftables
// rules of iptables-nft with them) that name one of the container IDs or an
// address with the subnet's prefix: what Leaks reports as rules. Tests call
// it when they end, so a failure does not leave rules behind.
func RemoveRules(ids []string, subnetPrefix string) error {
	ctx := context.Background()
	var errs []string
	for _, fam := range iptables.Families {
		_, rules, err := iptables.Save(ctx, fam)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, r := range rules {
			line := strings.Join(r.Args, " ")
			hit := subnetPrefix != "" && strings.Contains(line, subnetPrefix)
			for _, id := range ids {
				hit = hit || strings.Contains(line, id)
			}
			if hit {
				if err := iptables.Delete(ctx, r); err != nil {
					errs = append(errs, err.Error())
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove rules: %s", strings.Join(errs, "; "))
	}
	return nil
}

// FreePort returns a TCP port nothing on the host listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// HostIPv4 returns an IPv4 address of this host that is neither loopback
// nor in the tests' container ranges (10.23x.0.0/16).
func HostIPv4(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !strings.HasPrefix(ipn.IP.String(), "10.23") {
			return ipn.IP.String()
		}
	}
	t.Fatal("this host has no IPv4 address besides loopback")
	return ""
}

// HTTPGet fetches a URL from the host on a fresh connection.
func HTTPGet(url string) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
